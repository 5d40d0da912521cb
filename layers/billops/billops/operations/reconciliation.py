"""The recurring reconciliation job (ReconciliationFunction, every 15 minutes).

What it settles, each from the by_status index, oldest first, in bounded batches:

1. ``awaiting_consumer`` operations whose allowUpgrade window (30 minutes) has passed -> ``failed`` with
   ``upgrade_window_expired`` (an Approval or UpgradeSuccess arriving later still turns it into ``succeeded``);
2. ``in_progress`` operations whose lease expired (the worker stopped) -> ``unknown``, then settled as below;
3. ``unknown`` operations -> settled by looking (settlement.py): status reads for cancel/extend, the subscriptions
   index for upgrades by API, re-sends where harmless, escalation after the settle window. Escalated upgrades by API
   are still checked for a late webhook; other escalated operations are left to a person;
4. domain events still pending on recently updated operations (EventBridge refused them earlier) -> published;
   recently succeeded upgrades by API with ``cancel_original`` whose cancellation is not queued yet (the projector
   settled them from a webhook, or the queue failed) -> the cancellation submitted (upgrade_follow_ups.py);
5. stale subscriptions: active or cancelled subscriptions whose CCBill view is missing or older than
   BILLOPS_REFRESH_STALE_SECONDS get a ``refresh`` operation on the queue (idempotency key
   ``reconcile-refresh:<subscription>:<hour>``, domain events suppressed), at most BILLOPS_RECONCILE_REFRESH_LIMIT
   per run - the worker's concurrency cap keeps these within CCBill's velocity limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from billops import operation_states as states
from billops.operations.operation_messages import parse_message
from billops.operations.operation_queue import enqueue
from billops.operations.operation_records import iso, parse_iso, utc_now
from billops.operations.operation_settings import OperationSettings
from billops.operations.operation_writer import OperationWriter
from billops.operations.settlement import Settler
from billops.storage.errors import StorageUnavailable
from billops.storage.operations_table import OperationsTable
from billops.storage.subscription_indexes import stale_subscriptions
from billops.storage.subscriptions_table import SubscriptionsTable

logger = logging.getLogger(__name__)

BATCH = 200
OUTBOX_LOOKBACK = timedelta(days=1)
SUBSCRIPTION_STATUSES_TO_REFRESH = ("active", "cancelled")


@dataclass
class ReconciliationResult:
    windows_expired: int = 0
    leases_expired: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    events_flushed: int = 0
    cancellations_queued: int = 0
    refreshes_enqueued: int = 0
    errors: int = 0
    ccbill_calls_paused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"windows_expired": self.windows_expired, "leases_expired": self.leases_expired,
                "settled": dict(self.settled), "events_flushed": self.events_flushed,
                "cancellations_queued": self.cancellations_queued,
                "refreshes_enqueued": self.refreshes_enqueued, "errors": self.errors,
                "ccbill_calls_paused": self.ccbill_calls_paused}


class Reconciler:
    def __init__(self, table: OperationsTable, subscriptions: SubscriptionsTable, settler: Settler,
                 writer: OperationWriter, settings: OperationSettings, sqs: Any = None,
                 clock: Callable[[], datetime] = utc_now, *, breaker: Any = None,
                 on_metric: Callable[[str], None] | None = None) -> None:
        self.table = table
        self.subscriptions = subscriptions
        self.settler = settler
        self.writer = writer
        self.settings = settings
        self.sqs = sqs
        self.clock = clock
        self.breaker = breaker  # billops.ccbill.circuit_breaker.CircuitBreaker, or None
        self.on_metric = on_metric or (lambda name: None)

    def run(self) -> ReconciliationResult:
        result = ReconciliationResult()
        self._each(states.AWAITING_CONSUMER, result, self._expire_window)
        self._each(states.IN_PROGRESS, result, self._expire_lease)
        self._each(states.UNKNOWN, result, self._settle)
        self._flush_outbox(result)
        paused = self._breaker_state(result)
        self._cancel_originals(result)  # queued only: while CCBill calls are paused they wait like any operation
        if not paused:
            self._refresh_stale(result)
        logger.info("reconciliation finished", extra=result.as_dict())
        return result

    def _each(self, status: str, result: ReconciliationResult, step: Callable[[dict, ReconciliationResult], None]
              ) -> None:
        for indexed in self.table.with_status(status, limit=BATCH):
            # The index lags behind the table: act on the record as it is now.
            record = self.table.get(str(indexed["operation_id"]))
            if record is None or record.get("status") != status:
                continue
            try:
                step(record, result)
            except StorageUnavailable:
                raise
            except Exception:
                result.errors += 1
                logger.exception("reconciling an operation failed", extra={"operation_id": record["operation_id"]})

    def _expire_window(self, record: dict, result: ReconciliationResult) -> None:
        expires = parse_iso(record.get("window_expires_at"))
        if expires is not None and expires < self.clock():
            moved = self.settler.expire_window(record)
            if moved.get("status") == states.FAILED:
                result.windows_expired += 1

    def _expire_lease(self, record: dict, result: ReconciliationResult) -> None:
        lease = parse_iso(record.get("lease_expires_at"))
        if lease is None or lease >= self.clock():
            return
        marked = self.settler.mark_unknown(record, "the worker stopped between its claim and its outcome write "
                                                   "(lease expired); CCBill may have been called")
        if marked is not None:
            result.leases_expired += 1
            self._settle(marked, result)

    def _settle(self, record: dict, result: ReconciliationResult) -> None:
        settled = self.settler.settle(record)
        outcome = "escalated" if settled.get("escalated") and settled.get("status") == states.UNKNOWN \
            else str(settled.get("status"))
        result.settled[outcome] = result.settled.get(outcome, 0) + 1

    def _breaker_state(self, result: ReconciliationResult) -> bool:
        """While CCBill calls are paused the alarm's metric keeps coming, and its domain event is published if it
        is still pending. True when paused (no refreshes are queued then: they would only wait)."""
        if self.breaker is None:
            return False
        try:
            status = self.breaker.status()
        except StorageUnavailable:
            result.errors += 1
            return False
        self.breaker.flush_pending()
        result.ccbill_calls_paused = status.open
        if status.open:
            self.on_metric("CCBillCallsPaused")
        return status.open

    def _flush_outbox(self, result: ReconciliationResult) -> None:
        since = iso(self.clock() - OUTBOX_LOOKBACK)
        for status in (states.SUCCEEDED, states.FAILED, states.REJECTED, states.UNKNOWN, states.AWAITING_CONSUMER):
            for record in self.table.with_status(status, updated_after=since, limit=BATCH, only="pending_events"):
                if record.get("pending_events"):
                    current = self.table.get(str(record["operation_id"]))
                    if current and current.get("pending_events"):
                        after = self.writer.flush(current)
                        if not after.get("pending_events"):
                            result.events_flushed += 1

    def _cancel_originals(self, result: ReconciliationResult) -> None:
        from billops.operations.upgrade_follow_ups import wants_original_cancelled

        since = iso(self.clock() - OUTBOX_LOOKBACK)
        for indexed in self.table.with_status(states.SUCCEEDED, updated_after=since, limit=BATCH,
                                               only="cancel_original_due"):
            if not wants_original_cancelled(indexed) or indexed.get("cancel_original_operation_id"):
                continue
            record = self.table.get(str(indexed["operation_id"]))
            if record is None or record.get("cancel_original_operation_id"):
                continue
            if self.settler.follow_ups.after_success(record).get("cancel_original_operation_id"):
                result.cancellations_queued += 1

    def _refresh_stale(self, result: ReconciliationResult) -> None:
        if self.settings.refresh_limit <= 0 or not self.settings.queue_url:
            return
        now = self.clock()
        cutoff = iso(now - timedelta(seconds=self.settings.refresh_stale_seconds))
        for subscription_id in self._stale_subscriptions(cutoff, self.settings.refresh_limit):
            message = parse_message({
                "operation_type": "refresh",
                "subscription_id": subscription_id,
                "idempotency_key": f"reconcile-refresh:{subscription_id}:{now:%Y%m%d%H}",
                "suppress_domain_events": True,
            })
            try:
                enqueue(message, queue_url=self.settings.queue_url, sqs=self.sqs)
                result.refreshes_enqueued += 1
            except Exception:
                result.errors += 1
                logger.exception("could not enqueue a refresh", extra={"subscription_id": subscription_id})

    def _stale_subscriptions(self, cutoff: str, limit: int) -> list[str]:
        return stale_subscriptions(self.subscriptions, SUBSCRIPTION_STATUSES_TO_REFRESH, cutoff, limit)
