"""The delivery log: written by the projector from the events stream, before the fold; read by day."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from billops.storage.delivery_log_table import RETENTION_DAYS, DeliveryLogTable, entries_from_stream, envelope
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
    sale = logged[1]
    assert sale["received_day"] == "2026-11-01"
    expected_expiry = datetime(2026, 11, 1, 23, 59, 59, 1, tzinfo=UTC) + timedelta(days=RETENTION_DAYS)
    assert int(sale["expires_at"]) == int(expected_expiry.timestamp())
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
