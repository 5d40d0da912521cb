"""Settling a refund or a void whose outcome is unknown: by CCBill's Refund / Void webhook or its status counters,
never by sending it again (a second partial refund would refund twice).

Evidence, in the order it is looked at:

1. a Refund (for a refund) or Void (for a void) webhook of the operation's subscription that CCBill sent, or that we
   received, no earlier than the call minus BILLOPS_EVIDENCE_TOLERANCE_SECONDS, for the amount asked (any amount
   for a full refund or a void). The projector hands every such delivery to ``settle_from_delivery`` at once; the
   subscription record's history (the same deliveries, folded) is read when an operation becomes unknown and by the
   reconciliation job. One webhook settles one operation (the oldest call it can belong to).
2. viewSubscriptionStatus: ``refundsIssued`` (refund) or ``voidsIssued`` (void) higher than in the read the worker
   made just before the call (``pre_call_view``) -> succeeded.

Without either: the operation stays unknown, and after BILLOPS_SETTLE_WINDOW_SECONDS it is escalated to a person
(OperationEscalated). A webhook arriving later still settles it. What CCBill's documents do not settle here (the
counters' meaning, which transaction a Refund webhook names) is in docs/ccbill-assumptions.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from billops.ccbill.outcomes import OutcomeKind
from billops import operation_states as states
from billops.operations.operation_records import parse_iso
from billops.operations.subscription_facts_store import _money  # one reading of a money value for operations

if TYPE_CHECKING:
    from billops.operations.settlement import Settler

logger = logging.getLogger(__name__)

EVENT_OF_TYPE = {"refund": "Refund", "void": "Void"}
"""The webhook each operation type is proven by (a refund by a Refund, a void by a Void)."""
MONEY_BACK_EVENTS = frozenset(EVENT_OF_TYPE.values())
COUNTERS_OF_TYPE = {"refund": ("refundsIssued",), "void": ("voidsIssued", "refundsIssued")}
"""viewSubscriptionStatus counters a refund / a void moves. Which counter CCBill moves for a void is not documented
(docs/ccbill-assumptions.md): either is taken for a void; a refund must move refundsIssued."""
SETTLEABLE = frozenset({states.IN_PROGRESS, states.UNKNOWN})


@dataclass(frozen=True)
class Reversal:
    """Money CCBill gave back on a subscription, as a webhook (or the subscription's history) reports it."""

    event_type: str
    subscription_id: str
    amount: Decimal | None
    moments: tuple[datetime, ...]
    reference: str  # the delivery key
    source: str  # "webhook" | "subscription_history"


def _count(value: Any) -> int | None:
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else None


def reversal_from_delivery(delivery: Mapping[str, Any]) -> Reversal | None:
    """A Reversal from a stored events-table delivery of a Refund or Void."""
    if delivery.get("record_type") != "delivery" or delivery.get("event_type") not in MONEY_BACK_EVENTS:
        return None
    fields = delivery.get("fields") or {}
    subscription_id = str(delivery.get("subscription_id") or fields.get("subscriptionId") or "").strip()
    if not subscription_id:
        return None
    moments = tuple(m for m in (parse_iso(delivery.get("occurred_at")), parse_iso(delivery.get("received_at"))) if m)
    return Reversal(str(delivery["event_type"]), subscription_id, _money(fields.get("amount")), moments,
                    str(delivery.get("pk") or ""), "webhook")


def reversals_in_history(subscription: Mapping[str, Any] | None) -> list[Reversal]:
    """The Refund / Void entries of a subscription record's history (the projector's fold of the same webhooks)."""
    if not subscription:
        return []
    found = []
    for entry in subscription.get("history") or []:
        if entry.get("event_type") not in MONEY_BACK_EVENTS:
            continue
        fields = entry.get("fields") or {}
        moments = tuple(m for m in (parse_iso(entry.get("occurred_at")), parse_iso(entry.get("received_at"))) if m)
        found.append(Reversal(str(entry["event_type"]), str(subscription.get("subscription_id")),
                              _money(fields.get("amount")), moments, str(entry.get("key") or ""),
                              "subscription_history"))
    return found


class MoneyBackSettlement:
    """The refund / void rules of settlement.Settler (which it uses for every move)."""

    def __init__(self, settler: Settler) -> None:
        self.settler = settler

    # --- an unknown operation, looked at ---------------------------------------------------------------------------

    def settle(self, record: dict[str, Any]) -> dict[str, Any]:
        settler = self.settler
        subscription_id = str(record["subscription_id"])
        settled = self._settle_with(record, reversals_in_history(settler.facts_store.get(subscription_id)))
        if settled is not None:
            return settled
        if record.get("escalated"):
            return record  # a person decides; only a webhook still moves it (no CCBill call every 15 minutes)
        outcome = settler.client_factory().view_subscription_status(subscription_id,
                                                                    client_subacc=record.get("client_subacc") or None)
        if outcome.kind is OutcomeKind.CIRCUIT_OPEN:
            return record  # CCBill calls are paused: wait, do not escalate for that
        if not outcome.succeeded:
            logger.info("status lookup failed; the refund/void stays unknown",
                        extra={"operation_id": record["operation_id"], "ccbill_code": outcome.code})
            return settler._escalate_if_overdue(record, "viewSubscriptionStatus could not be read within the settle "
                                                        "window")
        settler._keep_view(record, dict(outcome.data))
        readings = []
        for counter in COUNTERS_OF_TYPE[str(record["operation_type"])]:
            before = _count((record.get("pre_call_view") or {}).get(counter))
            after = _count(outcome.data.get(counter))
            if before is not None and after is not None and after > before:
                return settler._succeed(record, {"source": "viewSubscriptionStatus",
                                                 "detail": f"{counter} went from {before} to {after}"}) or record
            readings.append(f"{counter} is still {after}" if before is not None and after is not None
                            else f"{counter} could not be compared (before {before}, now {after})")
        detail = "; ".join(readings)
        return settler._escalate_if_overdue(record, f"no {EVENT_OF_TYPE[str(record['operation_type'])]} webhook "
                                                    f"arrived within the settle window and {detail}; a refund or "
                                                    "void is never sent twice automatically")

    # --- a webhook, as the projector stores it ---------------------------------------------------------------------

    def settle_from_delivery(self, delivery: Mapping[str, Any]) -> list[dict[str, Any]]:
        reversal = reversal_from_delivery(delivery)
        if reversal is None:
            return []
        operations = self._operations_of(reversal.subscription_id)
        if any((op.get("settled_by") or {}).get("reference") == reversal.reference for op in operations):
            return []  # this webhook settled one already (a redelivery, or the history was read first)
        candidates = sorted((op for op in operations if self._matches(op, reversal)),
                            key=lambda op: str(op.get("call_started_at") or ""))
        for candidate in candidates:
            settled = self._succeed(candidate, reversal)
            if settled is not None:
                return [settled]
        return []

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _settle_with(self, record: dict[str, Any], reversals: Iterable[Reversal]) -> dict[str, Any] | None:
        used = {str((op.get("settled_by") or {}).get("reference"))
                for op in self._operations_of(str(record["subscription_id"]))
                if op["operation_id"] != record["operation_id"] and (op.get("settled_by") or {}).get("reference")}
        for reversal in sorted(reversals, key=lambda r: min(r.moments) if r.moments else datetime.max):
            if reversal.reference not in used and self._matches(record, reversal):
                settled = self._succeed(record, reversal)
                if settled is not None:
                    return settled
        return None

    def _succeed(self, record: dict[str, Any], reversal: Reversal) -> dict[str, Any] | None:
        settled = self.settler._succeed(record, {"source": reversal.source, "event_type": reversal.event_type,
                                                 "reference": reversal.reference,
                                                 "amount": None if reversal.amount is None
                                                 else f"{reversal.amount:.2f}"})
        if settled is not None:
            logger.info("refund/void settled by evidence", extra={"operation_id": record["operation_id"],
                                                                  "evidence": reversal.source})
        return settled

    def _matches(self, record: Mapping[str, Any], reversal: Reversal) -> bool:
        if EVENT_OF_TYPE.get(str(record.get("operation_type"))) != reversal.event_type:
            return False
        if record.get("status") not in SETTLEABLE or str(record.get("subscription_id")) != reversal.subscription_id:
            return False
        asked = _money((record.get("parameters") or {}).get("amount"))
        if asked is not None and reversal.amount is not None and asked != reversal.amount:
            return False
        started = parse_iso(record.get("call_started_at"))
        if started is None:
            return False  # never called: no reversal can be ours
        earliest = started - timedelta(seconds=self.settler.settings.evidence_tolerance_seconds)
        return any(moment >= earliest for moment in reversal.moments)

    def _operations_of(self, subscription_id: str) -> list[dict[str, Any]]:
        """The subscription's refunds and voids, each read again consistently (the index lags)."""
        table = self.settler.table
        found = []
        for indexed in table.by_subscription(subscription_id):
            if indexed.get("operation_type") not in EVENT_OF_TYPE:
                continue
            current = table.get(str(indexed["operation_id"]))
            if current is not None:
                found.append(current)
        return found
