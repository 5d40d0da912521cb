"""Pass-through fields against moto (issue 11, part 5): the receiver encrypts every X-... field and referringUrl
unless declared clear, the projector keeps the declared customer reference on the record, and the merchant API finds
a customer's subscriptions by it with an index query (never a scan) and reveals the encrypted ones to a pii key."""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import urlencode

import pytest
from billops_local.aws_environment import aws_client
from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

X_EMAIL = "pass.through.private@example.org"
REFERRING_URL = "https://members.example.com/join?user=privatejoe"
FIRST_NAME = "Passthroughjoe"


@pytest.fixture
def referenced(merchant_api, monkeypatch):
    """The stack with X-user_id declared clear and used as the customer reference (cold starts read it)."""
    monkeypatch.setenv("BILLOPS_PASSTHROUGH_CLEAR_FIELDS", "X-user_id")
    monkeypatch.setenv("BILLOPS_CUSTOMER_REFERENCE_FIELD", "X-user_id")
    merchant_api.ops.reload("webhook_receiver", "subscription_projector")
    merchant_api.reload()
    return merchant_api


def _post(stack, event_type: str, **overrides: str) -> None:
    from operations_fixtures_for_merchant_api import CCBILL_SOURCE_IP, TOKEN

    fields = sample_fields(event_type, **overrides)
    body, content_type = encode_body(fields, "urlencoded")
    query = urlencode(webhook_query(event_type, fields, TOKEN))
    event = http_api_event("POST", "/webhooks/ccbill", query, {"content-type": content_type}, body,
                           CCBILL_SOURCE_IP, route_key="POST /webhooks/ccbill")
    answer = stack.ops.handlers["webhook_receiver"].handler(event, stack.context)
    assert answer["statusCode"] == 200, answer["body"]


def _sale(stack, subscription_id: str, user_id: str, timestamp: str = "2026-06-01 10:00:00") -> None:
    _post(stack, "NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id,
          timestamp=timestamp, **{"X-user_id": user_id, "X-email": X_EMAIL, "X-customer_fname": FIRST_NAME,
                                  "referringUrl": REFERRING_URL})


def _every_attribute_text(stack) -> str:
    dynamodb = aws_client("dynamodb", stack.ops.tables.endpoint_url)
    texts = []
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            texts.append(json.dumps(page["Items"]))
    return "\n".join(texts)


def test_pass_through_fields_are_encrypted_unless_declared_clear(referenced):
    from billops.privacy.field_encryption import is_encrypted

    _sale(referenced, "0126110501000000001", "user-1234")
    referenced.ops.project()
    (delivery,) = [item for item in referenced.ops.tables.scan_events() if item["record_type"] == "delivery"]
    assert delivery["fields"]["X-user_id"] == "user-1234"  # declared clear
    assert not {"X-email", "X-customer_fname", "X-customerRef", "referringUrl"} & set(delivery["fields"])
    assert {"X-email", "X-customer_fname", "X-customerRef", "referringUrl"} <= set(delivery["subscriber"])
    assert all(is_encrypted(value) for value in delivery["subscriber"].values())
    record = referenced.record("0126110501000000001")
    assert record["customer_reference"] == "user-1234"
    assert is_encrypted(record["subscriber"]["X-email"]) and is_encrypted(record["subscriber"]["referringUrl"])
    stored = _every_attribute_text(referenced)
    for private in (X_EMAIL, REFERRING_URL, FIRST_NAME, "cust-0042"):
        assert private not in stored


def test_without_a_declaration_every_pass_through_field_is_encrypted(merchant_api):
    _sale(merchant_api, "0126110501000000009", "user-9999")
    merchant_api.ops.project()
    (delivery,) = [item for item in merchant_api.ops.tables.scan_events() if item["record_type"] == "delivery"]
    assert not [name for name in delivery["fields"] if name.lower().startswith("x-") or name == "referringUrl"]
    assert "customer_reference" not in merchant_api.record("0126110501000000009")
    assert "user-9999" not in _every_attribute_text(merchant_api)


