"""The subscription record of bounded size (issue 14): state item, history entries, personal-data item.

Against moto's server with the template's tables. The fold's two ways (apply the newest delivery alone; replay the
history when a delivery arrives out of order) must give the state the ordered run gives, write the state only when
it changed, never rewrite personal data a delivery did not bring, and keep the state item small however long the
subscription lives.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.dynamodb_units import item_size
from billops.storage.subscriptions_table import SubscriptionsTable
from billops.subscriptions.projection import COMPARED, SubscriptionProjection
from billops.subscriptions.state_rules import derive_state, history_entry

SUB = "0117240102000000555"
START = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


class CountingTable(SubscriptionsTable):
    """The real table, counting which ways the fold went."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history_reads = 0
        self.state_writes = 0
        self.personal_writes = 0

    def history(self, subscription_id: str):
        self.history_reads += 1
        return super().history(subscription_id)

    def put(self, item, expected_revision):
        self.state_writes += 1
        return super().put(item, expected_revision)

    def put_personal(self, subscription_id, personal, expected_revision):
        self.personal_writes += 1
        return super().put_personal(subscription_id, personal, expected_revision)


@pytest.fixture
def table(aws_tables) -> CountingTable:
    return CountingTable(aws_tables.subscriptions_table, aws_tables.dynamodb,
                         os.environ["BILLOPS_SUBSCRIPTION_HISTORY_TABLE"])


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def delivery(event_type: str, key: str, day: int, *, received_day: float | None = None, timed: bool = True,
             personal: dict[str, str] | None = None, **fields: str) -> dict[str, Any]:
    occurred = START + timedelta(days=day)
    received = START + timedelta(days=day if received_day is None else received_day, seconds=30)
    item = {"pk": key, "record_type": "delivery", "event_type": event_type, "subscription_id": SUB,
            "received_at": received.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "fields": {"subscriptionId": SUB, "clientAccnum": "900100", "clientSubacc": "0000", **fields}}
    if timed:
        item["occurred_at"] = _stamp(occurred)
    if personal:
        item["subscriber"] = dict(personal)
        item["subscriber_keys"] = {}
    return item


def lifecycle(renewals: int = 5) -> list[dict[str, Any]]:
    events = [delivery("NewSaleSuccess", f"NewSaleSuccess#txn#{SUB}", 0, personal={"email": "a@example.org",
                                                                                    "username": "jane"},
                       subscriptionInitialPrice="2.95", subscriptionRecurringPrice="19.95",
                       subscriptionCurrencyCode="840", initialPeriod="3", recurringPeriod="30", rebills="99",
                       nextRenewalDate=_stamp(START + timedelta(days=3))[:10])]
    for month in range(1, renewals + 1):
        events.append(delivery("RenewalSuccess", f"RenewalSuccess#txn#{month:019d}", 30 * month,
                               nextRenewalDate=_stamp(START + timedelta(days=30 * month + 30))[:10], last4="1111"))
    day = 30 * renewals + 5
    events += [
        delivery("RenewalFailure", "RenewalFailure#txn#0000000000000000901", day, failureCode="BE-31",
                 failureReason="Insufficient Funds"),
        delivery("CustomerDataUpdate", "CustomerDataUpdate#txn#0000000000000000902", day + 1,
                 personal={"email": "b@example.org"}),
        delivery("Refund", "Refund#txn#0000000000000000903", day + 2, amount="19.95"),
        delivery("Cancellation", "Cancellation#hmac#c1", day + 3, reason="Customer Request"),
        delivery("Expiration", "Expiration#hmac#e1", day + 40),
        # No timestamp: placed by when it was received, after everything received before it.
        delivery("UserReactivation", "UserReactivation#hmac#r1", day + 41, timed=False,
                 personal={"username": "jane2"}),
        delivery("NewSaleFailure", "NewSaleFailure#txn#0000000000000000904", day + 42, failureCode="BE-31"),
    ]
    return events


def _state(record: dict[str, Any] | None) -> dict[str, Any]:
    assert record is not None
    return {name: record.get(name) for name in sorted(COMPARED - {"fold"})}  # readers' records: no bookkeeping


def test_in_any_order_with_repeats_the_record_equals_the_ordered_run(aws_tables, table):
    events = lifecycle()
    ordered = SubscriptionProjection(table)
    for event in events:
        assert ordered.apply_delivery(event) == "applied"
    assert table.history_reads == 1, "in order, only the first delivery reads the (empty) history"
    expected = table.get(SUB)
    assert {name: expected[name] for name in ("status", "times_rebilled", "refunds", "event_count")} == {
        "status": "active", "times_rebilled": 5, "refunds": 1, "event_count": len(events)}
    assert _state(expected) == _state({**derive_state(SUB, [history_entry(e) for e in events]),
                                       "event_count": len(events)})
    for seed in range(6):
        aws_tables.dynamodb.delete_item(TableName=aws_tables.subscriptions_table, Key={"subscription_id": {"S": SUB}})
        rng = random.Random(seed)
        arrivals = events + rng.sample(events, 4)
        rng.shuffle(arrivals)
        projection = SubscriptionProjection(table)
        for event in arrivals:
            projection.apply_delivery(event)
        record = table.get(SUB)
        assert _state(record) == _state(expected), f"seed {seed}"
        assert [entry["key"] for entry in record["history"]] == [entry["key"] for entry in expected["history"]]
        assert record["subscriber"] == expected["subscriber"]


