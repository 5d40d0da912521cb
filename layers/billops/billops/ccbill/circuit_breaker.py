"""Stop calling CCBill after a run of -7 answers, before a wrong password locks the account.

-7 means "the outcome is unknown" and also "incorrect username or password" (ccbill-api-error-7-and-upgrades.txt);
three failed logins in an hour lock a DataLink account for an hour (-12). Every caller retrying its own -7 would
find the lock quickly. So, across every worker (the state is one DynamoDB item, billops.storage.ccbill_breaker_store):

* each authenticated call that gets result code -7 adds one to the run; any other answer CCBill documents (a result
  code that proves the login worked, a status document, an approval or decline) ends the run;
* when the run reaches BILLOPS_CCBILL_BREAKER_THRESHOLD (3) the breaker opens - once, by a conditional write - with
  a domain event (CCBillCallsPaused) and the metric CCBillCallsPaused (an alarm in template.yaml);
* while it is open no call leaves: the client answers a certain, retryable failure (kind ``circuit_open``, "not
  sent"), and the worker leaves operations waiting instead of claiming them (operation_runner.py);
* it closes only when a person says so (``billops ccbill resume``) or a check call succeeds (``billops ccbill
  check``: its status read of a subscription the merchant names passes the login) - never by itself, because an
  automatic probe with a wrong password is one more failed login.

The check before each call is one consistent GetItem; a -7 costs one or two UpdateItems.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billops.ccbill.outcomes import CCBillOutcome, OutcomeKind, OutcomeStatus

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 3
CALLS_PAUSED = "CCBillCallsPaused"
CALLS_RESUMED = "CCBillCallsResumed"
LOGIN_NOT_PROVEN = frozenset({-1, -7, -12})
"""Result codes that do not show the DataLink login was accepted: they neither count nor end a run (only -7
counts)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def threshold_from_env(env: Mapping[str, str] | None = None) -> int:
    """BILLOPS_CCBILL_BREAKER_THRESHOLD: consecutive -7 answers that open the breaker (default 3; 0 = never)."""
    from billops.settings.ccbill import BreakerSettings

    return BreakerSettings.from_env(env).breaker_threshold


def proves_login(outcome: CCBillOutcome) -> bool:
    """Did CCBill's answer show the DataLink login was accepted (so a run of -7 is over)?"""
    if outcome.kind in (OutcomeKind.DATA, OutcomeKind.DECLINED):
        return True
    return outcome.kind is OutcomeKind.RESULT_CODE and outcome.code not in LOGIN_NOT_PROVEN


def is_minus7(outcome: CCBillOutcome) -> bool:
    return outcome.kind is OutcomeKind.RESULT_CODE and outcome.code == -7


@dataclass(frozen=True)
class BreakerStatus:
    open: bool
    consecutive_minus7: int
    threshold: int
    details: Mapping[str, Any]


