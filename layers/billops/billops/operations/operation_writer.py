"""Status writes with their domain events: one conditional write moves the record and registers its events.

Every part of the project that moves an operation (the worker, settlement, the reconciliation job, the upgrade
postback) goes through ``OperationWriter.move``. The events the move produces are written into the record's
``pending_events`` by the same UpdateItem - so a move without its event cannot happen - and are then put on the bus
and removed (``flush``). Whoever finds pending events later (a redelivered message, the reconciliation job)
flushes them again: at least once, with stable event IDs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from billops.domain_events import events
from billops.domain_events.publishing import DomainEventsUnavailable, Publisher
from billops import operation_states as states
from billops.operations.operation_records import iso, utc_now
from billops.storage.operations_table import Condition, OperationsTable

logger = logging.getLogger(__name__)

METRIC_OF_TARGET = {
    states.SUCCEEDED: "OperationSucceeded",
    states.FAILED: "OperationFailed",
    states.UNKNOWN: "OperationUnknown",
    states.RETRY_WAIT: "OperationRetryScheduled",
    states.AWAITING_CONSUMER: "OperationAwaitingConsumer",
    states.REJECTED: "OperationRejected",
    states.QUEUED: "OperationQueued",
    states.IN_PROGRESS: "OperationClaimed",
}


class OperationWriter:
    def __init__(self, table: OperationsTable, publisher: Publisher,
                 clock: Callable[[], datetime] = utc_now,
                 on_metric: Callable[[str], None] | None = None) -> None:
        self.table = table
        self.publisher = publisher
        self.clock = clock
        self.on_metric = on_metric or (lambda name: None)

    def move(
        self,
        record: Mapping[str, Any],
        *,
        target: str,
        values: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        condition: Condition | None = None,
        sources: Iterable[str] | None = None,
        event_types: Iterable[str] = (),
        flush: bool = True,
    ) -> dict[str, Any] | None:
        """Move ``record`` (as last read) to ``target``; None if someone moved it first (re-read then)."""
        now = iso(self.clock())
        values = dict(values or {})
        remove = tuple(remove)
        sources = tuple(sources) if sources is not None else (str(record["status"]),)
        expected = condition or Condition(equals={"attempt": int(record.get("attempt") or 0)})
        append: dict[str, list[Any]] = {}
        if not record.get("suppress_domain_events"):
            predicted = {**record, **values, "status": target}
            for name in remove:
                predicted.pop(name, None)
            produced = [events.operation_event(kind, predicted, now).as_item() for kind in event_types]
            if produced:
                append["pending_events"] = produced
        written = self.table.transition(str(record["operation_id"]), sources=sources, target=target, values=values,
                                        remove=remove, append=append, condition=expected, now=now)
        if written is None:
            return None
        if target != record.get("status") or target == states.UNKNOWN:
            name = "OperationEscalated" if values.get("escalated") is True else METRIC_OF_TARGET.get(target)
            if name:
                self.on_metric(name)
        return self.flush(written) if flush else written

    def flush(self, record: dict[str, Any]) -> dict[str, Any]:
        """Publish the record's pending events and forget them; on failure they stay pending (logged)."""
        pending = list(record.get("pending_events") or [])
        if not pending:
            return record
        try:
            self.publisher.publish([events.DomainEvent.from_item(item) for item in pending])
        except DomainEventsUnavailable:
            logger.warning("domain events stay pending", extra={"operation_id": record["operation_id"],
                                                                 "pending": len(pending)})
            self.on_metric("DomainEventPublishFailed")
            return record
        published = {str(item["detail"]["event_id"]) for item in pending}
        for _ in range(3):
            remaining = [item for item in pending if str(item["detail"]["event_id"]) not in published]
            updated = self.table.update_fields(str(record["operation_id"]),
                                               values={"pending_events": remaining or None},
                                               expect={"pending_events": pending}, now=iso(self.clock()))
            if updated is not None:
                self.on_metric("DomainEventPublished")
                return updated
            current = self.table.get(str(record["operation_id"]))
            if current is None:
                return record
            pending = list(current.get("pending_events") or [])
            if not pending:
                return current
        return record
