"""Domain events: what the merchant's systems hear about operations and subscriptions (EventBridge).

Bus ``BILLOPS_EVENT_BUS_NAME``, source ``billops``, detail-types:

* ``OperationSucceeded`` / ``OperationFailed`` / ``OperationRejected`` - the operation reached a final status;
* ``OperationEscalated`` - its outcome stayed unknown and automation stopped: a person must look;
* ``OperationAwaitingConsumer`` - allowUpgrade opened CCBill's 30-minute window: send the consumer to the form in
  the detail (``upgrade_form.url`` + ``upgrade_form.fields``) before ``window_expires_at``;
* ``SubscriptionChanged`` - the projector's fold changed a subscription's state (status, price, dates);
* ``UnexpectedUpgradeSale`` - an UpgradeSuccess / UpSaleSuccess for a subscription that was never
  offered an upgrade link and has no upgrade operation: someone upgraded it with a credential billops did not hand
  out for it (a spliced ``enc``, docs/upgrade-page.md). Also the metric of the same name and its alarm.

Details carry IDs, statuses and CCBill's code and meaning - never personal data (no names, emails, usernames).
A message with ``suppress_domain_events: true`` produces none of the Operation* events.

Delivery is at least once, through a small outbox: the event is written into the record's ``pending_events`` by
the same conditional write that moves the status, then put on the bus and removed. If the put fails the event
stays pending, and the worker (on redelivery) or the reconciliation job publishes it later; ``event_id`` is stable
so consumers can drop a repeat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from billops.operations import operation_states as states

logger = logging.getLogger(__name__)

SOURCE = "billops"
OPERATION_SUCCEEDED = "OperationSucceeded"
OPERATION_FAILED = "OperationFailed"
OPERATION_ESCALATED = "OperationEscalated"
OPERATION_REJECTED = "OperationRejected"
OPERATION_AWAITING_CONSUMER = "OperationAwaitingConsumer"
SUBSCRIPTION_CHANGED = "SubscriptionChanged"
UNEXPECTED_UPGRADE_SALE = "UnexpectedUpgradeSale"

_MAX_ENTRIES_PER_PUT = 10


class DomainEventsUnavailable(RuntimeError):
    """EventBridge did not accept every event (they stay pending and are published again later)."""


@dataclass(frozen=True)
class DomainEvent:
    detail_type: str
    detail: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.detail.get("event_id"))

    def as_item(self) -> dict[str, Any]:
        return {"detail_type": self.detail_type, "detail": self.detail}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DomainEvent:
        return cls(str(item["detail_type"]), _plain(dict(item["detail"])))


class Publisher(Protocol):
    def publish(self, events: list[DomainEvent]) -> None: ...


class EventBridgePublisher:
    def __init__(self, bus_name: str, client: Any = None) -> None:
        self.bus_name = bus_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is not None:
            return self._client
        from billops.storage.aws_clients import aws_client

        return aws_client("events")

    def publish(self, events: list[DomainEvent]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(events), _MAX_ENTRIES_PER_PUT):
            chunk = events[start:start + _MAX_ENTRIES_PER_PUT]
            entries = [{"Source": SOURCE, "DetailType": event.detail_type, "EventBusName": self.bus_name,
                        "Detail": json.dumps(event.detail, sort_keys=True, default=str)} for event in chunk]
            try:
                answer = self.client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise DomainEventsUnavailable(f"PutEvents failed: {type(error).__name__}") from error
            if answer.get("FailedEntryCount"):
                raise DomainEventsUnavailable(f"PutEvents refused {answer['FailedEntryCount']} of {len(chunk)} events")


class NullPublisher:
    """No bus configured (a unit test, a stack without the bus): events are logged by type and dropped."""

    def publish(self, events: list[DomainEvent]) -> None:
        for event in events:
            logger.info("no event bus configured; domain event not published",
                        extra={"detail_type": event.detail_type, "event_id": event.event_id})


class RecordingPublisher:
    """Keeps what it was given (tests, and the local tools)."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, events: list[DomainEvent]) -> None:
        self.events.extend(events)

    def of_type(self, detail_type: str) -> list[DomainEvent]:
        return [event for event in self.events if event.detail_type == detail_type]


def publisher_for(bus_name: str | None) -> Publisher:
    return EventBridgePublisher(bus_name) if bus_name else NullPublisher()


