"""Domain event details (IDs and outcomes, nothing personal), and the projector's part: carried facts, changes."""

from __future__ import annotations

import json
from typing import Any

from billops.domain_events import events
from billops.domain_events.publishing import NullPublisher, RecordingPublisher, publisher_for
from billops.storage.errors import RevisionConflict
from billops.subscriptions.projection import SubscriptionProjection

RECORD = {
    "operation_id": "op_abc", "operation_type": "upgrade", "upgrade_method": "charge_by_previous_transaction",
    "subscription_id": "0126", "idempotency_key": "order-7", "status": "succeeded", "attempt": 2,
    "ccbill": {"code": 1, "meaning": "Success."}, "new_subscription_id": "0127",
    "parameters": {"method": "charge_by_previous_transaction", "upgrade": "gold"},
}


def test_an_operation_event_carries_ids_and_outcome():
    event = events.operation_event(events.OPERATION_SUCCEEDED, RECORD, "2026-03-01T12:00:00.000000Z")
    assert event.detail_type == "OperationSucceeded"
    detail = event.detail
    assert detail["event_id"] == "op_abc:OperationSucceeded:2"
    assert (detail["status"], detail["ccbill_code"], detail["new_subscription_id"]) == ("succeeded", 1, "0127")
    assert detail["upgrade_method"] == "charge_by_previous_transaction"


def test_failures_carry_ccbills_code_meaning_and_param():
    failed = {**RECORD, "status": "failed", "failure": {"reason": "ccbill_refused", "code": -4,
                                                        "meaning": "Subscription not for this account", "param": None}}
    detail = events.operation_event(events.OPERATION_FAILED, failed, "t").detail
    assert (detail["ccbill_code"], detail["failure_reason"]) == (-4, "ccbill_refused")
    waiting = {**RECORD, "status": "awaiting_consumer", "window_expires_at": "w",
               "upgrade_form": {"url": "u", "fields": {"subscriptionId": "0126"}}}
    detail = events.operation_event(events.OPERATION_AWAITING_CONSUMER, waiting, "t").detail
    assert detail["status"] == "in_progress" and detail["upgrade_form"]["url"] == "u"


def test_subscription_changes_name_the_fields_that_moved():
    before = {"subscription_id": "0126", "status": "active", "recurring_price": "19.95", "times_rebilled": 0,
              "revision": 3}
    after = {**before, "status": "cancelled", "cancelled_at": "2026-03-01T12:00:00Z", "revision": 4}
    assert events.subscription_changes(before, after) == ["status", "cancelled_at"]
    assert events.subscription_changes(after, after) == []
    assert "status" in events.subscription_changes(None, after)
    event = events.subscription_changed_event(before, after, ["status"], "t")
    assert event.detail["event_id"] == "0126:SubscriptionChanged:4" and event.detail["previous_status"] == "active"


def test_subscription_events_never_carry_the_subscriber():
    record = {"subscription_id": "0126", "status": "active", "revision": 1,
              "subscriber": {"email": "jane@example.com", "first_name": "Jane"}, "card": {"last4": "1111"}}
    event = events.subscription_changed_event(None, record, events.subscription_changes(None, record), "t")
    text = json.dumps(event.detail)
    assert "jane@example.com" not in text and "Jane" not in text and "1111" not in text


def test_recording_and_null_publishers():
    recording = RecordingPublisher()
    event = events.operation_event(events.OPERATION_SUCCEEDED, RECORD, "t")
    recording.publish([event])
    assert recording.of_type("OperationSucceeded") == [event]
    NullPublisher().publish([event])  # logs, drops, never raises
    assert isinstance(publisher_for(None), NullPublisher)
    assert events.DomainEvent.from_item(event.as_item()) == event


class _Table:
    """An in-memory subscriptions table (state items, history entries; billops.storage.subscriptions_table's layout)
    with the real one's revision check."""

    def __init__(self, item: dict[str, Any] | None = None) -> None:
        self.items = {item["subscription_id"]: item} if item else {}
        self.entries: dict[str, dict[str, dict[str, Any]]] = {}

    def get_state(self, subscription_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        item = self.items.get(subscription_id)
        return json.loads(json.dumps(item)) if item else None

    def put_entries(self, subscription_id: str, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.entries.setdefault(subscription_id, {})[entry["key"]] = json.loads(json.dumps(entry))

    def history(self, subscription_id: str) -> tuple[list[dict[str, Any]], None]:
        return list(self.entries.get(subscription_id, {}).values()), None

    def put(self, item: dict[str, Any], expected_revision: int | None) -> None:
        current = self.items.get(item["subscription_id"])
        if (current is None) != (expected_revision is None) or (current and current["revision"] != expected_revision):
            raise RevisionConflict(item["subscription_id"])
        self.items[item["subscription_id"]] = json.loads(json.dumps(item))


def _delivery(pk: str, event_type: str, timestamp: str, **fields: str) -> dict:
    return {"pk": pk, "record_type": "delivery", "event_type": event_type, "subscription_id": "0126",
            "occurred_at": timestamp, "received_at": timestamp, "fields": {"subscriptionId": "0126", **fields}}


def test_the_fold_carries_facts_it_does_not_derive_and_reports_changes():
    changes: list[tuple] = []
    table = _Table()
    projection = SubscriptionProjection(table, clock=lambda: "2026-03-01T00:00:00.000000Z",
                                        on_change=lambda before, after: changes.append((before, after)))
    assert projection.apply_delivery(_delivery("a", "NewSaleSuccess", "2026-01-01T00:00:00Z",
                                               subscriptionRecurringPrice="19.95", recurringPeriod="30",
                                               rebills="99")) == "applied"
    item = table.items["0126"]
    item.update({"ccbill_view": {"subscriptionStatus": "2"}, "operation_facts": {"recurring_price": "17.95"},
                 "cancel_discount_price": "15.00"})
    assert projection.apply_delivery(_delivery("b", "Cancellation", "2026-02-01T00:00:00Z")) == "applied"
    item = table.items["0126"]
    assert item["status"] == "cancelled"
    assert item["ccbill_view"] == {"subscriptionStatus": "2"}
    assert item["operation_facts"] == {"recurring_price": "17.95"} and item["cancel_discount_price"] == "15.00"
    assert [after["status"] for _, after in changes] == ["active", "cancelled"]
    assert changes[0][0] is None and changes[1][0]["status"] == "active"
    assert projection.apply_delivery(_delivery("b", "Cancellation", "2026-02-01T00:00:00Z")) == "already_applied"
    assert len(changes) == 2
