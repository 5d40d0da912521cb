"""Repeated authentication failures from one source are answered 429 ``api_request_limit_exceeded``.

Per source IP (API Gateway's ``requestContext.http.sourceIp``, never X-Forwarded-For) and per fixed window of
``BILLOPS_API_AUTH_FAILURE_WINDOW_SECONDS``: every failed authentication adds one to a DynamoDB counter
(``throttle#<source>#<window start>`` in the keys table, one atomic UpdateItem ``ADD``, removed by TTL after the
window). The first ``BILLOPS_API_AUTH_FAILURE_LIMIT`` failures are answered 401; every further failure of the
source is answered 429 with ``Retry-After`` until the window ends. A container that has seen a source blocked remembers it until the window
ends and answers its further failures without asking DynamoDB, so a flood of bad keys costs no writes.

A container checks its own record of blocked sources before it looks a key up (api_authentication.py): a flood of
distinct bad keys from a blocked source costs no read either. A valid key this container has looked up recently
still passes from a blocked source; one it has not seen gets the 429 until the window ends (reading it would mean a
read per bad key again). Keys carry 190 random bits - failures cannot be turned into a guess - so the limit exists
to tell a broken client to stop and to keep a flood of bad requests cheap, not to lock out a merchant whose NAT
address another client shares. It also keeps the warm path of a valid key free of AWS calls.

When DynamoDB cannot count (throttled, unreachable) the failure is answered 401 as usual: counting is a brake, not
a gate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from billops.merchant_api.api_keys import THROTTLE_PREFIX, ApiKeysTable
from billops.storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailureVerdict:
    blocked: bool
    retry_after_seconds: int = 0
    failures: int | None = None


class FailedAuthLimits:
    def __init__(self, table: ApiKeysTable, limit: int = 10, window_seconds: int = 300, *,
                 clock: Callable[[], float] = time.time, max_remembered: int = 10_000) -> None:
        self.table = table
        self.limit = max(1, int(limit))
        self.window_seconds = max(1, int(window_seconds))
        self.clock = clock
        self.max_remembered = max_remembered
        self.writes = 0  # DynamoDB writes, counted for tests
        self._blocked: dict[str, float] = {}  # source -> blocked until (epoch seconds)
        self._lock = threading.Lock()

    def _window(self, now: float) -> tuple[int, int]:
        start = int(now) - int(now) % self.window_seconds
        return start, start + self.window_seconds

    def blocked_here(self, source: str) -> FailureVerdict | None:
        """The verdict when this container already knows ``source`` is blocked (no AWS call), else None."""
        now = self.clock()
        with self._lock:
            until = self._blocked.get(source)
            if until is None:
                return None
            if until <= now:
                del self._blocked[source]
                return None
        return FailureVerdict(True, max(1, int(until - now + 0.999)))

    def record_failure(self, source: str) -> FailureVerdict:
        """Count one failure of ``source``; blocked when it went over the limit in this window."""
        known = self.blocked_here(source)
        if known is not None:
            return known
        now = self.clock()
        start, end = self._window(now)
        failures = self._count(f"{THROTTLE_PREFIX}{source}#{start}", expires_at=end + 60)
        if failures is None or failures <= self.limit:
            return FailureVerdict(False, failures=failures)
        with self._lock:
            if len(self._blocked) >= self.max_remembered:
                self._blocked = {s: t for s, t in self._blocked.items() if t > now}
                if len(self._blocked) >= self.max_remembered:
                    self._blocked.clear()
            self._blocked[source] = end
        logger.warning("authentication failures over the limit; the source is answered 429 until the window ends",
                       extra={"source_ip": source, "failures": failures, "window_ends_in": int(end - now)})
        return FailureVerdict(True, max(1, int(end - now + 0.999)), failures)

    def _count(self, key: str, *, expires_at: int) -> int | None:
        try:
            return self.table.count(key, expires_at=expires_at)
        except StorageUnavailable as error:
            logger.warning("could not count an authentication failure", extra={"error": str(error)})
            return None
        finally:
            self.writes += 1
