"""The hot path's cost, counted: AWS requests made by the receiver per delivery on a warm container.

Counted with botocore's own event hooks on the real clients (so every retry counts too), against moto's server.
This is a count, not a timing: it cannot flake, and it fails the moment someone adds a read before the write.
"""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import urlencode

import pytest

from billops_local.aws_environment import aws_client
from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

TOKEN = "counted-token-value"


@pytest.fixture
def counted_receiver(aws_tables, monkeypatch, lambda_context, handler_loader):
    secret_arn = aws_client("secretsmanager", aws_tables.endpoint_url).create_secret(
        Name="counted-webhook-token", SecretString=TOKEN)["ARN"]
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.delenv("BILLOPS_WEBHOOK_TOKEN", raising=False)
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN_SECRET_ARN", secret_arn)
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    module = handler_loader("webhook_receiver")
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: object) -> None:
        # before-send.<service>.<Operation>: fires once per HTTP request, retries included.
        calls[event_name.split(".", 1)[1]] += 1

    import boto3

    boto3.DEFAULT_SESSION = None
    hooked: set[int] = set()
    # The KMS client is hooked before the first delivery, so the cold start's data key is counted too.
    from billops.storage.aws_clients import aws_client as container_client

    kms = container_client("kms")
    kms.meta.events.register("before-send", count)
    hooked.add(id(kms))

    def post(event_type: str, fields: dict, body_format: str = "json") -> int:
        body, content_type = encode_body(fields, body_format)
        event = http_api_event("POST", "/webhooks/ccbill", urlencode(webhook_query(event_type, fields, TOKEN)),
                               {"content-type": content_type}, body, "64.38.241.3")
        status = module.handler(event, lambda_context)["statusCode"]
        from billops.storage.dynamodb_client import dynamodb_client

        for client in (dynamodb_client(), parameters.base.DEFAULT_PROVIDERS.get("secrets") and
                       parameters.base.DEFAULT_PROVIDERS["secrets"].client):
            if client is not None and id(client) not in hooked:
                client.meta.events.register("before-send", count)
                hooked.add(id(client))
        return status

    post.calls = calls
    return post


def test_warm_path_is_one_dynamodb_request_per_new_delivery_and_per_duplicate(counted_receiver):
    # Cold start: the first delivery reads the token once, creates the clients (then hooks are attached) and asks
    # KMS for the data key that encrypts personal fields.
    assert counted_receiver("NewSaleSuccess", sample_fields("NewSaleSuccess")) == 200
    calls = counted_receiver.calls
    assert dict(calls) == {"kms.GenerateDataKey": 1}, json.dumps(calls)
    calls.clear()

    new_deliveries = [sample_fields("RenewalSuccess", transactionId=f"01260154010000{n:05d}") for n in range(20)]
    for fields in new_deliveries:
        assert counted_receiver("RenewalSuccess", fields) == 200
    assert dict(calls) == {"dynamodb.PutItem": 20}, json.dumps(calls)

    # Deliveries with personal data: encrypted under the cached data key, still one request each, no KMS call.
    calls.clear()
    updates = [sample_fields("CustomerDataUpdate", transactionId=f"01260154010000{n:05d}", email=f"u{n}@example.com")
               for n in range(100, 110)]
    for fields in updates:
        assert counted_receiver("CustomerDataUpdate", fields) == 200
    assert dict(calls) == {"dynamodb.PutItem": 10}, json.dumps(calls)

    calls.clear()
    for fields in new_deliveries[:10]:
        assert counted_receiver("RenewalSuccess", fields, "urlencoded") == 200
    assert dict(calls) == {"dynamodb.PutItem": 10}, "a duplicate costs one conditional write, no read"


def test_hash_keyed_deliveries_and_reversals_cost_what_the_key_rules_say(counted_receiver, monkeypatch):
    """Issue 11: the delivery key's secret is read once per container; a delivery without a transactionId costs one
    key read (its older key) and one write; a reversal one write, a second reversal of its transaction two."""
    assert counted_receiver("NewSaleSuccess", sample_fields("NewSaleSuccess")) == 200
    calls = counted_receiver.calls
    calls.clear()
    cancellations = [sample_fields("Cancellation", timestamp=f"2026-02-01 10:{n:02d}:00") for n in range(5)]
    assert [counted_receiver("Cancellation", fields) for fields in cancellations] == [200] * 5
    assert dict(calls) == {"secrets-manager.GetSecretValue": 1, "dynamodb.GetItem": 5, "dynamodb.PutItem": 5}, \
        json.dumps(calls)
    calls.clear()
    refund = sample_fields("Refund", amount="5.00")
    assert counted_receiver("Refund", refund) == 200
    assert dict(calls) == {"dynamodb.PutItem": 1}, json.dumps(calls)
    calls.clear()
    assert counted_receiver("Refund", refund, "urlencoded") == 200  # the same refund again: one write, no read
    assert dict(calls) == {"dynamodb.PutItem": 1}, json.dumps(calls)
    calls.clear()
    assert counted_receiver("Refund", {**refund, "amount": "7.00"}) == 200  # another refund of the transaction
    assert dict(calls) == {"dynamodb.PutItem": 2}, json.dumps(calls)