def test_a_delivery_folded_again_writes_nothing(table):
    events = lifecycle(2)
    projection = SubscriptionProjection(table)
    for event in events:
        projection.apply_delivery(event)
    before = table.get_state(SUB)
    writes = table.state_writes, table.personal_writes
    for event in (events[-1], events[0], events[3]):  # the newest one, and older ones (a history replay each)
        assert projection.apply_delivery(event) == "already_applied"
    assert (table.state_writes, table.personal_writes) == writes
    assert table.get_state(SUB)["revision"] == before["revision"]


def test_a_sale_and_thirty_renewals_keep_the_state_small_and_not_growing(aws_tables, table):
    events = lifecycle(30)[:31]
    projection = SubscriptionProjection(table)
    sizes = []
    for event in events:
        projection.apply_delivery(event)
        raw = aws_tables.dynamodb.get_item(TableName=aws_tables.subscriptions_table,
                                           Key={"subscription_id": {"S": SUB}}, ConsistentRead=True)["Item"]
        sizes.append(item_size(raw))
    assert max(sizes) <= 1024, sizes  # one write unit per fold
    assert sizes[-1] - sizes[2] <= 4, sizes  # counters gain a digit now and then; nothing accumulates
    assert table.history_reads == 1 and table.personal_writes == 1  # renewals bring no personal data
    record = table.get(SUB)
    assert record["times_rebilled"] == 30 and len(record["history"]) == 31
    assert "history" not in table.get_state(SUB) and "subscriber" not in table.get_state(SUB)


def test_a_record_of_the_older_layout_reads_as_it_is_and_is_converted_on_its_next_fold(aws_tables, table):
    from billops.storage.events_table import to_dynamodb

    events = lifecycle(2)
    older, newer = events[:3], events[3]
    entries = [history_entry(event) for event in older]
    old_record = {**derive_state(SUB, entries), "history": entries,
                  "subscriber": {"email": "a@example.org", "username": "jane"}, "subscriber_keys": {},
                  "subscriber_as_of": {"email": "2026-01-01T10:00:00Z|00|x", "username": "2026-01-01T10:00:00Z|00|x"},
                  "event_count": 3, "created_at": "2026-01-01T10:00:31Z", "updated_at": "2026-03-02T10:00:31Z",
                  "revision": 3, "ccbill_view": {"refreshed_at": "2026-03-03T00:00:00Z", "subscriptionStatus": "2"}}
    aws_tables.dynamodb.put_item(TableName=aws_tables.subscriptions_table, Item=to_dynamodb(old_record))
    assert table.get(SUB)["history"] == entries  # read as it is, before any fold

    assert SubscriptionProjection(table).apply_delivery(newer) == "applied"
    state = table.get_state(SUB)
    assert "history" not in state and "subscriber" not in state and state["revision"] == 4
    assert state["ccbill_view"]["subscriptionStatus"] == "2"  # carried through
    record = table.get(SUB)
    assert [entry["key"] for entry in record["history"]] == [event["pk"] for event in events[:4]]
    assert record["subscriber"] == {"email": "a@example.org", "username": "jane"}
    assert record["times_rebilled"] == 2 and record["event_count"] == 4
    # And from then on, in order again: the newest delivery alone.
    reads = table.history_reads
    SubscriptionProjection(table).apply_delivery(events[4])
    assert table.history_reads == reads and table.get_state(SUB)["event_count"] == 5


def test_personal_values_keep_the_delivery_they_came_from_so_they_decrypt_without_the_history(table):
    from billops.privacy.subscriber_view import record_ids

    projection = SubscriptionProjection(table)
    for event in lifecycle(1):
        projection.apply_delivery(event)
    _, personal = table.history(SUB)
    assert record_ids(personal) == {"CustomerDataUpdate#txn#0000000000000000902", "UserReactivation#hmac#r1"}


def test_an_entry_written_before_its_fold_reads_with_the_state_that_fold_will_write(table):
    """The projector writes a batch's history entries before it folds them; a reader in between gets the state the
    fold then writes (never a history its state does not include), and nothing is written by reading."""
    events = lifecycle(2)
    projection = SubscriptionProjection(table)
    for event in events[:2]:
        projection.apply_delivery(event)
    stored = table.get_state(SUB)
    pending = events[2]
    table.put_entries(SUB, [history_entry(pending)])  # the batch write, before the fold
    read = table.get(SUB)
    assert table.get_state(SUB) == stored  # reading wrote nothing
    read["ccbill_view"] = {"subscriptionStatus": "1"}  # a fact changed on the record as read, and written back
    read["revision"] = int(read["revision"]) + 1
    table.put(read, expected_revision=int(stored["revision"]))
    stored = {**stored, "ccbill_view": {"subscriptionStatus": "1"}}
    assert {name: value for name, value in table.get_state(SUB).items() if name != "revision"} == {
        name: value for name, value in stored.items() if name != "revision"}  # the fold's state, not the read's
    assert len(read["history"]) == 3 and read["times_rebilled"] == 2 and stored["times_rebilled"] == 1
    assert projection.apply_delivery(pending) == "applied"
    folded = table.get(SUB)
    assert _state(read) == _state(folded) and "fold" not in read
