"""Settling operations whose outcome is not known: by looking, never by sending a charge again.

An operation is ``unknown`` when CCBill may have applied it: -7, a read timeout or reset after the request left, a
5xx, an unreadable answer, or a worker that stopped between its claim and its outcome write (an ``in_progress``
record whose lease expired is turned into ``unknown`` by ``mark_unknown``, never re-run). Each type is settled by the
evidence that exists for it:

================  ==========================================================================================
type              how an unknown outcome is settled
================  ==========================================================================================
upgrade by API    chargeByPreviousTransactionId charges money, so it is **never** sent again automatically.
                  Evidence is the sale webhook (UpgradeSuccess / UpSaleSuccess / CrossSaleSuccess) whose
                  originalSubscriptionId is the operation's subscription, for the planned destination, no earlier
                  than the call minus the tolerance (5 min): the projector hands every such delivery to
                  ``settle_from_delivery`` at once, and the reconciliation job also asks the subscriptions table's
                  ``by_original_subscription`` index. Found: succeeded (with the new subscription ID). Not found
                  within BILLOPS_SETTLE_WINDOW_SECONDS: escalated (``escalated=true``, OperationEscalated) - a
                  person decides; a webhook arriving later still settles it.
                  A failure webhook (UpSaleFailure / UpgradeFailure) with the same original subscription,
                  destination and time settles it as failed (``upgrade_declined``, CCBill's failure code and
                  reason) - BILLOPS_SETTLE_BY_FAILURE_WEBHOOKS, on by default.
upgrade by        allowUpgrade changes nothing at CCBill (it opens a window): re-sent (retry_wait).
allowUpgrade
discount          A ``newRecurringPrice`` (given, or converted from the amount, operation_actions.py) is re-sent:
                  a repeat leaves the price where the first put it. A CCBill refusal of the re-send with -20/-21
                  cannot tell "already applied" from "someone else changed the price": escalated. A
                  ``discountAmount`` (the price was not known) is escalated at once.
cancel            viewSubscriptionStatus: cancelled (1) or expired (0) -> succeeded; still active recurring (2)
                  -> re-sent (cancelling twice is harmless); anything else -> escalated.
extend            viewSubscriptionStatus before the call is stored (``pre_call_view``); after an unknown one the
                  date is read again: moved by exactly the requested days -> succeeded; unchanged -> re-sent;
                  moved otherwise (a renewal in between...) -> escalated.
refresh           read-only: re-sent.
refund, void      never sent again: the Refund / Void webhook, or viewSubscriptionStatus's refundsIssued /
                  voidsIssued above the read made before the call -> succeeded; otherwise escalated after the
                  settle window (money_back_settlement.py).
================  ==========================================================================================

A lookup that itself fails leaves the operation ``unknown`` for the reconciliation job; after the settle window it
is escalated. Re-sends count as attempts (BILLOPS_OPERATION_MAX_ATTEMPTS); when they run out an operation proven
not applied ends ``failed``, a discount re-send is escalated.

Times: CCBill's webhook ``timestamp`` carries no zone (stored as if UTC; CCBill may mean Phoenix time, 7 hours
behind), so a webhook counts as evidence when *either* its timestamp or our receipt of it is no earlier than the
call minus the tolerance - our own clock is always a valid witness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billops.ccbill.outcomes import OutcomeKind
from billops.ccbill.subscription_facts import SubscriptionState, facts_from_status, parse_ccbill_datetime
from billops.domain_events import events
from billops.domain_events.publishing import DomainEventsUnavailable
from billops import operation_states as states
from billops.operations.money_back_settlement import EVENT_OF_TYPE as MONEY_BACK_TYPES
from billops.operations.money_back_settlement import MONEY_BACK_EVENTS, MoneyBackSettlement
from billops.operations.operation_actions import ALLOW_UPGRADE, CHARGE_UPGRADE
from billops.operations.operation_context import OperationContext, UsesOperationContext
from billops.operations.operation_records import iso, parse_iso
from billops.operations.upgrade_follow_ups import UpgradeFollowUps
from billops.storage.operations_table import Condition

logger = logging.getLogger(__name__)

UPGRADE_SALE_EVENTS = frozenset({"UpgradeSuccess", "UpSaleSuccess", "CrossSaleSuccess"})
UPGRADE_FAILURE_EVENTS = frozenset({"UpgradeFailure", "UpSaleFailure", "CrossSaleFailure"})
UNEXPECTED_IF_UNOFFERED = frozenset({"UpgradeSuccess", "UpSaleSuccess"})
"""Sales that raise UnexpectedUpgradeSale when their original was never offered an upgrade (nor upgraded by us)."""
UPGRADE_DECLINED = "upgrade_declined"
"""failure_reason of an upgrade by API of unknown outcome that a failure webhook showed declined."""
ALLOW_UPGRADE_SALE_EVENTS = frozenset({"UpgradeSuccess"})
SETTLEABLE_BY_EVIDENCE = frozenset({states.IN_PROGRESS, states.UNKNOWN, states.AWAITING_CONSUMER, states.FAILED})


@dataclass(frozen=True)
class Sale:
    """A sale that may be the result of one of our upgrade operations (from a webhook or a subscription record)."""

    subscription_id: str
    original_subscription_id: str
    event_type: str
    client_accnum: str | None
    client_subacc: str | None
    moments: tuple[datetime, ...]
    source: str  # "webhook" | "subscriptions_index" | "postback"
    reference: str | None = None


class Settler(UsesOperationContext):
    def __init__(self, context: OperationContext) -> None:
        super().__init__(context)
        self.follow_ups = UpgradeFollowUps(context.table, context.settings, clock=context.clock)
        """cancel_original after an upgrade by API succeeds (upgrade_follow_ups.py)."""

    # --- worker died ----------------------------------------------------------------------------------------------

    def mark_unknown(self, record: dict[str, Any], reason: str) -> dict[str, Any] | None:
        """An in_progress record whose lease expired: the worker stopped, and CCBill may have been called."""
        now = iso(self.clock())
        return self.writer.move(
            record, target=states.UNKNOWN,
            values={"unknown_since": now, "unknown_reason": reason},
            remove=("lease_expires_at",),
            condition=Condition(equals={"attempt": int(record.get("attempt") or 0)}, lease_expired_by=now),
        )

    # --- unknown -> looked at -------------------------------------------------------------------------------------

    def settle(self, record: dict[str, Any]) -> dict[str, Any]:
        """Apply the type's rule to an unknown record; returns the record as it is afterwards."""
        if record.get("status") != states.UNKNOWN:
            return record
        kind = record.get("operation_type")
        method = (record.get("parameters") or {}).get("method")
        if kind == "upgrade" and method == CHARGE_UPGRADE:
            return self._settle_charge(record)
        if kind in MONEY_BACK_TYPES:
            return MoneyBackSettlement(self).settle(record)
        if record.get("escalated"):
            return record  # a person decides; only evidence (webhooks, postbacks) still moves it
        if kind == "upgrade" and method == ALLOW_UPGRADE:
            return self._retry(record, "allowUpgrade changes nothing; sent again", proven_not_applied=True)
        if kind == "refresh":
            return self._retry(record, "a read; sent again", proven_not_applied=True)
        if kind == "discount":
            plan = record.get("plan") or {}
            if plan.get("param") == "newRecurringPrice":
                return self._retry(record, "the same newRecurringPrice sent again cannot lower the price twice",
                                   proven_not_applied=False)
            return self._escalate(record, "a discountAmount whose outcome is unknown cannot be sent again (the "
                                          "current recurring price was not known, so it could apply twice)")
        if kind == "cancel":
            return self._settle_by_view(record, self._cancel_verdict)
        if kind == "extend":
            return self._settle_by_view(record, self._extend_verdict)
        return self._escalate(record, f"no settlement rule for {kind!r}")

    def _settle_charge(self, record: dict[str, Any]) -> dict[str, Any]:
        sales = self._sales_from_index(str(record["subscription_id"]))
        chosen = self._match_for(record, sales) if sales else None
        if chosen is not None:
            settled = self.settle_with_sale(record, chosen)
            if settled is not None:
                return settled
        return self._escalate_if_overdue(record, "no sale webhook for this upgrade arrived within the settle "
                                                 "window; chargeByPreviousTransactionId is never sent twice "
                                                 "automatically")

    def _settle_by_view(self, record: dict[str, Any], verdict: Callable[[dict, Mapping[str, str]], tuple[str, str]]
                        ) -> dict[str, Any]:
        outcome = self.client_factory().view_subscription_status(str(record["subscription_id"]),
                                                                 client_subacc=record.get("client_subacc") or None)
        if outcome.kind is OutcomeKind.CIRCUIT_OPEN:
            return record  # CCBill calls are paused: not a failed lookup, nothing to escalate for
        if not outcome.succeeded:
            logger.info("status lookup failed; the operation stays unknown",
                        extra={"operation_id": record["operation_id"], "ccbill_code": outcome.code})
            return self._escalate_if_overdue(record, "viewSubscriptionStatus could not be read within the settle "
                                                     "window")
        self._keep_view(record, dict(outcome.data))
        decision, reason = verdict(record, outcome.data)
        if decision == "succeeded":
            return self._succeed(record, {"source": "viewSubscriptionStatus", "detail": reason}) or record
        if decision == "retry":
            return self._retry(record, reason, proven_not_applied=True)
        return self._escalate(record, reason)

    @staticmethod
    def _cancel_verdict(record: dict, view: Mapping[str, str]) -> tuple[str, str]:
        facts = facts_from_status(view)
        if facts.state in (SubscriptionState.CANCELLED, SubscriptionState.EXPIRED):
            return "succeeded", f"CCBill shows the subscription {facts.state.value}"
        if facts.state is SubscriptionState.ACTIVE and facts.is_recurring:
            return "retry", "CCBill shows the subscription still active: the cancellation did not apply"
        return "escalate", (f"CCBill's status {view.get('subscriptionStatus')!r} does not say whether the "
                            "cancellation applied")

    @staticmethod
    def _extend_verdict(record: dict, view: Mapping[str, str]) -> tuple[str, str]:
        before = record.get("pre_call_view") or {}
        days = int((record.get("parameters") or {}).get("days") or 0)
        for name in ("nextBillingDate", "expirationDate"):
            old, new = parse_ccbill_datetime(before.get(name)), parse_ccbill_datetime(view.get(name))
            if old is None:
                continue
            if new is None:
                return "escalate", f"{name} was {before.get(name)} before the call and is empty now"
            if new == old:
                return "retry", f"{name} is unchanged: the extension did not apply"
            if new - old == timedelta(days=days):
                return "succeeded", f"{name} moved by {days} days"
            return "escalate", f"{name} moved from {before.get(name)} to {view.get(name)}, not by {days} days"
        return "escalate", "no billing or expiration date was read before the call to compare with"

    # --- moves -------------------------------------------------------------------------------------------------------

    def _succeed(self, record: dict[str, Any], settled_by: dict[str, Any],
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        now = iso(self.clock())
        values = {"settled_by": settled_by, "settled_at": now, "completed_at": now, "escalated": False,
                  **(extra or {})}
        condition = Condition(equals={"attempt": int(record.get("attempt") or 0)})
        if record.get("status") == states.FAILED:
            condition.equals["failure_reason"] = states.WINDOW_EXPIRED
            values.update({"failure": None, "failure_reason": None})
        moved = self.writer.move(record, target=states.SUCCEEDED, values=values, condition=condition,
                                 remove=("lease_expires_at", "waiting", "due_at"),
                                 event_types=[events.OPERATION_SUCCEEDED])
        return None if moved is None else dict(self.follow_ups.after_success(moved))

    def _retry(self, record: dict[str, Any], reason: str, *, proven_not_applied: bool) -> dict[str, Any]:
        attempts = int(record.get("attempt") or 0)
        limit = int(record.get("max_attempts") or self.settings.max_attempts)
        if not self.retry_policy.may_retry(attempts, limit):
            if not proven_not_applied:
                return self._escalate(record, f"{reason}; but the {attempts} attempts allowed are used up")
            return self._fail(record, "retries_exhausted", f"{reason}; the {attempts} attempts allowed are used up")
        due = self.retry_policy.due_at(self.clock(), attempts)
        moved = self.writer.move(record, target=states.RETRY_WAIT,
                                 values={"waiting": "1", "due_at": iso(due), "retry_reason": reason,
                                         "resend_after_unknown": True})
        return moved or self._reread(record)

    def _fail(self, record: dict[str, Any], reason: str, message: str, *, code: int | None = None,
              param: str | None = None) -> dict[str, Any]:
        now = iso(self.clock())
        moved = self.writer.move(record, target=states.FAILED,
                                 values={"failure": {"reason": reason, "message": message, "code": code,
                                                     "param": param},
                                         "failure_reason": reason, "completed_at": now},
                                 remove=("lease_expires_at", "waiting", "due_at"),
                                 event_types=[events.OPERATION_FAILED])
        return moved or self._reread(record)

    def _escalate(self, record: dict[str, Any], reason: str) -> dict[str, Any]:
        if record.get("escalated"):
            return record
        moved = self.writer.move(record, target=states.UNKNOWN,
                                 values={"escalated": True, "escalated_at": iso(self.clock()),
                                         "unknown_reason": reason},
                                 event_types=[events.OPERATION_ESCALATED])
        if moved is not None:
            logger.warning("operation escalated", extra={"operation_id": record["operation_id"],
                                                         "operation_type": record.get("operation_type")})
        return moved or self._reread(record)

    def _escalate_if_overdue(self, record: dict[str, Any], reason: str) -> dict[str, Any]:
        since = parse_iso(record.get("unknown_since")) or parse_iso(record.get("call_started_at"))
        if record.get("escalated") or since is None:
            return record
        if (self.clock() - since).total_seconds() < self.settings.settle_window_seconds:
            return record
        return self._escalate(record, reason)

    def _reread(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.table.get(str(record["operation_id"])) or record

    def _keep_view(self, record: dict[str, Any], view: dict[str, str]) -> None:
        try:
            self.facts_store.record_view(str(record["subscription_id"]), view, str(record["operation_id"]),
                                         iso(self.clock()))
        except Exception:  # noqa: BLE001 - a missed note on the subscription must not stop the settlement
            logger.warning("could not keep CCBill's view on the subscription record",
                           extra={"operation_id": record["operation_id"]})

    def expire_window(self, record: dict[str, Any]) -> dict[str, Any]:
        """An allowUpgrade window that passed with neither Approval nor Denial: failed, upgrade_window_expired."""
        now = iso(self.clock())
        moved = self.writer.move(
            record, target=states.FAILED,
            values={"failure": {"reason": states.WINDOW_EXPIRED, "code": None,
                                "message": "the consumer did not complete the upgrade within CCBill's 30-minute "
                                           "window", "param": None},
                    "failure_reason": states.WINDOW_EXPIRED, "completed_at": now},
            condition=Condition(equals={"attempt": int(record.get("attempt") or 0),
                                        "window_expires_at": record["window_expires_at"]}),
            event_types=[events.OPERATION_FAILED])
        return moved or self._reread(record)

    # --- evidence: sale webhooks, the subscriptions index, postbacks ------------------------------------------------

    def settle_from_delivery(self, delivery: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The projector's hook: a stored sale delivery naming an original subscription settles its upgrade; a
        failure delivery (UpSaleFailure, UpgradeFailure) settles a matching upgrade of unknown outcome as failed;
        a sale no offer or operation explains raises UnexpectedUpgradeSale; a Refund / Void delivery settles its
        refund or void (money_back_settlement.py)."""
        if delivery.get("event_type") in MONEY_BACK_EVENTS:
            return MoneyBackSettlement(self).settle_from_delivery(delivery)
        if delivery.get("event_type") in UPGRADE_FAILURE_EVENTS:
            return self._settle_from_failure(delivery)
        sale = sale_from_delivery(delivery)
        if sale is None:
            return []
        operations = self._upgrades_of(sale.original_subscription_id)
        if any(op.get("new_subscription_id") == sale.subscription_id for op in operations):
            return []  # this sale already settled one of them (a redelivered webhook)
        chosen = self._match_for_any(operations, sale)
        if chosen is None:
            if not operations:
                self._check_expected(sale, delivery)
            return []
        settled = self.settle_with_sale(chosen, sale)
        return [settled] if settled is not None else []

    # --- evidence of a decline: the failure webhooks ---------------------------------------------------------------

    def _settle_from_failure(self, delivery: Mapping[str, Any]) -> list[dict[str, Any]]:
        """An upgrade by API whose outcome is unknown, for the delivery's original subscription and destination,
        called no later than the decline (tolerance included): failed, with CCBill's failure code and reason. The
        oldest such operation, once per delivery."""
        if not self.settings.settle_by_failure_webhooks or delivery.get("record_type") != "delivery":
            return []
        fields = delivery.get("fields") or {}
        original = str(fields.get("originalSubscriptionId") or "").strip()
        if not original:
            return []  # without the original (an assumption: docs/ccbill-assumptions.md) nothing can be matched
        reference = str(delivery.get("pk") or "")
        operations = self._upgrades_of(original)
        if any((op.get("settled_by") or {}).get("reference") == reference for op in operations):
            return []  # this delivery already settled one (a redelivered webhook)
        decline = Sale("", original, str(delivery["event_type"]), _text(fields.get("clientAccnum")),
                       _text(fields.get("clientSubacc")),
                       tuple(m for m in (parse_iso(delivery.get("occurred_at")), parse_iso(delivery.get("received_at")))
                             if m), "webhook", reference)
        # In progress too: CCBill may post the decline before the call's answer is lost (a read timeout comes later).
        candidates = [op for op in operations if op.get("status") in (states.UNKNOWN, states.IN_PROGRESS)
                      and (op.get("parameters") or {}).get("method") == CHARGE_UPGRADE
                      and self._same_destination_and_time(op, decline)]
        if not candidates:
            return []
        record = min(candidates, key=lambda op: str(op.get("call_started_at") or ""))
        reason = str(fields.get("failureReason") or "CCBill declined the upgrade").strip()[:300]
        for _ in range(3):  # the worker may move it (in_progress -> unknown) between our read and our write
            now = iso(self.clock())
            moved = self.writer.move(
                record, target=states.FAILED,
                values={"failure": {"reason": UPGRADE_DECLINED, "code": _text(fields.get("failureCode")),
                                    "message": reason, "meaning": reason, "param": None},
                        "failure_reason": UPGRADE_DECLINED, "completed_at": now, "escalated": False,
                        "settled_by": {"source": "webhook", "event_type": decline.event_type,
                                       "reference": reference},
                        "settled_at": now},
                remove=("lease_expires_at", "waiting", "due_at"),
                event_types=[events.OPERATION_FAILED])
            if moved is not None:
                logger.info("upgrade settled as declined by a failure webhook",
                            extra={"operation_id": record["operation_id"], "event_type": decline.event_type})
                return [moved]
            record = self._reread(record)
            if record.get("status") not in (states.UNKNOWN, states.IN_PROGRESS):
                return []
        return []

    # --- a sale nothing explains ---------------------------------------------------------------------------------

    def _check_expected(self, sale: Sale, delivery: Mapping[str, Any]) -> None:
        """An upgrade sale for a subscription with no upgrade operation: was it ever offered an upgrade link? If
        not, someone upgraded it with a credential we never handed out for it (a spliced enc): alarm."""
        if sale.source != "webhook" or sale.event_type not in UNEXPECTED_IF_UNOFFERED:
            return  # a CrossSaleSuccess is another product bought with the card on file, not an upgrade
        original = self.facts_store.get(sale.original_subscription_id)
        if original is None or (original.get("operation_facts") or {}).get("upgrade_offers"):
            # Unknown to us (another account's, or before billops): nothing to compare with. Offered: expected.
            return
        logger.warning("an upgrade sale for a subscription that was never offered an upgrade",
                       extra={"subscription_id": sale.original_subscription_id,
                              "new_subscription_id": sale.subscription_id, "event_type": sale.event_type})
        self.writer.on_metric(events.UNEXPECTED_UPGRADE_SALE)
        event = events.unexpected_upgrade_sale_event(
            str(delivery.get("pk") or sale.reference), sale.event_type, sale.original_subscription_id,
            sale.subscription_id, sale.client_accnum, sale.client_subacc, iso(self.clock()))
        try:
            self.writer.publisher.publish([event])
        except DomainEventsUnavailable:
            self.writer.on_metric("DomainEventPublishFailed")
            logger.warning("UnexpectedUpgradeSale not published", extra={"subscription_id":
                                                                         sale.original_subscription_id})

    def _upgrades_of(self, subscription_id: str) -> list[dict[str, Any]]:
        """The subscription's upgrade operations, each read again consistently: the by_subscription index is
        eventually consistent, and a status seen there a moment ago (queued) may already be in_progress."""
        found = []
        for indexed in self.table.by_subscription(subscription_id):
            if indexed.get("operation_type") != "upgrade":
                continue
            current = self.table.get(str(indexed["operation_id"]))
            if current is not None:
                found.append(current)
        return found

    def settle_with_sale(self, record: dict[str, Any], sale: Sale) -> dict[str, Any] | None:
        settled_by = {"source": sale.source, "event_type": sale.event_type, "reference": sale.reference,
                      "new_subscription_id": sale.subscription_id}
        result = self._succeed(record, settled_by, {"new_subscription_id": sale.subscription_id})
        if result is None:
            fresh = self._reread(record)
            if fresh.get("status") in SETTLEABLE_BY_EVIDENCE and fresh.get("status") != record.get("status"):
                return self._succeed(fresh, settled_by, {"new_subscription_id": sale.subscription_id})
            return None
        logger.info("upgrade settled by evidence", extra={"operation_id": record["operation_id"],
                                                          "evidence": sale.source})
        return result

    def _match_for_any(self, operations: Iterable[dict[str, Any]], sale: Sale) -> dict[str, Any] | None:
        candidates = [op for op in operations if self._matches(op, sale)]
        candidates.sort(key=lambda op: str(op.get("call_started_at") or ""))
        return candidates[0] if candidates else None

    def _match_for(self, record: dict[str, Any], sales: list[Sale]) -> Sale | None:
        linked = {str(op.get("new_subscription_id")) for op in self._upgrades_of(str(record["subscription_id"]))
                  if op.get("new_subscription_id")}
        for sale in sorted(sales, key=lambda s: min(s.moments)):
            if sale.subscription_id not in linked and self._matches(record, sale):
                return sale
        return None

    def _matches(self, record: Mapping[str, Any], sale: Sale) -> bool:
        if record.get("operation_type") != "upgrade" or record.get("new_subscription_id"):
            return False
        status = record.get("status")
        if status not in SETTLEABLE_BY_EVIDENCE:
            return False
        if status == states.FAILED and record.get("failure_reason") != states.WINDOW_EXPIRED:
            return False
        method = (record.get("parameters") or {}).get("method")
        allowed = UPGRADE_SALE_EVENTS if method == CHARGE_UPGRADE else ALLOW_UPGRADE_SALE_EVENTS
        if sale.event_type not in allowed:
            return False
        if method == ALLOW_UPGRADE and status == states.IN_PROGRESS:
            return False  # allowUpgrade not answered yet: the consumer cannot have used this window
        if method == CHARGE_UPGRADE and status == states.AWAITING_CONSUMER:
            return False
        return self._same_destination_and_time(record, sale)

    def _same_destination_and_time(self, record: Mapping[str, Any], sale: Sale) -> bool:
        """The sale (or decline) is for the operation's planned destination, and no earlier than its call."""
        if (record.get("parameters") or {}).get("method") == CHARGE_UPGRADE:
            plan = record.get("plan") or {}
            if plan.get("new_client_accnum") and sale.client_accnum and plan["new_client_accnum"] != sale.client_accnum:
                return False
            if (plan.get("new_client_subacc") and sale.client_subacc
                    and str(plan["new_client_subacc"]).zfill(4) != str(sale.client_subacc).zfill(4)):
                return False
        started = parse_iso(record.get("call_started_at"))
        if started is None:
            return False  # never called: no sale can be ours
        earliest = started - timedelta(seconds=self.settings.evidence_tolerance_seconds)
        return any(moment >= earliest for moment in sale.moments)

    def _sales_from_index(self, original_subscription_id: str) -> list[Sale]:
        records = self.facts_store.sales_from(original_subscription_id) or []
        return [sale for sale in (sale_from_subscription(item) for item in records) if sale is not None]

    def settle_from_postback(self, original_subscription_id: str, approved: bool, fields: Mapping[str, str],
                             reference: str) -> dict[str, Any] | None:
        """The Subscription Upgrade System's Approval / Denial post for ``original_subscription_id``."""
        operations = [op for op in self._upgrades_of(original_subscription_id)
                      if (op.get("parameters") or {}).get("method") == ALLOW_UPGRADE]
        new_id = (fields.get("subscription_id") or fields.get("subscriptionId") or "").strip() or None
        if approved and new_id and any(op.get("new_subscription_id") == new_id for op in operations):
            return next(op for op in operations if op.get("new_subscription_id") == new_id)
        open_ones = [op for op in operations if op.get("status") in (states.AWAITING_CONSUMER, states.UNKNOWN,
                                                                      states.IN_PROGRESS)
                     or (approved and op.get("status") == states.FAILED
                         and op.get("failure_reason") == states.WINDOW_EXPIRED)]
        if not open_ones:
            return None
        # The most recent window is the one the consumer used.
        record = max(open_ones, key=lambda op: str(op.get("call_started_at") or ""))
        if approved:
            settled_by = {"source": "postback", "event_type": "Approval", "reference": reference,
                          "new_subscription_id": new_id}
            extra = {"new_subscription_id": new_id} if new_id else {}
            return self._succeed(record, settled_by, extra) or self._reread(record)
        if record.get("status") == states.FAILED:
            return record
        code = (fields.get("reasonForDeclineCode") or fields.get("declineCode") or "").strip() or None
        now = iso(self.clock())
        moved = self.writer.move(
            record, target=states.FAILED,
            values={"failure": {"reason": "upgrade_denied", "code": code,
                                "message": (fields.get("reasonForDecline") or fields.get("declineText")
                                            or "CCBill denied the upgrade").strip()[:300],
                                "param": None, "denial_id": (fields.get("denialId") or "").strip() or None},
                    "failure_reason": "upgrade_denied", "completed_at": now,
                    "settled_by": {"source": "postback", "event_type": "Denial", "reference": reference},
                    "settled_at": now},
            remove=("lease_expires_at",),
            event_types=[events.OPERATION_FAILED])
        return moved or self._reread(record)

    def note_postback(self, operation_id: str, note: dict[str, str]) -> None:
        """Keep a Background Post's non-personal fields on the operation it settled (``postbacks``, appended)."""
        self.table.update_fields(operation_id, values={}, expect={}, now=iso(self.clock()),
                                 append={"postbacks": [note]})


# --- evidence readers ---------------------------------------------------------------------------------------------


def sale_from_delivery(delivery: Mapping[str, Any]) -> Sale | None:
    """A Sale from a stored events-table delivery, if it is an upgrade-type sale naming its original."""
    if delivery.get("record_type") != "delivery" or delivery.get("event_type") not in UPGRADE_SALE_EVENTS:
        return None
    fields = delivery.get("fields") or {}
    original = str(fields.get("originalSubscriptionId") or "").strip()
    subscription_id = str(delivery.get("subscription_id") or fields.get("subscriptionId") or "").strip()
    if not original or not subscription_id:
        return None
    moments = tuple(m for m in (parse_iso(delivery.get("occurred_at")), parse_iso(delivery.get("received_at"))) if m)
    return Sale(subscription_id, original, str(delivery["event_type"]), _text(fields.get("clientAccnum")),
                _text(fields.get("clientSubacc")), moments, "webhook", str(delivery.get("pk") or ""))


def sale_from_subscription(item: Mapping[str, Any]) -> Sale | None:
    """A Sale from a subscription record found by original_subscription_id (the projector's fold)."""
    original = str(item.get("original_subscription_id") or "").strip()
    if not original:
        return None
    event_type = None
    for entry in item.get("history") or []:
        if entry.get("event_type") in UPGRADE_SALE_EVENTS:
            event_type = entry["event_type"]
            break
    if event_type is None:
        return None
    moments = tuple(m for m in (parse_iso(item.get("signed_up_at")), parse_iso(item.get("created_at"))) if m)
    return Sale(str(item["subscription_id"]), original, event_type, _text(item.get("client_accnum")),
                _text(item.get("client_subacc")), moments, "subscriptions_index", str(item["subscription_id"]))


def _text(value: Any) -> str | None:
    return str(value).strip() if value not in (None, "") else None
