"""Issue 11 over real HTTP, against `make run`'s local stack: what real CCBill accounts send is stored, two refunds
of one transaction are two refunds (both folded into the subscription), and keys reveal nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from urllib.parse import urlencode

import requests

from billops.webhooks.delivery_decoding import canonical_payload
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

EVENTS_TABLE = "billops-local-EventsTable"


def _post(local_stack, event_type: str, fields: dict, body_format: str = "json", raw: bytes | None = None,
          content_type: str | None = None) -> requests.Response:
    body, default_type = encode_body(fields, body_format)
    query = webhook_query(event_type, fields, local_stack.webhook_token)
    return requests.post(f"{local_stack.api_url}/webhooks/ccbill?{urlencode(query)}", data=raw if raw else body,
                         headers={"Content-Type": content_type or default_type}, timeout=10)


def _item(local_stack, key: str) -> dict:
    from billops.storage.events_table import from_dynamodb

    answer = local_stack.boto3_client("dynamodb").get_item(TableName=EVENTS_TABLE, Key={"pk": {"S": key}},
                                                           ConsistentRead=True)
    return from_dynamodb(answer["Item"])


def _subscription(local_stack, subscription_id: str) -> dict | None:
    from billops.storage.subscriptions_table import SubscriptionsTable

    return SubscriptionsTable("billops-local-SubscriptionsTable",
                              local_stack.boto3_client("dynamodb")).get(subscription_id)


def _new_id() -> str:
    return f"0126032{uuid.uuid4().int % 10**12:012d}"


def test_two_refunds_of_one_transaction_are_two_refunds_both_folded(local_stack):
    from support.waiting import eventually

    subscription_id = _new_id()
    sale = sample_fields("NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id,
                         timestamp="2026-03-01 09:00:00")
    assert _post(local_stack, "NewSaleSuccess", sale).status_code == 200
    first = sample_fields("Refund", subscriptionId=subscription_id, transactionId=subscription_id, amount="5.00",
                          accountingAmount="5.00", timestamp="2026-03-02 10:00:00")
    second = {**first, "amount": "9.95", "accountingAmount": "9.95", "timestamp": "2026-03-05 16:30:00"}
    one = _post(local_stack, "Refund", first).json()
    two = _post(local_stack, "Refund", second, "urlencoded").json()
    again = [_post(local_stack, "Refund", first).json(), _post(local_stack, "Refund", first, "urlencoded").json()]
    assert one["duplicate"] is False and two["duplicate"] is False and one["id"] != two["id"]
    assert all(answer == {"received": True, "duplicate": True, "id": one["id"]} for answer in again)

    def folded():
        record = _subscription(local_stack, subscription_id)
        return record if record and len(record["history"]) == 3 else None

    record = eventually(folded)
    assert record["refunds"] == 2
    assert sorted(entry["fields"]["amount"] for entry in record["history"] if entry["event_type"] == "Refund") == [
        "5.00", "9.95"]


def test_what_real_accounts_send_is_stored_over_http(local_stack, log_leak_scanner):
    subscription_id = _new_id()
    # JSON numbers, a bank payment without a BIN or an expiry date
    document = {**sample_fields("NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id,
                                paymentType="CHECK", cardType=None, bin=None, expDate=None),
                "clientAccnum": 900100, "subscriptionInitialPrice": 23.0, "initialPeriod": 30, "last4": 789}
    answer = _post(local_stack, "NewSaleSuccess", {}, raw=json.dumps(document).encode(),
                   content_type="application/json")
    assert answer.status_code == 200, answer.text
    stored = _item(local_stack, answer.json()["id"])
    assert (stored["fields"]["last4"], stored["fields"]["clientAccnum"]) == ("0789", "900100")
    assert "field_warnings" not in stored and stored["occurred_at"] == "2026-01-15T17:30:00Z"  # Arizona time

    # a Latin-1 name and a stray ampersand in a URL-encoded cancellation without a transactionId
    cancellation = sample_fields("Cancellation", subscriptionId=subscription_id, reason="PLACEHOLDER")
    body, _ = encode_body(cancellation, "urlencoded")
    raw = body.replace(b"PLACEHOLDER", b"Trop+cher+pour+Andr%E9") + b"&&"
    answer = _post(local_stack, "Cancellation", cancellation, raw=raw, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200, answer.text
    key = answer.json()["id"]
    assert _item(local_stack, key)["fields"]["reason"] == "Trop cher pour André"
    decoded = {**cancellation, "reason": "Trop cher pour André"}
    assert hashlib.sha256(canonical_payload(decoded).encode()).hexdigest() not in key
    assert key.startswith("Cancellation#hmac#")
