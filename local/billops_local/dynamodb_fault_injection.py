"""Local only: DynamoDB PutItem faults injected into the local stack's moto, for the reliability suites.

Never active unless ``BILLOPS_LOCAL_DYNAMODB_FAULTS`` is set when the stack starts: moto's process
(billops_local.moto_process) calls ``install_from_env``, so wrapping moto's DynamoDB ``PutItem`` handler there
affects every caller of that moto: the webhook receiver above all, whose one conditional PutItem per delivery is
what these faults aim at. Each function's process (billops_local.function_process) calls
``compress_retry_sleeps_from_env`` for ``backoff_scale``: the retries happen in the caller, not in moto.

``BILLOPS_LOCAL_DYNAMODB_FAULTS`` is a comma-separated list of ``name:value``:

  throttle:<p>      that fraction of PutItem calls answers ProvisionedThroughputExceededException (HTTP 400)
                    without writing anything
  error:<p>         that fraction answers InternalServerError (HTTP 500) without writing anything
  error_after:<p>   that fraction writes the item, then answers InternalServerError: the nasty case, the write
                    happened but the caller saw an error
  repeat:<q>        that fraction of the faults above sticks to the request: its next ``attempts - 1`` retries fail
                    too (as throttle/error; retries of an error_after as error, the item being written already),
                    so a client retrying ``attempts`` times gives up and its caller sees the error (default 0)
  attempts:<n>      the client's attempts per request (default 4: the receiver's boto3 client has
                    ``retries={"max_attempts": 3}``, which botocore counts as 3 retries after the first attempt)
  table:<text>      only tables whose name contains this text (default ``EventsTable``)
  seed:<n>          the random generator's seed (default 7), so a run is repeatable
  backoff_scale:<f> multiply the sleeps of botocore's retries in this process by f (default 1). Local time
                    compression, like BILLOPS_LOCAL_SCHEDULE_SCALE: the local stack runs a few receiver
                    environments, not Lambda's hundreds, so a retry's sleep (up to 1 s, then 2 s) holds the
                    deliveries queued behind it; how often and when the client retries is unchanged, only the
                    wait is shorter

e.g. ``throttle:0.04,error:0.02,error_after:0.02,repeat:0.5``. One uniform draw per PutItem picks throttle,
error, error_after or nothing. A "request" is recognised by its table and item (boto3 re-sends a failed request
unchanged; a new delivery of the same webhook carries a new ``received_at`` and is a new request).

``BILLOPS_LOCAL_DYNAMODB_FAULTS_REPORT`` (optional): a file where the counts are kept up to date as JSON
(``put_items``, ``throttle``, ``error``, ``error_after``, ``repeated``, ``faults``), written after each fault and
every 200 calls, and read by the reliability suites after the run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("billops_local.dynamodb_faults")

VARIABLE = "BILLOPS_LOCAL_DYNAMODB_FAULTS"
REPORT_VARIABLE = "BILLOPS_LOCAL_DYNAMODB_FAULTS_REPORT"
KINDS = ("throttle", "error", "error_after")
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_REMEMBERED_REQUESTS = 10_000


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class FaultSpec:
    throttle: float = 0.0
    error: float = 0.0
    error_after: float = 0.0
    repeat: float = 0.0
    attempts: int = 4
    table: str = "EventsTable"
    seed: int = 7
    backoff_scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        values: dict[str, Any] = {}
        for part in (item.strip() for item in text.split(",")):
            if not part:
                continue
            name, separator, raw = part.partition(":")
            name = name.strip()
            if not separator:
                raise FaultSpecError(f"{VARIABLE}: {part!r} is not name:value")
            raw = raw.strip()
            if name in (*KINDS, "repeat"):
                try:
                    rate = float(raw)
                except ValueError:
                    raise FaultSpecError(f"{VARIABLE}: {name}:{raw} is not a number") from None
                if not 0.0 <= rate <= 1.0:
                    raise FaultSpecError(f"{VARIABLE}: {name}:{raw} must be between 0 and 1")
                values[name] = rate
            elif name == "backoff_scale":
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise FaultSpecError(f"{VARIABLE}: backoff_scale:{raw} is not a number") from None
                if not 0.0 <= values[name] <= 1.0:
                    raise FaultSpecError(f"{VARIABLE}: backoff_scale must be between 0 and 1")
            elif name in ("attempts", "seed"):
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise FaultSpecError(f"{VARIABLE}: {name}:{raw} is not a whole number") from None
                if name == "attempts" and values[name] < 1:
                    raise FaultSpecError(f"{VARIABLE}: attempts must be at least 1")
            elif name == "table":
                values[name] = raw
            else:
                raise FaultSpecError(f"{VARIABLE}: unknown setting {name!r} (throttle, error, error_after, repeat, "
                                     "attempts, table, seed, backoff_scale)")
        spec = cls(**values)
        if spec.throttle + spec.error + spec.error_after > 1.0:
            raise FaultSpecError(f"{VARIABLE}: throttle + error + error_after must not exceed 1")
        return spec

    def describe(self) -> str:
        return (f"PutItem on *{self.table}*: throttle {self.throttle:g}, error {self.error:g}, "
                f"error_after {self.error_after:g}, repeat {self.repeat:g} (x{self.attempts - 1}), seed {self.seed}, "
                f"retry sleeps x{self.backoff_scale:g}")


@dataclass
class FaultInjector:
    spec: FaultSpec
    report_path: Path | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("put_items", *KINDS, "repeated", "faults"), 0))
    _random: random.Random = field(init=False)
    _sticky: dict[str, tuple[str, int]] = field(default_factory=dict)  # request -> (kind, failures left)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.spec.seed)  # nosec B311  # seeded randomness for fault injection, not security

    def applies_to(self, table_name: str | None) -> bool:
        return bool(table_name) and self.spec.table in str(table_name)

    def decide(self, request_key: str) -> str | None:
        """The fault for this call (a kind of KINDS) or None; counts it."""
        with self._lock:
            self.counts["put_items"] += 1
            kind = None
            sticky = self._sticky.pop(request_key, None)
            if sticky is not None:
                kind, left = sticky
                if left > 1:
                    self._sticky[request_key] = (kind, left - 1)
                self.counts["repeated"] += 1
            else:
                draw = self._random.random()
                if draw < self.spec.throttle:
                    kind = "throttle"
                elif draw < self.spec.throttle + self.spec.error:
                    kind = "error"
                elif draw < self.spec.throttle + self.spec.error + self.spec.error_after:
                    kind = "error_after"
                if kind is not None and self.spec.attempts > 1 and self._random.random() < self.spec.repeat:
                    if len(self._sticky) >= _REMEMBERED_REQUESTS:
                        self._sticky.pop(next(iter(self._sticky)))
                    # The item is written by the first fault already: its retries fail before writing.
                    self._sticky[request_key] = ("error" if kind == "error_after" else kind, self.spec.attempts - 1)
            if kind is not None:
                self.counts[kind] += 1
                self.counts["faults"] += 1
            write_report = kind is not None or self.counts["put_items"] % 200 == 0
            snapshot = dict(self.counts) if write_report else None
        if snapshot is not None:
            self._write_report(snapshot)
        return kind

    def not_applied(self, kind: str) -> None:
        """An error_after whose write did not happen (the condition failed): nothing was injected after all."""
        with self._lock:
            self.counts[kind] -= 1
            self.counts["faults"] -= 1

    def _write_report(self, counts: dict[str, int]) -> None:
        if self.report_path is None:
            return
        temporary = self.report_path.with_name(f".{self.report_path.name}.{threading.get_ident()}")
        try:
            temporary.write_text(json.dumps({**counts, "spec": self.spec.describe()}))
            os.replace(temporary, self.report_path)
        except OSError:
            log.warning("could not write the DynamoDB fault report %s", self.report_path)


_injector: FaultInjector | None = None
_retry_sleep_scale = 1.0
_patched = False
_backoff_patched = False
_patch_lock = threading.Lock()


def current() -> FaultInjector | None:
    return _injector


def install_from_env(env: Mapping[str, str] = os.environ) -> FaultInjector | None:
    """Turn the faults on as ``BILLOPS_LOCAL_DYNAMODB_FAULTS`` says, or off when it is unset or empty."""
    global _injector, _retry_sleep_scale
    text = (env.get(VARIABLE) or "").strip()
    if not text:
        _injector = None
        _retry_sleep_scale = 1.0
        return None
    spec = FaultSpec.parse(text)
    report = (env.get(REPORT_VARIABLE) or "").strip()
    injector = FaultInjector(spec, Path(report) if report else None)
    _patch_moto()
    _patch_backoff()
    _injector = injector
    _retry_sleep_scale = spec.backoff_scale
    injector._write_report(dict(injector.counts))
    log.warning("local DynamoDB fault injection is ON: %s", spec.describe())
    return injector


def write_final_report() -> None:
    """The counts as they are now (moto's process, stopping)."""
    injector = _injector
    if injector is not None:
        with injector._lock:
            counts = dict(injector.counts)
        injector._write_report(counts)


def compress_retry_sleeps_from_env(env: Mapping[str, str] = os.environ) -> None:
    """In a caller's process (a function's): botocore's retry sleeps x ``backoff_scale`` of the faults' spec."""
    global _retry_sleep_scale
    text = (env.get(VARIABLE) or "").strip()
    if not text:
        return
    _retry_sleep_scale = FaultSpec.parse(text).backoff_scale
    _patch_backoff()


def _request_key(table_name: str, item: Any) -> str:
    text = json.dumps(item, sort_keys=True, default=str)
    return hashlib.sha256(f"{table_name}\n{text}".encode()).hexdigest()


def _error(kind: str) -> Exception:
    from moto.dynamodb.exceptions import DynamodbException

    if kind == "throttle":
        return DynamodbException(
            ERROR_PREFIX + "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded (injected locally).")
    failure = DynamodbException(ERROR_PREFIX + "InternalServerError",
                                "Internal server error (injected locally).")
    failure.code = 500
    return failure


def _patch_moto() -> None:
    global _patched
    with _patch_lock:
        if _patched:
            return
        from moto.dynamodb.responses import DynamoHandler

        original = DynamoHandler.put_item

        @functools.wraps(original)
        def put_item(self: Any) -> Any:
            injector = _injector
            body = getattr(self, "body", None) or {}
            table_name = body.get("TableName") if isinstance(body, dict) else None
            if injector is None or not injector.applies_to(table_name):
                return original(self)
            kind = injector.decide(_request_key(str(table_name), body.get("Item")))
            if kind in ("throttle", "error"):
                raise _error(kind)
            try:
                result = original(self)
            except Exception:
                if kind == "error_after":  # e.g. the condition failed: nothing was written, the answer stands
                    injector.not_applied(kind)
                raise
            if kind == "error_after":
                raise _error(kind)
            return result

        DynamoHandler.put_item = put_item
        _patched = True


def _patch_backoff() -> None:
    """botocore's standard-mode retry sleeps, scaled by the faults' backoff_scale."""
    global _backoff_patched
    with _patch_lock:
        if _backoff_patched:
            return
        from botocore.retries.standard import ExponentialBackoff

        original = ExponentialBackoff.delay_amount

        @functools.wraps(original)
        def delay_amount(self: Any, context: Any) -> float:
            return original(self, context) * _retry_sleep_scale

        ExponentialBackoff.delay_amount = delay_amount
        _backoff_patched = True
