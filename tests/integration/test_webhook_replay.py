"""WebhookIntake.replay against moto's DynamoDB: a quarantined body run through the receiver's code again, as the
operator CLI does after a fix (no source or token check; everything else as receive())."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest
from billops.privacy.subscriber_view import quarantined_raw_body, revealed_subscriber
from billops.settings import Settings, settings_from_env
from billops.storage.events_table import EventsTable
from billops.webhooks.delivery_decoding import MalformedDelivery
from billops.webhooks.intake import WebhookIntake, WebhookRequest
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

SUBSCRIPTION = "0126015401000000555"
RECEIVED = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


@pytest.fixture
def events(aws_tables) -> EventsTable:
    return EventsTable(aws_tables.events_table, aws_tables.dynamodb)


def _quarantined(intake: WebhookIntake, event_type: str, fields: dict, body_format: str = "urlencoded",
                 reason: str = "bin: must be 6 digits", param: str = "bin") -> dict:
    """What an older receiver stored when it refused this delivery (its own _quarantine wrote it)."""
    body, content_type = encode_body(fields, body_format)
    query = webhook_query(event_type, fields, "a-token")
    request = WebhookRequest("64.38.240.10", query, {"content-type": content_type},
                             base64.b64encode(body).decode(), True)
    result = intake._quarantine(request, body, RECEIVED, MalformedDelivery(reason, param))
    return intake.store.get(result.key)


def _replay(intake: WebhookIntake, item: dict):
    return intake.replay(quarantined_raw_body(item).encode("utf-8"), item.get("content_type"), item["query"],
                         received_at=datetime.strptime(item["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                             tzinfo=UTC), replayed_from=item["pk"])


def test_a_fixed_delivery_is_stored_once_with_its_original_receipt_time(aws_tables, events):
    intake = WebhookIntake(Settings(environment="local"), events)
    fields = sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION, transactionId=SUBSCRIPTION,
                           bin="41111111")  # an 8-digit BIN: refused by receivers before the fix
    quarantined = _quarantined(intake, "NewSaleSuccess", fields)
    assert quarantined["record_type"] == "quarantine"
    assert "password=[redacted]" in quarantined_raw_body(quarantined)  # stored encrypted, redacted before

    first = _replay(intake, quarantined)
    assert (first.status, first.outcome, first.key) == (200, "accepted", f"NewSaleSuccess#txn#{SUBSCRIPTION}")
    stored = events.get(first.key)
    assert stored["record_type"] == "delivery"
    assert stored["received_at"] == "2026-11-01T08:30:00.000000Z" and "received_day" not in stored
    assert stored["replayed_from"] == quarantined["pk"] and stored["replayed_at"]
    assert stored["fields"]["bin"] == "41111111"
    assert "password" not in stored["fields"] and "password" not in stored["subscriber"]
    assert revealed_subscriber(stored)["email"] == fields["email"]

    again = _replay(intake, quarantined)
    assert (again.status, again.outcome, again.key) == (200, "duplicate", first.key)
    assert events.get(quarantined["pk"]) == quarantined  # the quarantine record is the caller's to mark


def test_replay_needs_no_source_or_token_but_keeps_the_account_check(aws_tables, events):
    fields = sample_fields("Cancellation", subscriptionId=SUBSCRIPTION)
    quarantined = _quarantined(WebhookIntake(Settings(environment="local"), events), "Cancellation", fields, "json",
                               reason="an older rule", param=None)
    strict = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_ALLOWED_CIDRS": "", "BILLOPS_CLIENT_ACCNUM": "999999"})
    refused = _replay(WebhookIntake(strict, events), quarantined)
    assert (refused.status, refused.outcome) == (403, "rejected")

    no_token_no_sources = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_ALLOWED_CIDRS": "",
                                             # the receiver's delivery key (the template's secret)
                                             "BILLOPS_DELIVERY_KEY_SECRET_ARN":
                                             os.environ["BILLOPS_DELIVERY_KEY_SECRET_ARN"]})
    result = _replay(WebhookIntake(no_token_no_sources, events), quarantined)
    assert (result.status, result.outcome) == (200, "accepted")
    assert result.key.startswith("Cancellation#hmac#")
    # receive() itself still refuses the same settings' deliveries: replay is not a way in for strangers.
    request = WebhookRequest("64.38.240.10", quarantined["query"], {"content-type": quarantined["content_type"]},
                             quarantined_raw_body(quarantined), False)
    assert WebhookIntake(no_token_no_sources, events).receive(request).status == 403


def test_a_still_malformed_delivery_is_not_quarantined_again(aws_tables, events):
    intake = WebhookIntake(Settings(environment="local"), events)
    fields = sample_fields("Cancellation", subscriptionId=SUBSCRIPTION)
    del fields["subscriptionId"]
    quarantined = _quarantined(intake, "Cancellation", fields, "json", reason="old reason", param="x")
    before = aws_tables.scan_events()

    result = _replay(intake, quarantined)
    assert (result.status, result.outcome) == (400, "quarantined")
    assert result.body["param"] == "subscriptionId" and "subscriptionId" in result.body["message"]
    assert result.key == quarantined["pk"]
    assert aws_tables.scan_events() == before  # nothing written: updating the record is the caller's business


def test_replay_applies_the_size_limit_like_receive(aws_tables, events):
    fields = sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION, transactionId=SUBSCRIPTION)
    quarantined = _quarantined(WebhookIntake(Settings(environment="local"), events), "NewSaleSuccess", fields)
    small = WebhookIntake(Settings(environment="local", max_body_bytes=100), events)
    result = _replay(small, quarantined)
    assert (result.status, result.outcome) == (400, "quarantined")
    assert "limit is 100" in result.body["message"]


def test_receive_is_unchanged_by_the_replay_entry_point(aws_tables, events):
    """A normal delivery carries no replay attributes."""
    settings = settings_from_env({"BILLOPS_ENV": "dev", "BILLOPS_WEBHOOK_TOKEN": "a-token"})
    fields = sample_fields("RenewalSuccess", subscriptionId=SUBSCRIPTION)
    body, content_type = encode_body(fields, "urlencoded")
    request = WebhookRequest("64.38.240.10", webhook_query("RenewalSuccess", fields, "a-token"),
                             {"content-type": content_type}, base64.b64encode(body).decode(), True)
    clock_now = RECEIVED + timedelta(days=1)
    result = WebhookIntake(settings, events, clock=lambda: clock_now).receive(request)
    assert (result.status, result.outcome) == (200, "accepted")
    stored = events.get(result.key)
    assert "replayed_from" not in stored and "replayed_at" not in stored
    assert stored["received_at"] == "2026-11-02T08:30:00.000000Z"
