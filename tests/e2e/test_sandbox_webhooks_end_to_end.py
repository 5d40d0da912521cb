"""End to end across issues 2 and 3: the CCBill sandbox plays CCBill, delivers its webhooks to the receiver over
HTTP, and the subscription record follows what happened at "CCBill"."""

from __future__ import annotations

import pytest
import requests
from support.waiting import eventually

pytestmark = pytest.mark.e2e

SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"


def _record(local_stack, subscription_id: str) -> dict | None:
    from billops.storage.subscriptions_table import SubscriptionsTable

    return SubscriptionsTable(SUBSCRIPTIONS_TABLE, local_stack.boto3_client("dynamodb")).get(subscription_id)


def _history(local_stack, subscription_id: str, length: int) -> dict:
    return eventually(lambda: (r := _record(local_stack, subscription_id)) and len(r["history"]) >= length and r,
                      what=f"{length} deliveries in the record's history")


def test_a_sandbox_subscription_lives_its_life_in_our_record(local_stack):
    sandbox = local_stack.sandbox_url
    created = requests.post(f"{sandbox}/sandbox/subscriptions", json={
        "client_accnum": "900100", "client_subacc": "0000", "initial_price": "2.95", "initial_period": 3,
        "recurring_price": "19.95", "recurring_period": 30, "rebills": 99, "currency_code": "840",
        "username": "e2e-user", "email": "e2e@example.com"}, timeout=10)
    assert created.status_code == 201
    subscription_id = created.json()["subscription_id"]

    record = _history(local_stack, subscription_id, 1)
    assert record["status"] == "active"
    assert (record["initial_price"], record["recurring_price"], record["currency"]) == ("2.95", "19.95", "USD")
    # Stored encrypted; readable with kms:Decrypt on the subscriber-pii context (as the merchant API reads it).
    from billops.privacy.field_encryption import FieldCipher, is_encrypted

    assert is_encrypted(record["subscriber"]["email"])
    cipher = FieldCipher(None, lambda: local_stack.boto3_client("kms"))
    assert cipher.decrypt_fields(record["subscriber"], record["subscriber_keys"])["email"] == "e2e@example.com"

    assert requests.post(f"{sandbox}/sandbox/subscriptions/{subscription_id}/renew", timeout=10).ok
    record = _history(local_stack, subscription_id, 2)
    assert record["times_rebilled"] == 1

    assert requests.post(f"{sandbox}/sandbox/subscriptions/{subscription_id}/cancel", timeout=10).ok
    record = _history(local_stack, subscription_id, 3)
    assert record["status"] == "cancelled"

    assert requests.post(f"{sandbox}/sandbox/subscriptions/{subscription_id}/expire", timeout=10).ok
    record = _history(local_stack, subscription_id, 4)
    assert record["status"] == "expired"

    deliveries = requests.get(f"{sandbox}/sandbox/webhooks", timeout=10).json()
    ours = [d for d in deliveries if d["subscription_id"] == subscription_id]
    assert [d["event_type"] for d in ours] == ["NewSaleSuccess", "RenewalSuccess", "Cancellation", "Expiration"]