def test_a_customers_subscriptions_are_found_by_an_index_query_newest_first(referenced):
    from billops.storage.dynamodb_client import dynamodb_client

    _sale(referenced, "0126110501000000011", "user-1", "2026-06-01 10:00:00")
    _sale(referenced, "0126110501000000012", "user-2", "2026-06-02 10:00:00")
    referenced.ops.project()
    _sale(referenced, "0126110501000000013", "user-1", "2026-06-03 10:00:00")
    _post(referenced, "Cancellation", subscriptionId="0126110501000000011", timestamp="2026-06-04 10:00:00")
    referenced.ops.project()

    assert referenced.call("GET", "/v1/openapi.json").status == 200
    assert referenced.call("GET", "/v1/subscriptions", query={"limit": "1"}).status == 200  # the key, read once
    calls: Counter[str] = Counter()
    dynamodb_client().meta.events.register("before-parameter-build", lambda model=None, params=None, **_: calls.update(
        [f"{model.name}:{params.get('IndexName', '')}"]))
    answer = referenced.call("GET", "/v1/subscriptions", query={"customer_reference": "user-1"})
    assert answer.status == 200
    listed = [item["subscription"] for item in answer.body["list"]]
    assert [s["id"] for s in listed] == ["0126110501000000013", "0126110501000000011"]
    assert {s["customer_reference"] for s in listed} == {"user-1"}
    assert all(s["customer"]["X-email"] == "***" for s in listed)  # lists always mask
    assert "next_offset" not in answer.body
    assert dict(calls) == {"Query:by_customer_reference": 1, "BatchGetItem:": 1}  # no Scan

    first = referenced.call("GET", "/v1/subscriptions", query={"customer_reference": "user-1", "limit": "1"})
    assert [item["subscription"]["id"] for item in first.body["list"]] == ["0126110501000000013"]
    rest = referenced.call("GET", "/v1/subscriptions", query={"customer_reference": "user-1", "limit": "1",
                                                             "offset": first.body["next_offset"]})
    assert [item["subscription"]["id"] for item in rest.body["list"]] == ["0126110501000000011"]
    cancelled = referenced.call("GET", "/v1/subscriptions", query={"customer_reference": "user-1",
                                                                  "status": "cancelled"})
    assert [item["subscription"]["id"] for item in cancelled.body["list"]] == ["0126110501000000011"]
    nobody = referenced.call("GET", "/v1/subscriptions", query={"customer_reference": "user-3"})
    assert nobody.status == 200 and nobody.body == {"list": []}
    for bad in ("x" * 201, "a\u0001b", "   "):
        refused = referenced.call("GET", "/v1/subscriptions", query={"customer_reference": bad})
        assert refused.status == 400 and refused.body["param"] == "customer_reference", bad


def test_a_pii_key_reads_the_encrypted_pass_through_fields(referenced):
    from billops.privacy.field_encryption import reset_default_cipher

    _sale(referenced, "0126110501000000021", "user-21")
    referenced.ops.project()
    one = referenced.call("GET", "/v1/subscriptions/0126110501000000021")
    assert one.body["subscription"]["customer_reference"] == "user-21"
    assert one.body["subscription"]["customer"]["X-email"] == "***"
    assert one.body["subscription"]["customer"]["referring_url"] == "***"
    reset_default_cipher()
    revealed = referenced.call("GET", "/v1/subscriptions/0126110501000000021", query={"include": "customer"})
    assert revealed.status == 200
    customer = revealed.body["subscription"]["customer"]
    assert customer["X-email"] == X_EMAIL and customer["X-customer_fname"] == FIRST_NAME
    assert customer["referring_url"] == REFERRING_URL
    assert "X-user_id" not in customer  # declared clear: the customer reference, not personal data
    reset_default_cipher()
