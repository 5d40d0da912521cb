"""End to end (issue 11, parts 4 and 6): declined purchases and timestamp-less events, posted over HTTP to the local
stack; what the projector made of them is read back through the merchant API, as a merchant's back end would."""

from __future__ import annotations

import random
from urllib.parse import urlencode

import pytest
import requests
from operations_driver import wait_for

from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

pytestmark = pytest.mark.e2e

API_KEY = "local-api-key"
RUN = f"{random.randrange(10**6):06d}"
SALE_FAILURES = ("NewSaleFailure", "UpgradeFailure", "UpSaleFailure", "CrossSaleFailure")


def _id(number: int) -> str:
    return f"0126{RUN}03{number:07d}"


def _post(local_stack, event_type: str, body_format: str = "json", **overrides: str) -> None:
    fields = sample_fields(event_type, **overrides)
    body, content_type = encode_body(fields, body_format)
    query = urlencode(webhook_query(event_type, fields, local_stack.webhook_token))
    answer = requests.post(f"{local_stack.api_url}/webhooks/ccbill?{query}", data=body,
                           headers={"Content-Type": content_type}, timeout=10)
    assert answer.status_code == 200, answer.text


def _resource(local_stack, subscription_id: str) -> dict | None:
    answer = requests.get(f"{local_stack.api_url}/v1/subscriptions/{subscription_id}", auth=(API_KEY, ""), timeout=10)
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()["subscription"]


def _history(local_stack, subscription_id: str) -> list[str]:
    answer = requests.get(f"{local_stack.api_url}/v1/subscriptions/{subscription_id}/events", auth=(API_KEY, ""),
                          params={"limit": 100}, timeout=10)
    return [item["event"]["event_type"] for item in answer.json().get("list", [])] if answer.ok else []


def _sale(local_stack, subscription_id: str, timestamp: str = "2026-05-01 09:00:00") -> None:
    _post(local_stack, "NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id,
          timestamp=timestamp)


@pytest.mark.parametrize("number, event_type", list(enumerate(SALE_FAILURES, start=1)))
def test_a_declined_purchase_with_a_subscription_id_is_declined_not_active(local_stack, number, event_type):
    subscription_id = _id(number)
    _post(local_stack, event_type, "urlencoded", subscriptionId=subscription_id, transactionId=_id(number + 50),
          timestamp="2026-05-01 09:00:00", failureCode="BE-31", failureReason="Insufficient Funds")
    subscription = wait_for("the declined purchase folded", lambda: _resource(local_stack, subscription_id))
    assert subscription["status"] == "declined"
    assert subscription["signed_up_at"] is None and subscription["initial_price"] is None
    listed = requests.get(f"{local_stack.api_url}/v1/subscriptions", params={"status": "active", "limit": 100},
                          auth=(API_KEY, ""), timeout=10).json()["list"]
    assert subscription_id not in {item["subscription"]["id"] for item in listed}
    refused = requests.post(f"{local_stack.api_url}/v1/subscriptions/{subscription_id}/cancel", auth=(API_KEY, ""),
                            timeout=10)
    assert refused.status_code == 409 and refused.json()["api_error_code"] == "invalid_state_for_request"


def test_declined_purchases_never_reactivate_an_expired_subscription(local_stack):
    subscription_id = _id(10)
    _sale(local_stack, subscription_id)
    _post(local_stack, "Expiration", subscriptionId=subscription_id, timestamp="2026-06-01 09:00:00")
    wait_for("expired", lambda: (_resource(local_stack, subscription_id) or {}).get("status") == "expired")
    for number, event_type in enumerate(SALE_FAILURES):
        _post(local_stack, event_type, subscriptionId=subscription_id, transactionId=_id(60 + number),
              timestamp="2026-06-02 09:00:00", clientSubacc="0001")
    wait_for("every failure in the history", lambda: len(_history(local_stack, subscription_id)) == 6)
    subscription = _resource(local_stack, subscription_id)
    assert subscription["status"] == "expired" and subscription["client_subacc"] == "0000"


def test_a_renewal_failure_keeps_the_status_and_shows_the_decline(local_stack):
    active, cancelled = _id(20), _id(21)
    for subscription_id in (active, cancelled):
        _sale(local_stack, subscription_id)
    _post(local_stack, "Cancellation", subscriptionId=cancelled, timestamp="2026-05-20 09:00:00")
    for number, subscription_id in enumerate((active, cancelled)):
        _post(local_stack, "RenewalFailure", "urlencoded", subscriptionId=subscription_id,
              transactionId=_id(70 + number), timestamp="2026-05-31 09:00:00", failureCode="BE-29",
              failureReason="Card Expired", nextRetryDate="2026-06-03", renewalDate="2026-05-31")
    for subscription_id, status in ((active, "active"), (cancelled, "cancelled")):
        subscription = wait_for("the decline recorded", lambda: (
            _resource(local_stack, subscription_id) or {}).get("last_renewal_failure") and _resource(
            local_stack, subscription_id))
        assert subscription["status"] == status
        failure = subscription["last_renewal_failure"]
        assert (failure["failure_code"], failure["failure_reason"], failure["decline_text"]) == (
            "BE-29", "Card Expired", "Card Expired")
        assert failure["next_retry_date"] == "2026-06-03" and failure["renewal_date"] == "2026-05-31"


def test_a_reactivation_is_not_undone_by_an_expiration_ccbill_sent_before_it(local_stack):
    """CCBill's timestamps read ahead of our clock (its zone or clock): the expiration says 2099, yet it reached us
    before the reactivation, so CCBill sent it first and the reactivation stands."""
    subscription_id = _id(30)
    _sale(local_stack, subscription_id)
    _post(local_stack, "Expiration", subscriptionId=subscription_id, timestamp="2099-01-01 10:00:00")
    wait_for("expired", lambda: (_resource(local_stack, subscription_id) or {}).get("status") == "expired")
    _post(local_stack, "UserReactivation", subscriptionId=subscription_id, transactionId=_id(80),
          nextRenewalDate="2099-02-01")
    wait_for("reactivation folded", lambda: len(_history(local_stack, subscription_id)) == 3)
    subscription = _resource(local_stack, subscription_id)
    assert subscription["status"] == "active" and subscription["reactivated_at"]
    assert subscription["expired_at"] is None and subscription["next_renewal_date"] == "2099-02-01"
    assert _history(local_stack, subscription_id) == ["UserReactivation", "Expiration", "NewSaleSuccess"]
