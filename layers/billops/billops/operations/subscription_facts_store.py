"""What operations read from, and add to, the subscription record (SubscriptionsTable).

The record is the projector's fold over webhooks (billops.subscriptions). Two kinds of fact reach it from elsewhere,
and each lives in its own attribute, which the projector carries through unchanged when it re-folds (projection.py,
CARRIED_ATTRIBUTES):

* ``ccbill_view``: the last viewSubscriptionStatus answer (CCBill's status code and dates, ``refreshed_at``, the
  operation that read it). CCBill's own word at that moment; it never overwrites the fold's ``status``.
* ``operation_facts``: what our own successful operations changed that no webhook reports - a discount's new
  recurring price (CCBill sends no webhook for discountSubscription), with the operation and time.
  Also ``upgrade_offers`` (upgrade key -> method, first and last time a link was made): an UpgradeSuccess for a
  subscription never offered an upgrade and never upgraded by an operation raises UnexpectedUpgradeSale
  (settlement.py) - the trace a spliced ``enc`` would leave.
* ``cancel_discount_price`` (when known, e.g. entered by an operator): the price an existing cancel discount set,
  for discount rule -21.

Writes are optimistic, on the record's ``revision`` like the projector's, and never create a record: a
subscription not yet seen through its webhooks keeps these facts in the operation record only.

``sales_from`` answers "which subscriptions were sold as upgrades of this one" from the GSI
``by_original_subscription`` (original_subscription_id, signed_up_at): the reconciliation job's second source of
evidence for an upgrade whose answer was lost (the projector's settlement hook is the first).
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from billops.ccbill.subscription_facts import SubscriptionFacts, SubscriptionState
from billops.privacy.field_encryption import is_encrypted
from billops.storage import subscription_indexes
from billops.storage.errors import RevisionConflict
from billops.storage.subscriptions_table import SubscriptionsTable

logger = logging.getLogger(__name__)

MAX_WRITE_ATTEMPTS = 6


def _money(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


class SubscriptionFactsStore:
    def __init__(self, table: SubscriptionsTable) -> None:
        self.table = table

    def get(self, subscription_id: str) -> dict[str, Any] | None:
        return self.table.get(subscription_id)

    # --- reading ----------------------------------------------------------------------------------------------

    @staticmethod
    def current_recurring_price(record: dict[str, Any] | None) -> Decimal | None:
        """Our best knowledge of the recurring price: the last discount we applied, else the sale's price."""
        if not record:
            return None
        facts = record.get("operation_facts") or {}
        return _money(facts.get("recurring_price")) or _money(record.get("recurring_price"))

    def facts(self, subscription_id: str, record: dict[str, Any] | None) -> SubscriptionFacts:
        """SubscriptionFacts for the CCBill client's early checks; unknown stays None (left to CCBill)."""
        if not record:
            return SubscriptionFacts(subscription_id)
        state = _state(record)
        recurring = record.get("recurring")
        recurring = None if recurring is None else bool(recurring)
        in_trial = None
        initial, current = _money(record.get("initial_price")), _money(record.get("recurring_price"))
        if recurring and record.get("times_rebilled") is not None and initial is not None and current is not None:
            in_trial = int(record.get("times_rebilled") or 0) == 0 and (
                initial != current or record.get("initial_period") != record.get("recurring_period"))
        cancel_discount = _money(record.get("cancel_discount_price")) or _money(
            (record.get("operation_facts") or {}).get("cancel_discount_price"))
        username = (record.get("subscriber") or {}).get("username")
        if is_encrypted(username):
            # Personal fields may be stored encrypted (privacy/field_encryption.py); operations never decrypt them.
            # Unknown, the username's length is checked through the origin subaccount's limits instead.
            username = None
        return SubscriptionFacts(
            subscription_id=subscription_id,
            state=state,
            is_recurring=recurring,
            in_trial=in_trial,
            recurring_price=self.current_recurring_price(record),
            cancel_discount_price=cancel_discount,
            client_accnum=record.get("client_accnum") or None,
            client_subacc=record.get("client_subacc") or None,
            username=str(username) if username else None,
        )

    def sales_from(self, original_subscription_id: str) -> list[dict[str, Any]] | None:
        """Subscriptions sold as upgrades/up-sales of ``original_subscription_id``; None if the index is missing."""
        return subscription_indexes.sales_from(self.table, original_subscription_id)

    # --- writing ----------------------------------------------------------------------------------------------

    def record_discount(self, subscription_id: str, recurring_price: Decimal, operation_id: str, at: str) -> bool:
        def change(record: dict[str, Any]) -> None:
            facts = dict(record.get("operation_facts") or {})
            facts.update({"recurring_price": f"{recurring_price:.2f}", "recurring_price_at": at,
                          "recurring_price_operation_id": operation_id})
            record["operation_facts"] = facts

        return self._update(subscription_id, change)

    def record_upgrade_offer(self, subscription_id: str, upgrade: str, method: str, at: str) -> bool:
        """Note that an upgrade link to ``upgrade`` was made for the subscription (see the module docstring)."""
        def change(record: dict[str, Any]) -> None:
            facts = dict(record.get("operation_facts") or {})
            offers = dict(facts.get("upgrade_offers") or {})
            offer = dict(offers.get(upgrade) or {"first_offered_at": at})
            offer.update({"method": method, "last_offered_at": at})
            offers[upgrade] = offer
            facts["upgrade_offers"] = offers
            record["operation_facts"] = facts

        return self._update(subscription_id, change)

    def record_view(self, subscription_id: str, status_fields: dict[str, Any], operation_id: str | None,
                    at: str) -> bool:
        """Keep CCBill's viewSubscriptionStatus answer (non-personal: a status code, dates and counters)."""
        view = {str(name): str(value) for name, value in status_fields.items()}
        view.update({"refreshed_at": at, "operation_id": operation_id or ""})

        def change(record: dict[str, Any]) -> None:
            record["ccbill_view"] = view

        return self._update(subscription_id, change)

    def _update(self, subscription_id: str, change: Any) -> bool:
        for _ in range(MAX_WRITE_ATTEMPTS):
            # The state item alone (issue 14): the facts are its attributes, and a record as readers get it may
            # carry a state its fold has not written yet, which must not be written back.
            record = self.table.get_state(subscription_id)
            if record is None:
                return False
            revision = int(record.get("revision", 0))
            change(record)
            record["revision"] = revision + 1
            try:
                self.table.put(record, expected_revision=revision)
                return True
            except RevisionConflict:
                continue
        raise RevisionConflict(f"{subscription_id}: too many concurrent updates")


def _state(record: dict[str, Any]) -> SubscriptionState | None:
    """The fold's status, unless CCBill's own view is more recent than the last webhook."""
    status = record.get("status")
    view = record.get("ccbill_view") or {}
    last_event = str(record.get("last_event_at") or "")
    if view.get("refreshed_at") and str(view["refreshed_at"]) > last_event:
        from billops.ccbill.subscription_facts import facts_from_status

        seen = facts_from_status(view).state
        if seen is not None:
            return seen
    try:
        return SubscriptionState(status) if status else None
    except ValueError:
        return None
