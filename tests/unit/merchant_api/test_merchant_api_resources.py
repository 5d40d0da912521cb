"""Records -> resources: snake_case, money as decimal strings with a currency, personal data masked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billops.merchant_api.resources import (
    api_idempotency_key,
    delivery_resource,
    history_event_resource,
    operation_resource,
    snake,
    subscription_resource,
)
from billops import operation_states as states
from billops.subscriptions.state_rules import derive_state, history_entry

SALE = {
    "pk": "NewSaleSuccess#txn#0126326702000000001",
    "event_type": "NewSaleSuccess",
    "occurred_at": "2026-01-31T12:00:00Z",
    "received_at": "2026-01-31T12:00:01.000000Z",
    "fields": {
        "clientAccnum": "900100", "clientSubacc": "0000", "subscriptionId": "0126326702000000001",
        "transactionId": "0126326702000000001", "subscriptionInitialPrice": "2.95",
        "subscriptionRecurringPrice": "19.95", "subscriptionCurrencyCode": "840", "initialPeriod": "3",
        "recurringPeriod": "30", "rebills": "99", "nextRenewalDate": "2026-02-03", "bin": "411111", "last4": "1111",
        "expDate": "0129", "cardType": "VISA", "paymentType": "CREDIT", "paymentAccount": "a1b2c3",
    },
}


def record(**extra) -> dict:
    entry = history_entry(SALE)
    state = derive_state("0126326702000000001", [entry])
    return {**state, "history": [entry], "subscriber": {"firstName": "Ann", "email": "ann@example.com",
                                                        "ipAddress": "203.0.113.5", "address2": ""},
            "created_at": "2026-01-31T12:00:02.000000Z", "updated_at": "2026-01-31T12:00:02.000000Z",
            "revision": Decimal(1), **extra}


def test_the_subscription_resource_uses_ccbills_names_in_snake_case():
    resource = subscription_resource(record())
    assert resource["id"] == "0126326702000000001" and resource["object"] == "subscription"
    assert resource["status"] == "active"
    assert (resource["client_accnum"], resource["client_subacc"]) == ("900100", "0000")
    assert (resource["initial_price"], resource["recurring_price"]) == ("2.95", "19.95")
    assert (resource["currency"], resource["currency_code"]) == ("USD", "840")
    assert (resource["initial_period"], resource["recurring_period"], resource["rebills"]) == (3, 30, 99)
    assert resource["times_rebilled"] == 0 and resource["next_renewal_date"] == "2026-02-03"
    assert resource["cancelled_at"] is None and resource["expired_at"] is None
    assert resource["original_subscription_id"] is None
    assert resource["card"] == {"bin": "411111", "last4": "1111", "exp_date": "0129", "card_type": "VISA",
                                "payment_type": "CREDIT"}, "never the payment account hash"
    assert resource["created_at"] and resource["updated_at"]
    assert all(key == key.lower() for key in resource)


def test_personal_data_is_masked_unless_revealed_values_are_given():
    resource = subscription_resource(record())
    assert resource["customer"] == {"email": "***", "first_name": "***", "ip_address": "***"}
    assert "ann@example.com" not in str(resource) and "Ann" not in str(resource)
    revealed = subscription_resource(record(), customer={"firstName": "Ann", "email": "ann@example.com"})
    assert revealed["customer"] == {"email": "ann@example.com", "first_name": "Ann"}


def test_the_recurring_price_follows_a_discount_this_api_applied():
    resource = subscription_resource(record(operation_facts={"recurring_price": "17.95"}))
    assert resource["recurring_price"] == "17.95"


def test_history_entries_and_deliveries():
    event = history_event_resource(history_entry(SALE))
    assert event["id"] == SALE["pk"] and event["event_type"] == "NewSaleSuccess"
    assert event["fields"]["subscription_recurring_price"] == "19.95"
    assert event["fields"]["exp_date"] == "0129"
    quarantined = delivery_resource({"pk": "quarantine#abc", "record_type": "quarantine", "event_type": "Bogus",
                                     "reason": "subscriptionId is missing", "param": "subscriptionId",
                                     "received_at": "2026-01-31T12:00:00Z"})
    assert quarantined["status"] == "quarantined"
    assert quarantined["quarantine"] == {"reason": "subscriptionId is missing", "param": "subscriptionId"}
    received = delivery_resource({"pk": "x", "record_type": "delivery", "known_type": True})
    assert received["status"] == "received" and received["quarantine"] is None


@pytest.mark.parametrize(("status", "api_status"), sorted(states.API_STATUS.items()))
def test_every_operation_status_has_its_api_name(status, api_status):
    resource = operation_resource({"operation_id": "op_x", "status": status, "operation_type": "cancel",
                                   "attempt": Decimal(2)})
    assert resource["status"] == api_status in ("queued", "in_progress", "succeeded", "failed", "unknown")
    assert resource["attempts"] == 2


def test_an_operation_shows_ccbills_result_and_its_meaning():
    failed = operation_resource({
        "operation_id": "op_y", "status": "failed", "operation_type": "discount", "idempotency_key": "api:k-1",
        "parameters": {"new_recurring_price": "4.00"},
        "ccbill": {"action": "discountSubscription", "status": "failed", "code": Decimal(-18),
                   "meaning": "The recurring price is less than the minimum allowable.", "at": "t"},
        "failure": {"reason": "ccbill_refused", "code": Decimal(-18), "message": "m", "param": "newRecurringPrice"},
    })
    assert failed["idempotency_key"] == "k-1"
    assert failed["ccbill_result"]["code"] == -18
    assert failed["failure"]["ccbill_code"] == -18
    assert failed["failure"]["ccbill_meaning"].startswith("The recurring price is less than the minimum")
    upgrade = operation_resource({
        "operation_id": "op_z", "status": "awaiting_consumer", "operation_type": "upgrade",
        "parameters": {"method": "allow_upgrade", "upgrade": "gold"},
        "upgrade_form": {"url": "https://bill.ccbill.com/jpost/upgradeSubscription.cgi", "method": "POST",
                         "fields": {"clientAccnum": "900100", "subscriptionId": "1"}},
        "window_expires_at": "2026-01-31T12:30:00.000000Z",
    })
    assert upgrade["status"] == "in_progress"
    assert upgrade["parameters"] == {"method": "upgrade_system", "upgrade": "gold"}
    assert upgrade["upgrade_form"]["expires_at"] == "2026-01-31T12:30:00.000000Z"
    charge = operation_resource({"operation_id": "op_w", "status": "queued", "operation_type": "upgrade",
                                 "parameters": {"method": "charge_by_previous_transaction",
                                                "new_client_accnum": "900100", "new_client_subacc": "0001",
                                                "initial_period": Decimal(30)}})
    assert charge["parameters"] == {"method": "api", "client_accnum": "900100", "client_subacc": "0001",
                                    "initial_period": 30}


def test_names_and_keys():
    assert snake("subscriptionInitialPrice") == "subscription_initial_price"
    assert snake("last4") == "last4" and snake("address1") == "address1"
    assert api_idempotency_key("api:abc") == "abc" and api_idempotency_key("reconcile:1") == "reconcile:1"
