"""The webhook receiver's handler against moto's DynamoDB: what is answered, what is stored, what is logged."""

from __future__ import annotations

import base64
import json

import pytest

from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query
from billops.privacy.field_encryption import FieldCipher, is_encrypted
from billops.privacy.subscriber_view import quarantined_raw_body, revealed_subscriber
from billops.webhooks.event_types import EventType

TOKEN = "test-token-0123456789"
CCBILL_IP = "64.38.240.10"


@pytest.fixture
def receiver(aws_tables, monkeypatch, lambda_context, handler_loader):
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("BILLOPS_MAX_BODY_BYTES", "20000")
    loaded: list = []  # imported on first use, so the logger writes to the test's own captured stdout

    def post(event_type: str, fields: dict, body_format: str = "urlencoded", token: str | None = TOKEN,
             source_ip: str = CCBILL_IP, body: bytes | None = None, content_type: str | None = None,
             query: dict | None = None) -> tuple[int, dict]:
        encoded, default_type = encode_body(fields, body_format)
        params = query if query is not None else webhook_query(event_type, fields, token)
        from urllib.parse import urlencode

        event = http_api_event("POST", "/webhooks/ccbill", urlencode(params),
                               {"content-type": content_type or default_type}, body if body is not None else encoded,
                               source_ip, route_key="POST /webhooks/ccbill")
        if not loaded:
            loaded.append(handler_loader("webhook_receiver"))
        answer = loaded[0].handler(event, lambda_context)
        return answer["statusCode"], json.loads(answer["body"])

    return post



def _items(aws_tables) -> list[dict]:
    return aws_tables.scan_events()


@pytest.mark.parametrize("event_type", [t.value for t in EventType])
@pytest.mark.parametrize("body_format", ["urlencoded", "json"])
def test_every_event_type_in_both_formats_is_stored_once(receiver, aws_tables, event_type, body_format):
    fields = sample_fields(event_type)
    status, body = receiver(event_type, fields, body_format)
    assert status == 200 and body["duplicate"] is False
    again, body_again = receiver(event_type, fields, "json" if body_format == "urlencoded" else "urlencoded")
    assert again == 200 and body_again["duplicate"] is True and body_again["id"] == body["id"]
    items = _items(aws_tables)
    assert len(items) == 1
    item = items[0]
    assert item["event_type"] == event_type and item["known_type"] is True
    assert item["body_format"] == body_format
    assert "password" not in item["fields"] and "password" not in item["subscriber"]
    if "subscriptionId" in fields:
        assert item["subscription_id"] == fields["subscriptionId"]  # leading zero kept
    for personal in ("email", "firstName", "lastName", "ipAddress", "username"):
        assert personal not in item["fields"]
        if personal in fields:
            # Stored encrypted, each field on its own; only a holder of kms:Decrypt reads it back.
            assert is_encrypted(item["subscriber"][personal])
    for telling in ("email", "ipAddress"):  # '@' and '.' never occur in base64: a clear copy anywhere shows
        if telling in fields:
            assert fields[telling] not in json.dumps(item, default=str)
    clear = revealed_subscriber(item)
    assert clear == {name: value for name, value in fields.items() if name in clear}
    assert {"email", "username"} & set(fields) <= set(clear)


def test_wrong_token_and_wrong_source_are_refused_and_nothing_is_stored(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess")
    status, body = receiver("NewSaleSuccess", fields, token="guess")
    assert status == 403 and body["api_error_code"] == "api_authorization_failed"
    status, _ = receiver("NewSaleSuccess", fields, token=None)
    assert status == 403
    status, _ = receiver("NewSaleSuccess", fields, source_ip="198.51.100.7")
    assert status == 403
    status, _ = receiver("NewSaleSuccess", fields, source_ip="127.0.0.1")  # loopback only in local mode
    assert status == 403
    assert _items(aws_tables) == []


def test_mistyped_field_is_stored_as_received_flagged_counted_and_answered_200(receiver, aws_tables, capsys):
    fields = sample_fields("RenewalSuccess", billedAmount="nineteen")
    status, body = receiver("RenewalSuccess", fields)
    assert status == 200 and body["duplicate"] is False
    [item] = _items(aws_tables)
    assert item["record_type"] == "delivery" and item["fields"]["billedAmount"] == "nineteen"
    assert item["field_warnings"] == {"billedAmount": "must be a decimal amount"}
    logged = capsys.readouterr().out
    assert "WebhookFieldWarnings" in logged and '"fields_with_warnings":["billedAmount"]' in logged
    assert "nineteen" not in logged


def test_an_unreadable_identity_is_quarantined_with_reason_and_answered_400(receiver, aws_tables):
    fields = sample_fields("RenewalSuccess", subscriptionId="01-26-0154")
    status, body = receiver("RenewalSuccess", fields)
    assert status == 400
    assert set(body) == {"message", "type", "api_error_code", "param"}
    assert body["param"] == "subscriptionId" and "01-26-0154" not in body["message"]
    [item] = _items(aws_tables)
    assert item["record_type"] == "quarantine" and item["param"] == "subscriptionId"
    # The raw body may hold personal data: stored encrypted, read back with kms:Decrypt.
    assert is_encrypted(item["raw_body"]) and "01-26-0154" not in json.dumps(item, default=str)
    assert "01-26-0154" in quarantined_raw_body(item)


def test_a_quarantined_body_keeps_no_personal_data_in_clear(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess", subscriptionId=None)
    status, body = receiver("NewSaleSuccess", fields)
    assert status == 400 and body["param"] == "subscriptionId"
    [item] = _items(aws_tables)
    stored = json.dumps(item, default=str)
    email_in_form = fields["email"].replace("@", "%40")  # the body as posted (URL-encoded)
    assert email_in_form not in stored and "example.com" not in stored and fields["ipAddress"] not in stored
    assert email_in_form in quarantined_raw_body(item)
    assert TOKEN not in json.dumps(item, default=str)


def test_missing_required_field_is_named(receiver, aws_tables):
    fields = sample_fields("Cancellation")
    del fields["subscriptionId"]
    status, body = receiver("Cancellation", fields)
    assert status == 400 and body["param"] == "subscriptionId"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"{broken", "application/json"), (b"", "application/json"), (b"\x00\xff\xfe", "application/octet-stream"),
     (b"[]", "application/json")],
)
def test_unparseable_bodies_are_quarantined_never_5xx(receiver, aws_tables, body, content_type):
    status, answer = receiver("NewSaleSuccess", sample_fields("NewSaleSuccess"), body=body, content_type=content_type)
    assert status == 400 and answer["api_error_code"]
    assert [item["record_type"] for item in _items(aws_tables)] == ["quarantine"]


