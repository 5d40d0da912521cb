"""End to end: real HTTP webhooks posted to `make run`'s local stack, and what it stored and decided.

The stack runs as its own process (tests/e2e/conftest.py); this file only speaks HTTP to it and reads moto's
DynamoDB, as a merchant's engineer would.
"""

from __future__ import annotations

import random
from urllib.parse import urlencode

import boto3
import pytest
import requests

from billops_local.webhook_samples import encode_body, sample_fields, webhook_query
from support.waiting import eventually

pytestmark = pytest.mark.e2e

EVENTS_TABLE = "billops-local-EventsTable"
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
HISTORY_TABLE = "billops-local-SubscriptionHistoryTable"


def _dynamodb(local_stack):
    return boto3.client("dynamodb", endpoint_url=local_stack.aws_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _post(local_stack, event_type: str, fields: dict, body_format: str = "json", token: str | None = None,
          raw: bytes | None = None, content_type: str | None = None) -> requests.Response:
    body, default_type = encode_body(fields, body_format)
    query = webhook_query(event_type, fields, token if token is not None else local_stack.webhook_token)
    return requests.post(f"{local_stack.api_url}/webhooks/ccbill?{urlencode(query)}",
                         data=raw if raw is not None else body,
                         headers={"Content-Type": content_type or default_type}, timeout=10)


def _subscription(local_stack, subscription_id: str) -> dict | None:
    from billops.storage.subscriptions_table import SubscriptionsTable

    return SubscriptionsTable(SUBSCRIPTIONS_TABLE, _dynamodb(local_stack), HISTORY_TABLE).get(subscription_id)


def _lifecycle(subscription_id: str, seed: int) -> list[tuple[str, dict]]:
    base = int(subscription_id[-6:])
    return [
        ("NewSaleSuccess", sample_fields("NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id,
                                         timestamp="2026-05-01 09:00:00", subscriptionRecurringPrice="24.95",
                                         subscriptionCurrencyCode="978", nextRenewalDate="2026-05-31")),
        ("RenewalSuccess", sample_fields("RenewalSuccess", subscriptionId=subscription_id,
                                         transactionId=f"01{base + 1:017d}", timestamp="2026-05-31 09:00:00",
                                         nextRenewalDate="2026-06-30")),
        ("RenewalFailure", sample_fields("RenewalFailure", subscriptionId=subscription_id,
                                         transactionId=f"01{base + 2:017d}", timestamp="2026-06-30 09:00:00",
                                         failureCode="BE-29", failureReason="Card Expired")),
        ("Cancellation", sample_fields("Cancellation", subscriptionId=subscription_id,
                                       timestamp="2026-07-01 09:00:00")),
        ("Expiration", sample_fields("Expiration", subscriptionId=subscription_id, timestamp="2026-07-02 09:00:00")),
    ]


def _comparable(record: dict) -> dict:
    return {name: value for name, value in record.items()
            if name not in ("created_at", "updated_at", "revision", "subscription_id", "history", "subscriber",
                            "subscriber_keys", "subscriber_as_of")} | {"history": [e["key"] for e in record["history"]]}


def test_a_delivery_in_each_format_is_stored_once_and_becomes_a_subscription(local_stack):
    fields = sample_fields("NewSaleSuccess", subscriptionId="0126050101000000101", transactionId="0126050101000000101")
    first = _post(local_stack, "NewSaleSuccess", fields, "urlencoded")
    assert first.status_code == 200 and first.json()["duplicate"] is False
    again = _post(local_stack, "NewSaleSuccess", fields, "json")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    key = first.json()["id"]
    stored = _dynamodb(local_stack).query(TableName=EVENTS_TABLE, KeyConditionExpression="pk = :k",
                                          ExpressionAttributeValues={":k": {"S": key}})["Items"]
    assert len(stored) == 1 and stored[0]["body_format"]["S"] == "urlencoded"
    record = eventually(lambda: _subscription(local_stack, "0126050101000000101"), what="the sale folded")
    assert record["status"] == "active" and record["client_accnum"] == fields["clientAccnum"]


def test_shuffled_duplicated_deliveries_reach_the_state_of_an_ordered_run(local_stack):
    ordered_id, shuffled_id = "0126050101000000201", "0126050101000000301"
    for event_type, fields in _lifecycle(ordered_id, 1):
        assert _post(local_stack, event_type, fields).status_code == 200
    rng = random.Random(11)
    deliveries = _lifecycle(shuffled_id, 2) * 3
    rng.shuffle(deliveries)
    answers = [_post(local_stack, event_type, fields, rng.choice(["json", "urlencoded"])).status_code
               for event_type, fields in deliveries]
    assert answers == [200] * len(deliveries)

    def settled(subscription_id):
        record = _subscription(local_stack, subscription_id)
        return record if record and len(record["history"]) == 5 else None

    ordered = eventually(lambda: settled(ordered_id), what="the ordered lifecycle folded")
    shuffled = eventually(lambda: settled(shuffled_id), what="the shuffled lifecycle folded")
    assert ordered["status"] == "expired" and ordered["times_rebilled"] == 1
    assert ordered["last_renewal_failure"]["decline_text"] == "Card Expired"
    assert ordered["currency"] == "EUR" and ordered["recurring_price"] == "24.95"
    assert len(_comparable(shuffled)["history"]) == 5
    ordered_view, shuffled_view = _comparable(ordered), _comparable(shuffled)
    ordered_view.pop("history"), shuffled_view.pop("history")
    for view in (ordered_view, shuffled_view):  # the two subscriptions differ only in their IDs
        view["last_renewal_failure"].pop("transaction_id")
    assert shuffled_view == ordered_view


def test_a_bad_token_is_refused_with_a_json_error(local_stack):
    answer = _post(local_stack, "Expiration", sample_fields("Expiration"), token="not-the-token")
    assert answer.status_code == 403
    assert answer.json()["api_error_code"] == "api_authorization_failed"


def test_a_malformed_body_is_answered_400_and_quarantined(local_stack):
    answer = _post(local_stack, "NewSaleSuccess", {}, raw=b"{this is not json", content_type="application/json")
    assert answer.status_code == 400
    error = answer.json()
    assert set(error) == {"message", "type", "api_error_code", "param"}
    items = _dynamodb(local_stack).scan(TableName=EVENTS_TABLE, FilterExpression="record_type = :q",
                                        ExpressionAttributeValues={":q": {"S": "quarantine"}})["Items"]
    # The body may hold personal data: stored encrypted, readable with kms:Decrypt on the subscriber-pii context.
    from billops.privacy.field_encryption import FieldCipher
    from billops.storage.events_table import from_dynamodb

    cipher = FieldCipher(None, lambda: local_stack.boto3_client("kms"))
    bodies = [cipher.decrypt_fields({"raw_body": item["raw_body"]}, item["subscriber_keys"])["raw_body"]
              for item in map(from_dynamodb, items) if item.get("raw_body")]
    assert any("{this is not json" in body for body in bodies)
    assert not any("{this is not json" in item["raw_body"]["S"] for item in items)


def test_unknown_routes_and_methods_get_json_not_a_trace(local_stack):
    assert requests.get(f"{local_stack.api_url}/webhooks/ccbill", timeout=5).status_code == 404
    assert requests.post(f"{local_stack.api_url}/nowhere", timeout=5).json() == {"message": "Not Found"}