# --- what an operation's events say ------------------------------------------------------------------------------

DETAIL_TYPE_OF_STATUS = {
    states.SUCCEEDED: OPERATION_SUCCEEDED,
    states.FAILED: OPERATION_FAILED,
    states.REJECTED: OPERATION_REJECTED,
    states.AWAITING_CONSUMER: OPERATION_AWAITING_CONSUMER,
}


def operation_event(detail_type: str, record: Mapping[str, Any], at: str) -> DomainEvent:
    """The event ``detail_type`` for ``record`` as it is after the write that produced it (IDs, no personal data)."""
    ccbill = record.get("ccbill") or {}
    failure = record.get("failure") or {}
    attempt = int(record.get("attempt") or 0)
    detail: dict[str, Any] = {
        "event_id": f"{record['operation_id']}:{detail_type}:{attempt}",
        "operation_id": record["operation_id"],
        "operation_type": record.get("operation_type"),
        "subscription_id": record.get("subscription_id"),
        "idempotency_key": record.get("idempotency_key"),
        "status": states.API_STATUS.get(str(record.get("status")), record.get("status")),
        "record_status": record.get("status"),
        "escalated": bool(record.get("escalated")),
        "attempt": attempt,
        "ccbill_code": failure.get("code", ccbill.get("code")),
        "ccbill_meaning": failure.get("meaning", ccbill.get("meaning")),
        "failure_reason": failure.get("reason"),
        "param": failure.get("param"),
        "occurred_at": at,
    }
    if record.get("upgrade_method"):
        detail["upgrade_method"] = record["upgrade_method"]
    if record.get("new_subscription_id"):
        detail["new_subscription_id"] = record["new_subscription_id"]
    if detail_type == OPERATION_AWAITING_CONSUMER:
        detail["window_expires_at"] = record.get("window_expires_at")
        detail["upgrade_form"] = record.get("upgrade_form")
    if detail_type == OPERATION_ESCALATED:
        detail["unknown_reason"] = record.get("unknown_reason")
    return DomainEvent(detail_type, _plain(detail))


def unexpected_upgrade_sale_event(delivery_key: str, event_type: str, original_subscription_id: str,
                                  new_subscription_id: str, client_accnum: str | None, client_subacc: str | None,
                                  at: str) -> DomainEvent:
    detail = {
        "event_id": f"{delivery_key}:{UNEXPECTED_UPGRADE_SALE}",
        "event_type": event_type,
        "original_subscription_id": original_subscription_id,
        "new_subscription_id": new_subscription_id,
        "client_accnum": client_accnum,
        "client_subacc": client_subacc,
        "reason": "no upgrade link was offered for the original subscription and no upgrade operation exists for it",
        "occurred_at": at,
    }
    return DomainEvent(UNEXPECTED_UPGRADE_SALE, detail)


def subscription_changed_event(previous: Mapping[str, Any] | None, current: Mapping[str, Any],
                               changed: Iterable[str], at: str) -> DomainEvent:
    revision = int(current.get("revision") or 0)
    detail = {
        "event_id": f"{current['subscription_id']}:SubscriptionChanged:{revision}",
        "subscription_id": current["subscription_id"],
        "status": current.get("status"),
        "previous_status": (previous or {}).get("status"),
        "changed": sorted(changed),
        "recurring_price": current.get("recurring_price"),
        "currency": current.get("currency"),
        "next_renewal_date": current.get("next_renewal_date"),
        "original_subscription_id": current.get("original_subscription_id"),
        "revision": revision,
        "occurred_at": at,
    }
    return DomainEvent(SUBSCRIPTION_CHANGED, _plain(detail))


SUBSCRIPTION_FIELDS_WATCHED = ("status", "recurring_price", "currency", "next_renewal_date", "client_subacc",
                               "cancelled_at", "expired_at", "times_rebilled", "chargebacks", "refunds", "voids")


def subscription_changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """The watched fields whose value the fold changed (all of them for a subscription seen for the first time)."""
    before = previous or {}
    return [name for name in SUBSCRIPTION_FIELDS_WATCHED
            if _plain(before.get(name)) != _plain(current.get(name)) and not (previous is None and
                                                                             current.get(name) in (None, 0))]


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as int/str, so details compare and serialise the same before and after storage."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
