"""Folding stored deliveries into the subscription record (run from the events table's stream).

Each delivery is written once as a history entry of its subscription (billops.storage.subscriptions_table), then
folded into the subscription's bounded state item, written conditionally on its revision (a concurrent writer makes
us re-read and redo, so no event is lost when two shards touch one subscription):

* a delivery received after every delivery folded so far, and placed after the last of them
  (state_rules.place_after), is applied to the state alone (state_rules.fold_step): no read of the history;
* any other (out of order, a stream retry, a record that never saw the rest) makes the fold read the
  subscription's whole history (one Query) and derive the state from it, as state_rules.derive_state always did.
  `fold_step` is the step `derive_state` takes, so both paths give the state the ordered history gives;
* the state item is written only when it changed: a delivery already folded writes nothing;
* a stream batch's state items are read at once (``prefetch_states``: one BatchGetItem, eventually consistent like
  the fold's first read) and each fold of the batch keeps the item it wrote for the next delivery of the same
  subscription, so a batch costs one read request, not one per delivery. A stale item costs what a stale read
  always cost: a refused conditional write and a consistent re-read.

Personal fields converge too: each keeps the value of the latest event (in CCBill's order) that carried it. They
are copied as the receiver stored them - ciphertexts, with the encrypted data keys they name (`subscriber_keys`) -
into the subscription's personal-data item, only when a delivery brings a newer value (renewals bring none); they
are never decrypted here: the projector has no kms:Decrypt. ``subscriber_as_of`` keeps, per field, the place of the
delivery the value came from (its delivery key included: the record the value is bound to).

Facts that do not come from webhooks (CARRIED_ATTRIBUTES: CCBill's viewSubscriptionStatus answer, what our own
operations changed - billops.operations.subscription_facts_store) are carried through every fold unchanged.

Records of the older layout (history and personal data on the record) are converted on their next fold: their
history entries and personal data are written to the history table, then the fold goes the whole-history way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Callable

from billops.privacy.field_encryption import data_key_references
from billops.storage.errors import RevisionConflict, StorageUnavailable
from billops.storage.subscriptions_table import FOLD_ATTRIBUTE, SubscriptionsTable, is_bounded
from billops.subscriptions.state_rules import (
    STATE_FIELDS,
    Place,
    fold_step,
    history_entry,
    initial_state,
    instant,
    parse_place,
    place_after,
    place_text,
    placements,
    sort_key,
)

MAX_ATTEMPTS = 8
CARRIED_ATTRIBUTES = ("ccbill_view", "operation_facts", "cancel_discount_price")
COMPARED = STATE_FIELDS | {"event_count", FOLD_ATTRIBUTE}
"""What a fold may change on the state item (besides updated_at and revision): equal, nothing is written."""


def _order_text(entry: Mapping[str, Any]) -> str:
    """The place of the delivery a personal field came from: newest wins, and its delivery key is the record the
    value is bound to."""
    moment, precedence, key = sort_key(entry)
    return f"{moment}|{precedence:02d}|{key}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as int/str, so a state read back compares with one just derived."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _fold_text(last_received: str, last_place: Place) -> str:
    return f"{last_received}|{place_text(last_place)}"


def _parse_fold(text: Any) -> tuple[str, Place | None]:
    if not text:
        return "", None
    received, place = str(text).split("|", 1)
    return received, parse_place(place)


def projectable(delivery: Mapping[str, Any]) -> bool:
    return delivery.get("record_type") == "delivery" and bool(delivery.get("subscription_id"))


class SubscriptionProjection:
    def __init__(self, table: SubscriptionsTable, clock: Callable[[], str] = _now,
                 on_change: Callable[[Mapping[str, Any] | None, Mapping[str, Any]], None] | None = None,
                 customer_reference_field: str | None = None) -> None:
        self.table = table
        self.clock = clock
        self.on_change = on_change
        """Called after each successful write with (the state item before, the state item written)."""
        self.customer_reference_field = customer_reference_field
        """BILLOPS_CUSTOMER_REFERENCE_FIELD: the clear pass-through field kept as the record's customer_reference."""
        self._entries_written: set[tuple[str, str]] = set()
        self._states: dict[str, dict[str, Any] | None] = {}
        """The current stream batch's state items by subscription (None: none yet), see ``prefetch_states``."""

    # --- a stream batch -----------------------------------------------------------------------------------------

    def history_puts(self, deliveries: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """The history entries of a batch's deliveries, as (table, item) puts for one batch write made before the
        batch is folded (billops.storage.batch_writes.put_all); `apply_delivery` then does not write them again."""
        puts = []
        for delivery in deliveries:
            if not projectable(delivery):
                continue
            subscription_id = str(delivery["subscription_id"])
            entry = history_entry(delivery, self.customer_reference_field)
            puts.append((self.table.history_table, self.table.entry_item(subscription_id, entry)))
            self._entries_written.add((subscription_id, entry["key"]))
        return puts

    def prefetch_states(self, deliveries: Iterable[Mapping[str, Any]]) -> None:
        """Read the state items of a batch's subscriptions with one BatchGetItem per 100, for its folds' first
        attempts. Forgets the previous batch's. A failed read only means each fold reads its own item, as
        before."""
        ids = list(dict.fromkeys(str(delivery["subscription_id"]) for delivery in deliveries
                                 if projectable(delivery)))
        self._states = {}
        try:
            found = self.table.get_states(ids)
        except StorageUnavailable:
            return
        self._states = {subscription_id: found.get(subscription_id) for subscription_id in ids}

    # --- one delivery -------------------------------------------------------------------------------------------

    def apply_delivery(self, delivery: Mapping[str, Any]) -> str:
        """Merge one stored delivery. Returns "applied", "already_applied" or "skipped" (nothing to project)."""
        if not projectable(delivery):
            return "skipped"
        subscription_id = str(delivery["subscription_id"])
        entry = history_entry(delivery, self.customer_reference_field)
        if (subscription_id, entry["key"]) in self._entries_written:
            self._entries_written.discard((subscription_id, entry["key"]))
        else:
            self.table.put_entries(subscription_id, [entry])
        personal = {name: str(value) for name, value in (delivery.get("subscriber") or {}).items() if value}
        if personal:
            order = _order_text(entry)
            self._merge_personal(subscription_id, {name: (value, order) for name, value in personal.items()},
                                 dict(delivery.get("subscriber_keys") or {}))
        for attempt in range(MAX_ATTEMPTS):
            # Eventually consistent first (half the read): a stale state only costs a refused write and a re-read.
            if attempt == 0 and subscription_id in self._states:
                current = self._states[subscription_id]
            else:
                current = self.table.get_state(subscription_id, consistent=attempt > 0)
            if current is not None and not is_bounded(current):
                self._convert(current)
                folded = self._from_history(subscription_id, entry)
            else:
                last_received, last_place = _parse_fold((current or {}).get(FOLD_ATTRIBUTE))
                if last_place is not None and last_place[4] == entry["key"]:
                    self._keep(subscription_id, current)
                    return "already_applied"  # the newest delivery folded is this one
                place = place_after(entry, last_place) if current is not None and entry["received_at"] and \
                    instant(entry["received_at"]) > last_received else None
                if place is not None and last_place is not None and place > last_place:
                    state = {**initial_state(subscription_id),
                             **{name: current[name] for name in STATE_FIELDS if name in current}}
                    folded = (fold_step(state, subscription_id, entry), int(current.get("event_count") or 0) + 1,
                              _fold_text(instant(entry["received_at"]), place))
                else:
                    folded = self._from_history(subscription_id, entry)
            item = self._item(subscription_id, current, *folded)
            if current is not None and is_bounded(current) and _unchanged(current, item):
                self._keep(subscription_id, current)
                return "already_applied"
            try:
                self.table.put(item, expected_revision=int(current.get("revision", 0)) if current else None)
            except RevisionConflict:
                continue
            self._keep(subscription_id, item)
            if self.on_change is not None:
                self.on_change(current, item)
            return "applied"
        raise RevisionConflict(f"{subscription_id}: too many concurrent updates; the record will be retried")

    def _keep(self, subscription_id: str, state: dict[str, Any]) -> None:
        """The state item as this fold left it, for the next delivery of the subscription in the same batch."""
        if subscription_id in self._states:
            self._states[subscription_id] = state

    def _from_history(self, subscription_id: str, entry: Mapping[str, Any]
                      ) -> tuple[dict[str, Any], int, str]:
        """The state, entry count and fold bookkeeping derived from the subscription's whole history."""
        entries, _ = self.table.history(subscription_id)
        if not any(existing["key"] == entry["key"] for existing in entries):
            entries.append(dict(entry))  # written just before; a read that missed it must not drop it
        placed = placements(entries)
        state = None
        for _, each in placed:
            state = fold_step(state, subscription_id, each)
        last_received = max(instant(each.get("received_at")) for _, each in placed)
        return state, len(placed), _fold_text(last_received, placed[-1][0])

    def _item(self, subscription_id: str, current: Mapping[str, Any] | None, state: Mapping[str, Any],
              event_count: int, fold: str) -> dict[str, Any]:
        now = self.clock()
        carried = {name: current[name] for name in CARRIED_ATTRIBUTES if current and name in current}
        return {
            **carried,
            **state,
            "event_count": event_count,
            FOLD_ATTRIBUTE: fold,
            "created_at": (current or {}).get("created_at") or now,
            "updated_at": now,
            "revision": int((current or {}).get("revision", 0)) + 1,
        }

    # --- personal data ------------------------------------------------------------------------------------------

    def _merge_personal(self, subscription_id: str, values: Mapping[str, tuple[str, str]],
                        data_keys: Mapping[str, str]) -> None:
        """Keep each field's newest value (``values``: field -> (ciphertext, place of its delivery)), with the data
        keys the kept values need and no others. Written only when a value changed."""
        for _ in range(MAX_ATTEMPTS):
            current = self.table.get_personal(subscription_id)
            subscriber = dict((current or {}).get("subscriber") or {})
            subscriber_as_of = dict((current or {}).get("subscriber_as_of") or {})
            for name, (value, order) in values.items():
                if name not in subscriber_as_of or subscriber_as_of[name] < order:
                    subscriber[name] = value
                    subscriber_as_of[name] = order
            known_keys = {**dict((current or {}).get("subscriber_keys") or {}), **data_keys}
            subscriber_keys = {reference: known_keys[reference]
                               for reference in data_key_references(subscriber.values()) if reference in known_keys}
            if current is not None and subscriber == current.get("subscriber") and \
                    subscriber_as_of == current.get("subscriber_as_of") and \
                    subscriber_keys == current.get("subscriber_keys"):
                return
            revision = int((current or {}).get("revision", 0))
            try:
                self.table.put_personal(subscription_id, {
                    "subscriber": subscriber, "subscriber_keys": subscriber_keys,
                    "subscriber_as_of": subscriber_as_of, "revision": revision + 1},
                    expected_revision=revision if current else None)
                return
            except RevisionConflict:
                continue
        raise RevisionConflict(f"{subscription_id}: too many concurrent updates of its personal data")

    # --- the older layout ---------------------------------------------------------------------------------------

    def _convert(self, record: Mapping[str, Any]) -> None:
        """Write a record's inline history and personal data to the history table (each write is idempotent; the
        state item written after the fold is what completes the conversion)."""
        subscription_id = str(record["subscription_id"])
        self.table.put_entries(subscription_id, [entry for entry in record.get("history") or []
                                                  if isinstance(entry, Mapping) and entry.get("key")])
        subscriber = {name: str(value) for name, value in (record.get("subscriber") or {}).items() if value}
        if subscriber:
            as_of = record.get("subscriber_as_of") or {}
            self._merge_personal(subscription_id,
                                 {name: (value, str(as_of.get(name) or "")) for name, value in subscriber.items()},
                                 dict(record.get("subscriber_keys") or {}))


def _unchanged(current: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    return all(_plain(current.get(name)) == _plain(item.get(name)) for name in COMPARED)
