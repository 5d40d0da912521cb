"""The sandbox's admin API (JSON under /sandbox), as tests, demos and people use it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from billops_local.ccbill_sandbox import DEFAULT_DATALINK_PASSWORD, DEFAULT_DATALINK_USERNAME

NEW_SALE = {"client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95", "initial_period": 30,
            "recurring_price": "19.95", "recurring_period": 30, "rebills": 99, "currency_code": "840",
            "username": "janedoe1", "email": "jane@example.com"}


def admin(sandbox, method, path, **kwargs):
    return requests.request(method, sandbox.url + path, timeout=5, **kwargs)


def test_create_and_read_a_subscription(sandbox, receiver):
    created = admin(sandbox, "POST", "/sandbox/subscriptions", json=NEW_SALE)
    assert created.status_code == 201
    sub = created.json()["subscription_id"]
    assert len(sub) == 19 and sub.isdigit()
    state = admin(sandbox, "GET", f"/sandbox/subscriptions/{sub}").json()
    assert state["status"] == "active" and state["recurring_price"] == "19.95"
    assert state["charges"] == [{"transaction_id": sub, "kind": "initial", "amount": "19.95", "currency_code": "840",
                                 "at": state["signup_date"], "refunded": "0.00", "voided": False,
                                 "charged_back": False}]
    assert "password" not in state and state["password_length"] > 0
    assert sandbox.wait_for_webhooks()
    assert receiver.event_types() == ["NewSaleSuccess"]
    assert [s["subscription_id"] for s in admin(sandbox, "GET", "/sandbox/subscriptions").json()] == [sub]


def test_subscription_ids_increase(sandbox):
    ids = [admin(sandbox, "POST", "/sandbox/subscriptions", json=NEW_SALE).json()["subscription_id"]
           for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_a_single_charge_subscription(sandbox):
    sub = admin(sandbox, "POST", "/sandbox/subscriptions", json={"initial_price": "9.95", "initial_period": 30}
                ).json()["subscription_id"]
    state = admin(sandbox, "GET", f"/sandbox/subscriptions/{sub}").json()
    assert state["is_recurring"] is False and state["subscription_status"] == "1"
    assert admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/renew").status_code == 409


@pytest.mark.parametrize("body,param", [
    ({**NEW_SALE, "initial_price": "19,95"}, "initial_price"),
    ({**NEW_SALE, "initial_period": "thirty"}, "initial_period"),
    ({**NEW_SALE, "currency_code": "999"}, "currency_code"),
    ({**NEW_SALE, "client_accnum": "123456"}, "client_accnum"),
    ({**NEW_SALE, "client_subacc": "0042"}, "client_subacc"),
    ({**NEW_SALE, "recurring_period": 0}, "recurring_period"),
    ({"initial_period": 30}, "initial_price"),
])
def test_create_validation(sandbox, body, param):
    response = admin(sandbox, "POST", "/sandbox/subscriptions", json=body)
    assert response.status_code == 400
    assert response.json()["param"] == param


def test_renew_cancel_expire_chargeback(sandbox, receiver):
    sub = admin(sandbox, "POST", "/sandbox/subscriptions", json=NEW_SALE).json()["subscription_id"]
    renewed = admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/renew")
    assert renewed.status_code == 200
    state = renewed.json()["subscription"]
    assert len(state["charges"]) == 2 and state["times_rebilled"] == 1
    assert state["charges"][1]["transaction_id"] == renewed.json()["transaction_id"]
    failed = admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/renew", json={"outcome": "failure",
                                                                               "failure_code": "BE-900"})
    assert failed.json()["result"] == "failure" and len(failed.json()["subscription"]["charges"]) == 2
    charged_back = admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/chargeback", json={"amount": "10.00"})
    assert charged_back.status_code == 200
    assert charged_back.json()["subscription"]["status"] == "expired"
    assert admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/cancel").status_code == 409
    assert admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/expire").status_code == 409
    assert sandbox.wait_for_webhooks()
    assert receiver.event_types() == ["NewSaleSuccess", "RenewalSuccess", "RenewalFailure", "Chargeback",
                                      "Cancellation", "Expiration"]
    assert receiver.of_type("RenewalFailure")[0].fields["failureCode"] == "BE-900"


def test_cancel_then_expire(sandbox):
    sub = admin(sandbox, "POST", "/sandbox/subscriptions", json=NEW_SALE).json()["subscription_id"]
    cancelled = admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/cancel", json={"reason": "Too expensive"})
    assert cancelled.json()["subscription"]["status"] == "cancelled"
    assert admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/renew").status_code == 409
    assert admin(sandbox, "POST", f"/sandbox/subscriptions/{sub}/expire").json()["subscription"]["status"] == \
        "expired"


def test_every_api_call_is_recorded_in_order_with_credentials_masked(sandbox, client):
    sub = admin(sandbox, "POST", "/sandbox/subscriptions", json=NEW_SALE).json()["subscription_id"]
    client.view_subscription_status(sub)
    client.cancel_subscription(sub)
    requests.post(sandbox.sms_url, data={"clientAccnum": "900100", "username": "x", "password": "guess",
                                         "action": "cancelSubscription", "subscriptionId": sub}, timeout=5)
    calls = admin(sandbox, "GET", "/sandbox/calls").json()
    assert [c["action"] for c in calls] == ["viewSubscriptionStatus", "cancelSubscription", "cancelSubscription"]
    assert [c["seq"] for c in calls] == [1, 2, 3]
    for call in calls:
        assert call["params"]["password"] == "***" and call["params"]["username"] == "***"
    text = admin(sandbox, "GET", "/sandbox/calls").text
    assert DEFAULT_DATALINK_PASSWORD not in text and DEFAULT_DATALINK_USERNAME not in text and "guess" not in text
    assert calls[1]["answer"] == {"http_status": 200, "body": "<?xml version='1.0' standalone='yes'?>\n"
                                                              "<results>1</results>\n"}
    assert calls[1]["applied"] is True and calls[2]["applied"] is False
    assert "<results>-7</results>" not in calls[2]["answer"]["body"]  # CSV: no returnXML on the raw call
    assert admin(sandbox, "DELETE", "/sandbox/calls").status_code == 200
    assert admin(sandbox, "GET", "/sandbox/calls").json() == []


def test_the_clock_moves_forward_only(sandbox):
    before = datetime.fromisoformat(admin(sandbox, "GET", "/sandbox/clock").json()["now"])
    after = admin(sandbox, "POST", "/sandbox/clock", json={"advance_days": 31}).json()["now"]
    assert (datetime.fromisoformat(after) - before).days >= 30
    assert admin(sandbox, "POST", "/sandbox/clock", json={"advance_days": -1}).status_code == 400


def test_an_injected_clock(sandbox_factory):
    handle = sandbox_factory(clock=lambda: datetime(2026, 1, 15, 10, 30, tzinfo=UTC))
    sub = handle.create_subscription(initial_price="19.95", initial_period=30, recurring_price="19.95",
                                     recurring_period=30)
    assert sub == "0126015402000000001"  # station 01, 2026, day 015, Thursday (4), test method 02, sequence 1
    state = handle.subscription(sub)
    assert state["signup_date"] == "2026-01-15T10:30:00Z"
    assert state["next_billing_date"] == "2026-02-14T10:30:00Z"


def test_reset_ledger_accounts_and_errors(sandbox, client):
    sub = admin(sandbox, "POST", "/sandbox/subscriptions", json=NEW_SALE).json()["subscription_id"]
    client.refund_transaction(sub, amount="1.00")
    ledger = admin(sandbox, "GET", "/sandbox/ledger").json()
    assert [(e["kind"], e["amount"]) for e in ledger] == [("charge", "19.95"), ("refund", "-1.00")]
    accounts = admin(sandbox, "GET", "/sandbox/accounts")
    assert accounts.status_code == 200 and DEFAULT_DATALINK_PASSWORD not in accounts.text
    assert admin(sandbox, "GET", "/sandbox/subscriptions/0126015401999999999").status_code == 404
    assert admin(sandbox, "GET", "/sandbox/nowhere").status_code == 404
    assert admin(sandbox, "DELETE", "/sandbox/subscriptions").status_code == 405
    bad_json = admin(sandbox, "POST", "/sandbox/subscriptions", data="{", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert admin(sandbox, "POST", "/sandbox/reset").json() == {"reset": True}
    assert admin(sandbox, "GET", "/sandbox/subscriptions").json() == []
    assert admin(sandbox, "GET", "/sandbox/health").json()["status"] == "ok"
