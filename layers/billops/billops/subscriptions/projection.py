"""Folding stored deliveries into the subscription record (run from the events table's stream).

Each delivery is merged into its subscription's history, the state is re-derived by state_rules, and the item is
written back conditionally on its revision; a concurrent writer makes us re-read and redo, so no event is lost
when two shards touch one subscription. Re-applying a delivery already in the history changes nothing.
Personal fields converge too: each keeps the value of the latest event (in CCBill's order) that carried it. They
are copied as the receiver stored them - ciphertexts, with the encrypted data keys they name (`subscriber_keys`) -
and never decrypted here: the projector has no kms:Decrypt.

Facts that do not come from webhooks (CARRIED_ATTRIBUTES: CCBill's viewSubscriptionStatus answer, what our own
operations changed - billops.operations.subscription_facts_store) are carried through every re-fold unchanged:
the fold derives state from history only, and must not drop what it does not derive.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Callable

from billops.privacy.field_encryption import data_key_references
from billops.storage.errors import RevisionConflict
from billops.storage.subscriptions_table import SubscriptionsTable
from billops.subscriptions.state_rules import derive_state, history_entry, ordered, sort_key

MAX_ATTEMPTS = 8
CARRIED_ATTRIBUTES = ("ccbill_view", "operation_facts", "cancel_discount_price")


def _order_text(entry: Mapping[str, Any]) -> str:
    moment, precedence, key = sort_key(entry)
    return f"{moment}|{precedence:02d}|{key}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SubscriptionProjection:
    def __init__(self, table: SubscriptionsTable, clock: Callable[[], str] = _now,
                 on_change: Callable[[Mapping[str, Any] | None, Mapping[str, Any]], None] | None = None,
                 customer_reference_field: str | None = None) -> None:
        self.table = table
        self.clock = clock
        self.on_change = on_change
        """Called after each successful write with (the record before, the record written)."""
        self.customer_reference_field = customer_reference_field
        """BILLOPS_CUSTOMER_REFERENCE_FIELD: the clear pass-through field kept as the record's customer_reference."""

    def apply_delivery(self, delivery: Mapping[str, Any]) -> str:
        """Merge one stored delivery. Returns "applied", "already_applied" or "skipped" (nothing to project)."""
        if delivery.get("record_type") != "delivery" or not delivery.get("subscription_id"):
            return "skipped"
        subscription_id = str(delivery["subscription_id"])
        entry = history_entry(delivery, self.customer_reference_field)
        personal = {name: str(value) for name, value in (delivery.get("subscriber") or {}).items() if value}
        delivery_keys = dict(delivery.get("subscriber_keys") or {})
        for _ in range(MAX_ATTEMPTS):
            current = self.table.get(subscription_id)
            history = list((current or {}).get("history") or [])
            if any(existing["key"] == entry["key"] for existing in history):
                return "already_applied"
            history.append(entry)
            history = list(ordered(history))
            state = derive_state(subscription_id, history)
            subscriber = dict((current or {}).get("subscriber") or {})
            subscriber_as_of = dict((current or {}).get("subscriber_as_of") or {})
            order = _order_text(entry)
            for name, value in personal.items():
                if subscriber_as_of.get(name, "") < order:
                    subscriber[name] = value
                    subscriber_as_of[name] = order
            # The data keys the kept values need, and no others (an item stays small however often data changes).
            known_keys = {**dict((current or {}).get("subscriber_keys") or {}), **delivery_keys}
            subscriber_keys = {reference: known_keys[reference]
                               for reference in data_key_references(subscriber.values()) if reference in known_keys}
            now = self.clock()
            revision = int((current or {}).get("revision", 0))
            carried = {name: current[name] for name in CARRIED_ATTRIBUTES if current and name in current}
            item = {
                **carried,
                **state,
                "history": history,
                "subscriber": subscriber,
                "subscriber_keys": subscriber_keys,
                "subscriber_as_of": subscriber_as_of,
                "event_count": len(history),
                "created_at": (current or {}).get("created_at") or now,
                "updated_at": now,
                "revision": revision + 1,
            }
            try:
                self.table.put(item, expected_revision=revision if current else None)
            except RevisionConflict:
                continue
            if self.on_change is not None:
                self.on_change(current, item)
            return "applied"
        raise RevisionConflict(f"{subscription_id}: too many concurrent updates; the record will be retried")
