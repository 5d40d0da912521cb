"""The delivery log: written by the projector from the events stream, before the fold; read by minute of arrival
across the day's shards."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from billops.storage.delivery_log_table import (
    RETENTION_DAYS,
    SHARDS,
    DeliveryLogTable,
    arrival_key,
    entries_from_stream,
    envelope,
)
from billops.storage.events_table import EventsTable


def _delivery(key: str, received_at: str, *, known: bool = True, **extra) -> dict:
    return {"pk": key, "record_type": "delivery", "event_type": key.split("#")[0], "known_type": known,
            "subscription_id": "0117240102000000777", "received_at": received_at, "body_format": "json",
            "fields": {"subscriptionId": "0117240102000000777"}, "subscriber": {"email": "pii@example.com"}, **extra}


def _quarantine(key: str, received_at: str) -> dict:
    return {"pk": key, "record_type": "quarantine", "event_type": "RenewalSuccess", "reason": "bin: must be 6 digits",
            "param": "bin", "raw_body": "email=pii@example.com", "received_at": received_at}


def _log(aws_tables) -> DeliveryLogTable:
    return DeliveryLogTable(os.environ["BILLOPS_DELIVERY_LOG_TABLE"], aws_tables.dynamodb)


def test_a_batch_is_logged_once_per_delivery_in_arrival_order_without_personal_data(aws_tables):
    events = EventsTable(aws_tables.events_table, aws_tables.dynamodb)
    events.put_once(_delivery("NewSaleSuccess#txn#1", "2026-11-01T23:59:59.000001Z"))
    events.put_once(_quarantine("quarantine#abc", "2026-11-01T08:00:00.000000Z"))
    events.put_once(_delivery("MysteryEvent#txn#2", "2026-11-02T00:00:01.000000Z", known=False))
    records = aws_tables.new_stream_records()
    entries = entries_from_stream(records + records)  # a retried batch: the same records again
    assert len(entries) == 3
    log = _log(aws_tables)
    log.record(entries)
    log.record(entries)  # idempotent: the same keys, the same items

    start = datetime(2026, 11, 1, tzinfo=UTC)
    logged = log.between(start, start + timedelta(days=1, hours=1))
    assert [(item["delivery_key"], item["outcome"]) for item in logged] == [
        ("quarantine#abc", "quarantined"), ("NewSaleSuccess#txn#1", "stored"), ("MysteryEvent#txn#2", "unknown_type")]
    assert "pii@example.com" not in str(logged) and "fields" not in logged[0] and "raw_body" not in logged[0]
    # Stored packed, one item per minute of arrival, in a shard of the day of arrival; expiring with its minute.
    stored = aws_tables.dynamodb.scan(TableName=os.environ["BILLOPS_DELIVERY_LOG_TABLE"])["Items"]
    assert len(stored) == 3
    sale_item = next(item for item in stored if item["received_key"]["S"].startswith("2026-11-01T23:59#"))
    day, shard = sale_item["received_day"]["S"].split("#")
    assert day == "2026-11-01" and 0 <= int(shard) < SHARDS
    expected_expiry = datetime(2026, 11, 1, 23, 59, tzinfo=UTC) + timedelta(days=RETENTION_DAYS)
    assert int(sale_item["expires_at"]["N"]) == int(expected_expiry.timestamp())
    assert "pii@example.com" not in "".join(item["deliveries"]["S"] for item in stored)  # JSON text: scannable
    assert [item["delivery_key"] for item in log.between(start, start + timedelta(days=2), outcome="quarantined")
            ] == ["quarantine#abc"]
    # The events table's envelope shape, as the API's recent-deliveries resource reads it.
    view = envelope(logged[0])
    assert (view["pk"], view["record_type"], view["reason"], view["param"]) == (
        "quarantine#abc", "quarantine", "bin: must be 6 digits", "bin")
    # Only the window asked for: the first of November's morning alone.
    assert [item["delivery_key"] for item in log.between(start, start + timedelta(hours=9))] == ["quarantine#abc"]


def test_the_projector_logs_a_batch_it_then_fails_to_fold(aws_tables, handler_loader, lambda_context):
    events = EventsTable(aws_tables.events_table, aws_tables.dynamodb)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    events.put_once(_delivery("NewSaleSuccess#txn#0117240102000000777", now, transactionId="0117240102000000777"))
    projector = handler_loader("subscription_projector")
    aws_tables.dynamodb.delete_table(TableName=aws_tables.subscriptions_table)  # every fold now fails

    with pytest.raises(BatchProcessingError):  # the whole batch failed: Lambda retries it, then dead-letters it
        projector.handler({"Records": aws_tables.new_stream_records()}, lambda_context)

    logged = _log(aws_tables).between(datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC))
    assert [item["delivery_key"] for item in logged] == ["NewSaleSuccess#txn#0117240102000000777"]


def _entry(key: str, received_at: str, outcome: str = "stored") -> dict:
    return {"delivery_key": key, "outcome": outcome, "received_at": received_at, "event_type": key.split("#")[0],
            "subscription_id": "0117240102000000777"}


def test_a_busy_minute_packs_into_few_items_spread_over_shards_and_reads_back_newest_first_page_by_page(aws_tables):
    """A burst: 300 deliveries in three minutes, in batches of 25 (stream batches), one batch retried in part (a
    bisected batch logs some deliveries twice). Paging through them newest first by the arrival-key cursor gives
    each delivery once, in order; the same window read oldest first is the same set."""
    log = _log(aws_tables)
    entries = [_entry(f"RenewalSuccess#txn#{n:06d}", f"2026-11-05T10:{n // 100:02d}:{n % 60:02d}.{n:06d}Z")
               for n in range(300)]
    for start in range(0, 300, 25):
        log.record(entries[start:start + 25])
    log.record(entries[110:125])  # part of a batch again
    items = aws_tables.dynamodb.scan(TableName=os.environ["BILLOPS_DELIVERY_LOG_TABLE"])["Items"]
    assert len(items) <= 15  # 12 batches (one splits at a minute), plus the retried part: not 300 items
    assert len({item["received_day"]["S"] for item in items}) > 1  # more than one shard of the day

    newest_first = sorted(entries, key=arrival_key, reverse=True)
    day = datetime(2026, 11, 5, tzinfo=UTC).date()
    pages, before = [], None
    while True:
        page = []
        for entry in log.newest_first(first_day=day, last_day=day, before=before):
            page.append(entry)
            if len(page) == 40:
                break
        if not page:
            break
        pages.append([entry["delivery_key"] for entry in page])
        before = arrival_key(page[-1])
    assert [key for page in pages for key in page] == [entry["delivery_key"] for entry in newest_first]
    window = log.between(datetime(2026, 11, 5, 10, 1, tzinfo=UTC), datetime(2026, 11, 5, 10, 2, tzinfo=UTC))
    assert [entry["delivery_key"] for entry in window] == [
        entry["delivery_key"] for entry in sorted(entries, key=arrival_key)
        if "2026-11-05T10:01" <= entry["received_at"] <= "2026-11-05T10:02:00.000000Z"]


def test_items_of_the_older_layout_one_per_delivery_in_the_plain_day_are_still_read(aws_tables):
    """Deliveries logged before the packed layout (until they expire, 90 days later)."""
    table = os.environ["BILLOPS_DELIVERY_LOG_TABLE"]
    for key, received_at, outcome in (("RenewalSuccess#txn#1", "2026-11-06T09:00:00.000001Z", "stored"),
                                      ("quarantine#old", "2026-11-06T11:00:00.000001Z", "quarantined")):
        aws_tables.dynamodb.put_item(TableName=table, Item={
            "received_day": {"S": "2026-11-06"}, "received_key": {"S": f"{received_at}#{key}"},
            "delivery_key": {"S": key}, "outcome": {"S": outcome}, "received_at": {"S": received_at},
            "event_type": {"S": key.split("#")[0]}, "expires_at": {"N": "1900000000"}})
    log = _log(aws_tables)
    log.record([_entry("RenewalSuccess#txn#2", "2026-11-06T10:00:00.000001Z")])
    day = datetime(2026, 11, 6, tzinfo=UTC)
    assert [e["delivery_key"] for e in log.newest_first(first_day=day.date(), last_day=day.date())] == [
        "quarantine#old", "RenewalSuccess#txn#2", "RenewalSuccess#txn#1"]
    assert [e["delivery_key"] for e in log.between(day, day + timedelta(hours=23), outcome="quarantined")] == [
        "quarantine#old"]
