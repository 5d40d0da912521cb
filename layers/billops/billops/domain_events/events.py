"""What a domain event says: its detail-type and its detail, built from an operation record or a subscription.

Pure (no AWS): the operations code writes these into a record's outbox (``pending_events``) and publishing.py puts
them on the bus. The package's docstring lists the detail-types and the delivery guarantees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from billops import operation_states as states

SOURCE = "billops"
OPERATION_SUCCEEDED = "OperationSucceeded"
OPERATION_FAILED = "OperationFailed"
OPERATION_ESCALATED = "OperationEscalated"
OPERATION_REJECTED = "OperationRejected"
OPERATION_AWAITING_CONSUMER = "OperationAwaitingConsumer"
SUBSCRIPTION_CHANGED = "SubscriptionChanged"
UNEXPECTED_UPGRADE_SALE = "UnexpectedUpgradeSale"


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