def test_quarantined_password_is_redacted(receiver, aws_tables):
    raw = b"password=hunter2&initialPeriod=abc&clientAccnum=900100&clientSubacc=0000"  # no subscriptionId
    status, _ = receiver("NewSaleSuccess", {}, body=raw, content_type="application/x-www-form-urlencoded",
                         query={"eventType": "NewSaleSuccess", "token": TOKEN})
    assert status == 400
    [item] = _items(aws_tables)
    assert "hunter2" not in quarantined_raw_body(item) and "initialPeriod=abc" in quarantined_raw_body(item)


def test_oversized_body_is_quarantined_truncated(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess", **{"X-padding": "x" * 30000})
    status, body = receiver("NewSaleSuccess", fields)
    assert status == 400 and "limit" in body["message"]
    [item] = _items(aws_tables)
    assert item["raw_body_bytes"] > 20000


def test_event_type_in_body_must_agree_with_the_url(receiver, aws_tables):
    fields = sample_fields("Expiration", eventType="Cancellation")
    status, body = receiver("Expiration", fields, body_format="json")
    assert status == 400 and body["param"] == "eventType"


def test_unknown_event_type_is_stored_acknowledged_and_counted(receiver, aws_tables, capsys):
    fields = sample_fields("SomethingNew")
    status, body = receiver("SomethingNew", fields)
    assert status == 200
    [item] = _items(aws_tables)
    assert item["known_type"] is False and item["event_type"] == "SomethingNew"
    assert "UnknownEventType" in capsys.readouterr().out  # the EMF metric line


def test_storage_failure_is_5xx_so_ccbill_retries(receiver, aws_tables):
    aws_tables.drop_events_table()
    status, body = receiver("NewSaleSuccess", sample_fields("NewSaleSuccess"))
    assert status == 503 and body["api_error_code"] == "internal_error"


def test_logs_carry_no_personal_data_no_password_and_no_token(receiver, aws_tables, capsys):
    fields = sample_fields("NewSaleSuccess")
    receiver("NewSaleSuccess", fields)
    receiver("NewSaleSuccess", sample_fields("NewSaleSuccess", initialPeriod="x"))
    receiver("NewSaleSuccess", fields, token="wrong")
    output = capsys.readouterr()
    logged = output.out + output.err
    assert "webhook answered" in logged
    for secret in (TOKEN, fields["password"], fields["email"], fields["firstName"], fields["lastName"],
                   fields["ipAddress"], fields["username"]):
        assert secret not in logged


def test_base64_form_body_shape_matches_http_api(receiver):
    fields = sample_fields("Expiration")
    body, content_type = encode_body(fields, "urlencoded")
    event = http_api_event("POST", "/webhooks/ccbill", "eventType=Expiration", {"content-type": content_type}, body,
                           CCBILL_IP)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == body


def test_without_a_data_key_nothing_is_stored_in_clear_and_ccbill_is_asked_again(receiver, aws_tables, monkeypatch):
    from billops.privacy import field_encryption

    # KMS refuses (a key that does not exist stands for a disabled key, a throttle or a denied grant).
    missing = FieldCipher("11111111-2222-3333-4444-555555555555", field_encryption.default_cipher()._kms_client)
    monkeypatch.setattr(field_encryption, "_default", missing)
    fields = sample_fields("NewSaleSuccess")
    status, body = receiver("NewSaleSuccess", fields)
    assert status == 503 and body["api_error_code"] == "internal_error"
    status, _ = receiver("RenewalSuccess", sample_fields("RenewalSuccess", subscriptionId=None))
    assert status == 503  # the quarantine is not written in clear either
    assert _items(aws_tables) == []
