"""Webhook deliveries: CCBill's query string, both body formats, retries, and never a broken API call."""

from __future__ import annotations

import json

import pytest
import requests

TOKEN = "sandbox-test-token"


@pytest.mark.parametrize("webhook_format,content_type", [("json", "application/json"),
                                                         ("urlencoded", "application/x-www-form-urlencoded")])
def test_a_new_sale_is_delivered_in_the_chosen_format(sandbox_factory, receiver, new_subscription, webhook_format,
                                                      content_type):
    handle = sandbox_factory(webhook_format)
    sub = new_subscription(handle, username="janedoe1", email="jane@example.com", currency_code="GBP")
    assert handle.wait_for_webhooks()
    [delivery] = receiver.deliveries
    assert delivery.path == "/webhooks/ccbill"
    assert delivery.query == {"token": TOKEN, "clientAccnum": "900100", "clientSubacc": "0000",
                              "eventType": "NewSaleSuccess", "eventGroupType": "Subscription"}
    assert delivery.headers["Content-Type"] == content_type
    assert delivery.headers["X-Forwarded-For"] == "64.38.240.10"
    assert delivery.client_ip == "127.0.0.1"
    fields = delivery.fields
    assert fields["subscriptionId"] == sub and fields["transactionId"] == sub
    assert (fields["username"], fields["email"]) == ("janedoe1", "jane@example.com")
    assert (fields["billedInitialPrice"], fields["billedCurrencyCode"], fields["billedCurrency"]) == (
        "19.95", "826", "GBP")
    assert fields["initialPeriod"] == "30" and fields["rebills"] == "99"
    assert len(fields["timestamp"]) == 19 and len(fields["nextRenewalDate"]) == 10
    assert all(isinstance(value, str) for value in fields.values())
    record = handle.webhooks()[0]
    assert record["state"] == "delivered" and record["fields"]["password"] == "***"


def test_the_payload_is_what_the_receiver_decodes(sandbox_factory, receiver, new_subscription):
    from billops.webhooks.delivery_decoding import decode_body

    handle = sandbox_factory("urlencoded")
    new_subscription(handle)
    assert handle.wait_for_webhooks()
    delivery = receiver.deliveries[0]
    decoded = decode_body(delivery.body, delivery.headers["Content-Type"])
    assert decoded.fields["subscriptionId"] == delivery.fields["subscriptionId"]


def test_lifecycle_events_in_order(sandbox, receiver, new_subscription):
    sub = new_subscription()
    sandbox.sandbox.subscription_operation(sub, "renew", {})
    sandbox.sandbox.subscription_operation(sub, "renew", {"outcome": "failure"})
    sandbox.sandbox.subscription_operation(sub, "cancel", {})
    sandbox.sandbox.subscription_operation(sub, "expire", {})
    assert sandbox.wait_for_webhooks()
    assert receiver.event_types() == ["NewSaleSuccess", "RenewalSuccess", "RenewalFailure", "Cancellation",
                                      "Expiration"]
    renewal = receiver.of_type("RenewalSuccess")[0].fields
    assert renewal["billedAmount"] == "19.95" and renewal["transactionId"] != sub
    assert receiver.of_type("RenewalFailure")[0].fields["nextRetryDate"]


def test_a_chargeback_ends_the_subscription(sandbox, receiver, new_subscription):
    sub = new_subscription()
    sandbox.sandbox.subscription_operation(sub, "chargeback", {})
    assert sandbox.wait_for_webhooks()
    assert receiver.event_types() == ["NewSaleSuccess", "Chargeback", "Cancellation", "Expiration"]
    assert receiver.of_type("Chargeback")[0].fields["amount"] == "19.95"


def test_a_failed_delivery_is_retried_in_the_background(sandbox, receiver, client, new_subscription):
    receiver.statuses.extend([500, 503])
    sub = new_subscription()
    assert client.cancel_subscription(sub).succeeded
    assert sandbox.wait_for_webhooks()
    records = sandbox.webhooks()
    assert [r["state"] for r in records] == ["delivered", "delivered"]
    assert [a["status"] for a in records[0]["attempts"]] == [500, 503, 200]
    assert receiver.event_types() == ["NewSaleSuccess", "NewSaleSuccess", "NewSaleSuccess", "Cancellation"]


def test_a_4xx_is_the_receivers_final_word(sandbox, receiver, new_subscription):
    receiver.statuses.append(400)
    new_subscription()
    assert sandbox.wait_for_webhooks()
    record = sandbox.webhooks()[0]
    assert record["state"] == "rejected" and len(record["attempts"]) == 1


def test_an_unreachable_receiver_never_breaks_the_api_call(sandbox_factory, client_factory):
    from billops_local.ccbill_sandbox import start_sandbox

    handle = start_sandbox("127.0.0.1", 0, "http://127.0.0.1:9/webhooks/ccbill?token=x", "json",
                           webhook_retry_delays=(0.01, 0.01))
    try:
        client = client_factory(handle)
        sub = handle.create_subscription(initial_price="19.95", initial_period=30, recurring_price="19.95",
                                         recurring_period=30)
        assert client.cancel_subscription(sub).succeeded
        assert handle.wait_for_webhooks()
        records = handle.webhooks()
        assert [r["state"] for r in records] == ["failed", "failed"]
        assert len(records[0]["attempts"]) == 3 and records[0]["attempts"][0]["error"]
    finally:
        handle.stop()


def test_without_a_webhook_url_deliveries_are_recorded_as_skipped(client_factory):
    from billops_local.ccbill_sandbox import start_sandbox

    with start_sandbox("127.0.0.1", 0, None) as handle:
        handle.create_subscription(initial_price="5.00", initial_period=30)
        assert handle.wait_for_webhooks()
        assert handle.webhooks()[0]["state"] == "skipped"


def test_deliveries_over_the_admin_api(sandbox, new_subscription):
    new_subscription()
    assert sandbox.wait_for_webhooks()
    records = requests.get(sandbox.url + "/sandbox/webhooks", timeout=5).json()
    assert records[0]["event_type"] == "NewSaleSuccess" and records[0]["state"] == "delivered"
    assert "***" == records[0]["fields"]["password"]
    json.dumps(records)
