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


def test_varied_sandbox_deliveries_all_arrive_and_are_folded(local_stack):
    """The sandbox runs varied (tests/e2e/conftest.py: any format, any version, every variation, one seed): a few
    lifecycles' deliveries (sales, rebills, a declined rebill, cancellations, chargebacks, expirations) are all
    answered 2xx by the receiver and all folded into their subscription's record."""
    sandbox = local_stack.sandbox_url
    config = requests.get(f"{sandbox}/sandbox/config", timeout=10).json()
    assert (config["variation"], config["format"], config["versions"]["NewSaleSuccess"]) == ("varied", "any", "any")
    print(f"sandbox webhook seed {config['seed']}")
    steps = {0: ["renew", "cancel"], 1: ["renew", "chargeback"], 2: ["renew-failure", "renew", "expire"],
             3: ["cancel", "expire"], 4: ["chargeback"], 5: ["renew", "renew"]}
    subscriptions = []
    for number in range(12):
        created = requests.post(f"{sandbox}/sandbox/subscriptions", json={
            "client_accnum": "900100", "client_subacc": "0000", "initial_price": ("2.95", "23.00", "19.95")[number % 3],
            "initial_period": 3, "recurring_price": "19.95", "recurring_period": 30, "rebills": 99,
            "currency_code": ("840", "978", "826")[number % 3], "username": f"varied{number:02d}",
            "email": f"varied{number:02d}@example.com"}, timeout=10)
        assert created.status_code == 201, created.text
        subscription_id = created.json()["subscription_id"]
        subscriptions.append(subscription_id)
        for step in steps.get(number % 6, []):
            operation, _, outcome = step.partition("-")
            body = {"outcome": outcome} if outcome else {}
            answer = requests.post(f"{sandbox}/sandbox/subscriptions/{subscription_id}/{operation}", json=body,
                                   timeout=10)
            assert answer.ok, answer.text

    def settled() -> list[dict] | None:
        records = [r for r in requests.get(f"{sandbox}/sandbox/webhooks", timeout=10).json()
                   if r["subscription_id"] in subscriptions]
        return records if records and all(r["state"] != "pending" for r in records) else None

    records = eventually(settled, timeout=60)
    refused = [(r["event_type"], r["version"], r["body_format"], r["variations"], r["attempts"][-1]["status"])
               for r in records if r["state"] != "delivered"]
    assert not refused, f"seed {config['seed']}: deliveries the receiver did not take: {refused}"
    assert {r["body_format"] for r in records} == {"json", "urlencoded"}
    assert any("older_version" in r["variations"] for r in records)
    assert len({name for r in records for name in r["variations"]}) >= 3, records

    for subscription_id in subscriptions:
        sent = [r for r in records if r["subscription_id"] == subscription_id]
        record = _history(local_stack, subscription_id, len(sent))
        assert len(record["history"]) == len(sent), (subscription_id, config["seed"])