class CircuitBreaker:
    """Shared by every CCBill call of a container (the client asks it before and tells it after each call)."""

    def __init__(self, store: Any, threshold: int = DEFAULT_THRESHOLD, *,
                 publish: Callable[[str, dict[str, Any]], None] | None = None,
                 on_metric: Callable[[str], None] | None = None, clock: Callable[[], str] = _now) -> None:
        self.store = store
        self.threshold = threshold
        self._publish = publish
        self._on_metric = on_metric or (lambda name: None)
        self._clock = clock
        self._seen_run = 0  # the run length this container last read (a success resets only when there was one)

    # --- around each call ---------------------------------------------------------------------------------------

    def status(self) -> BreakerStatus:
        item = self.store.read()
        return BreakerStatus(item.is_open, item.consecutive_minus7, self.threshold, dict(item.attributes))

    def refusal(self, action: str) -> CCBillOutcome | None:
        """None: go ahead. Otherwise the outcome of a call that was not sent (open, or the state unreadable)."""
        if self.threshold <= 0:
            return None
        from billops.storage.errors import StorageUnavailable

        try:
            item = self.store.read()
        except StorageUnavailable as error:
            # Fail closed: not knowing whether we are locked out is no reason to risk one more failed login.
            return CCBillOutcome(action, OutcomeStatus.FAILED, f"The CCBill circuit breaker's state could not be "
                                 f"read ({error}); the request was not sent.", True, OutcomeKind.CIRCUIT_OPEN)
        self._seen_run = item.consecutive_minus7
        if not item.is_open:
            return None
        self._on_metric(CALLS_PAUSED)
        return CCBillOutcome(action, OutcomeStatus.FAILED, PAUSED_MEANING.format(count=item.consecutive_minus7),
                             True, OutcomeKind.CIRCUIT_OPEN)

    def record(self, outcome: CCBillOutcome, *, authenticated: bool = True) -> None:
        """What a call that was sent came to: count a -7, end a run on an answer that proves the login."""
        if self.threshold <= 0 or not authenticated:
            return
        from billops.storage.errors import StorageUnavailable

        try:
            if is_minus7(outcome):
                item = self.store.count_minus7(self._clock(), outcome.action)
                self._seen_run = item.consecutive_minus7
                if item.consecutive_minus7 >= self.threshold and not item.is_open:
                    self._open(item.consecutive_minus7, outcome.action)
            elif proves_login(outcome) and self._seen_run > 0:
                self.store.reset_count(self._clock())
                self._seen_run = 0
        except StorageUnavailable:
            # The call is over and its outcome recorded by the caller; a missed count is logged, not fatal.
            logger.warning("the CCBill circuit breaker could not be updated", extra={"ccbill_action": outcome.action})

    # --- opening and closing -------------------------------------------------------------------------------------

    def _open(self, count: int, action: str) -> None:
        now = self._clock()
        event = _event(CALLS_PAUSED, now, {"consecutive_minus7": count, "threshold": self.threshold,
                                           "last_action": action, "opened_at": now,
                                           "how_to_resume": "billops ccbill resume, or a passing billops ccbill "
                                                            "check"})
        opened = self.store.open(now, event)
        if opened is None:
            return  # another worker opened it
        logger.error("CCBill calls paused after %d consecutive -7 answers (a wrong DataLink login locks the account)",
                     count, extra={"ccbill_action": action, "threshold": self.threshold})
        self._on_metric(CALLS_PAUSED)
        self.flush_pending()

    def close(self, *, by: str, reason: str) -> bool:
        """open -> closed (``billops ccbill resume``, a passing check). False if it was not open."""
        now = self._clock()
        event = _event(CALLS_RESUMED, now, {"closed_by": by, "reason": reason, "closed_at": now})
        closed = self.store.close(now, by, reason, event)
        if closed is None:
            return False
        self._seen_run = 0
        logger.warning("CCBill calls resumed", extra={"closed_by": by, "reason": reason})
        self._on_metric(CALLS_RESUMED)
        self.flush_pending()
        return True

    def flush_pending(self) -> bool:
        """Publish the breaker's pending domain event (the reconciliation job calls this too). True if none left."""
        from billops.storage.errors import StorageUnavailable

        try:
            item = self.store.read()
        except StorageUnavailable:
            return False
        pending = item.attributes.get("pending_event")
        if not pending:
            return True
        if self._publish is None:
            return False
        try:
            self._publish(str(pending["detail_type"]), dict(pending["detail"]))
        except Exception:  # noqa: BLE001 - EventBridge refused: it stays pending for the next run
            logger.warning("the CCBill breaker's domain event stays pending")
            return False
        self.store.clear_pending_event(str(pending["detail"]["event_id"]), self._clock())
        return True


PAUSED_MEANING = ("CCBill calls are paused: {count} consecutive -7 answers (a wrong DataLink username or password "
                  "answers -7, and three failed logins in an hour lock the account). The request was not sent. "
                  "Fix the login if needed, then `billops ccbill resume` or a passing `billops ccbill check`.")


def _event(detail_type: str, now: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"detail_type": detail_type, "detail": {"event_id": f"ccbill-breaker:{detail_type}:{uuid.uuid4().hex}",
                                                   "occurred_at": now, **detail}}
