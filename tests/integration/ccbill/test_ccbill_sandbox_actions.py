"""Every action of the client against the sandbox, over real HTTP, in both of CCBill's formats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billops.ccbill.subscription_facts import SubscriptionState, facts_from_status, parse_ccbill_datetime


@pytest.fixture(params=["xml", "csv"])
def any_format_client(request, client_factory):
    return client_factory(response_format=request.param)


def test_view_subscription_status(sandbox, any_format_client, new_subscription):
    sub = new_subscription()
    outcome = any_format_client.view_subscription_status(sub)
    assert outcome.succeeded
    assert outcome.data["subscriptionStatus"] == "2"
    assert outcome.data["recurringSubscription"] == "1"
    assert parse_ccbill_datetime(outcome.data["signupDate"]) is not None
    assert parse_ccbill_datetime(outcome.data["nextBillingDate"]) is not None
    facts = facts_from_status(outcome.data, sub)
    assert facts.state is SubscriptionState.ACTIVE and facts.is_recurring


def test_cancel_subscription(sandbox, any_format_client, receiver, new_subscription):
    sub = new_subscription()
    assert any_format_client.cancel_subscription(sub).succeeded
    state = sandbox.subscription(sub)
    assert state["status"] == "cancelled" and state["cancel_date"]
    status = any_format_client.view_subscription_status(sub)
    assert status.data["subscriptionStatus"] == "1"
    assert facts_from_status(status.data).state is SubscriptionState.CANCELLED
    again = any_format_client.cancel_subscription(sub)
    assert again.failed and again.code == 0
    assert sandbox.wait_for_webhooks()
    assert receiver.event_types() == ["NewSaleSuccess", "Cancellation"]


def test_discount_by_amount_and_to_a_new_price(sandbox, any_format_client, new_subscription):
    sub = new_subscription()
    assert any_format_client.discount_subscription(sub, discount_amount="2.00").succeeded
    assert sandbox.subscription(sub)["recurring_price"] == "17.95"
    assert any_format_client.discount_subscription(sub, new_recurring_price=Decimal("12.95")).succeeded
    assert sandbox.subscription(sub)["recurring_price"] == "12.95"


def test_extend_subscription(sandbox, any_format_client, receiver, new_subscription):
    sub = new_subscription()
    before = sandbox.subscription(sub)["next_billing_date"]
    assert any_format_client.extend_subscription(sub, 7).succeeded
    after = sandbox.subscription(sub)["next_billing_date"]
    assert parse_ccbill_datetime(after.replace("T", " ").rstrip("Z")) > parse_ccbill_datetime(
        before.replace("T", " ").rstrip("Z"))
    assert sandbox.wait_for_webhooks()
    assert receiver.of_type("BillingDateChange")[0].fields["nextRenewalDate"] == after[:10]


def test_refund_part_of_a_transaction(sandbox, any_format_client, receiver, new_subscription):
    sub = new_subscription()
    assert any_format_client.refund_transaction(sub, amount="5.00").succeeded
    state = sandbox.subscription(sub)
    assert state["charges"][0]["refunded"] == "5.00"
    assert state["reversals"][0]["kind"] == "refund" and state["reversals"][0]["amount"] == "5.00"
    assert state["status"] == "expired"  # a refund ends the subscription (see lifecycle.py)
    assert sandbox.wait_for_webhooks()
    assert receiver.event_types() == ["NewSaleSuccess", "Refund", "Cancellation", "Expiration"]
    refund = receiver.of_type("Refund")[0].fields
    assert refund["amount"] == "5.00" and refund["subscriptionId"] == sub
    assert receiver.of_type("Cancellation")[0].fields["reason"] == "Customer Refunded"


def test_refund_the_whole_transaction_and_not_more(sandbox, any_format_client, new_subscription):
    sub = new_subscription()
    too_much = any_format_client.refund_transaction(sub, amount="25.00")
    assert too_much.failed and too_much.code == -5
    assert any_format_client.refund_transaction(sub).succeeded
    assert sandbox.subscription(sub)["charges"][0]["refunded"] == "19.95"
    again = any_format_client.refund_transaction(sub)
    assert again.failed and again.code == 0


def test_refund_a_renewal_by_its_transaction_id(sandbox, client, new_subscription):
    sub = new_subscription()
    renewal = sandbox.sandbox.subscription_operation(sub, "renew", {})["transaction_id"]
    assert client.refund_transaction(renewal).succeeded
    charges = sandbox.subscription(sub)["charges"]
    assert charges[1]["transaction_id"] == renewal and charges[1]["refunded"] == "19.95"
    assert charges[0]["refunded"] == "0.00"


def test_void_transaction(sandbox, any_format_client, receiver, new_subscription):
    sub = new_subscription()
    assert any_format_client.void_transaction(sub).succeeded
    assert sandbox.subscription(sub)["charges"][0]["voided"] is True
    assert any_format_client.void_transaction(sub).code == 0
    assert sandbox.wait_for_webhooks()
    assert receiver.of_type("Void")[0].fields["amount"] == "19.95"


def test_a_settled_charge_cannot_be_voided_but_void_or_refund_refunds_it(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.sandbox.advance_clock({"advance_days": 2})
    assert client.void_transaction(sub).code == 0
    assert client.void_or_refund_transaction(sub, amount="3.00").succeeded
    state = sandbox.subscription(sub)
    assert state["reversals"][0]["kind"] == "refund" and state["reversals"][0]["amount"] == "3.00"


def test_void_or_refund_voids_the_whole_fresh_transaction(sandbox, client, new_subscription):
    sub = new_subscription()
    assert client.void_or_refund_transaction(sub, amount="3.00").succeeded
    reversal = sandbox.subscription(sub)["reversals"][0]
    assert reversal["kind"] == "void" and reversal["amount"] == "19.95"


def test_charge_by_previous_transaction_id_to_another_account(sandbox, any_format_client, receiver, new_subscription):
    sub = new_subscription(username="longenough01")
    outcome = any_format_client.charge_by_previous_transaction_id(
        sub, new_client_accnum="900200", new_client_subacc="0000", initial_price="9.95", initial_period=30,
        recurring_price="9.95", recurring_period=30, rebills=99, currency_code="EUR", special_offer=True,
        shared_authentication=True)
    assert outcome.succeeded
    new = outcome.data["subscriptionId"]
    assert new > sub  # IDs increase
    state = sandbox.subscription(new)
    assert (state["client_accnum"], state["client_subacc"], state["currency_code"]) == ("900200", "0000", "978")
    assert state["charges"][0]["amount"] == "9.95" and state["upgraded_from"] == sub
    assert sandbox.subscription(sub)["status"] == "active"  # CBPT leaves the original alone
    assert sandbox.wait_for_webhooks()
    upsale = receiver.of_type("UpSaleSuccess")[0]
    assert upsale.fields["originalSubscriptionId"] == sub and upsale.fields["subscriptionId"] == new
    assert upsale.query["clientAccnum"] == "900200"
    assert upsale.fields["billedCurrency"] == "EUR"


def test_upgrade_by_previous_transaction_from_the_catalogue(sandbox, client, new_subscription):
    sub = new_subscription()
    outcome = client.upgrade_by_previous_transaction(sub, "gold")
    assert outcome.succeeded
    new = sandbox.subscription(outcome.data["subscriptionId"])
    assert (new["client_subacc"], new["initial_price"], new["recurring_period"]) == ("0001", "19.95", 30)


def test_upgrade_subscription_on_the_billing_api(sandbox, any_format_client, receiver, new_subscription):
    sub = new_subscription()
    outcome = any_format_client.upgrade_subscription(sub, "gold")
    assert outcome.succeeded
    new = outcome.data["subscriptionId"]
    assert sandbox.subscription(new)["subscription_type_id"] == "0015"
    original = sandbox.subscription(sub)
    assert original["status"] == "expired" and original["upgraded_to"] == new
    assert sandbox.wait_for_webhooks()
    upgrade = receiver.of_type("UpgradeSuccess")[0].fields
    assert upgrade["originalSubscriptionId"] == sub and upgrade["source"] == "API"


def test_allow_upgrade_then_the_consumer_form(sandbox, client, new_subscription):
    import requests

    sub = new_subscription()
    assert client.allow_upgrade("0000", subscription_id=sub).succeeded
    form = client.upgrade_form("0000", subscription_id=sub, method="backend_post")
    assert "upgradeTypeId" not in form.fields  # one upgrade configured: the three variables are left out
    page = requests.post(form.url, data=form.fields, timeout=5)
    assert "Upgrade Approved" in page.text
    assert sandbox.subscription(sub)["status"] == "expired"
    # The allowance is used up.
    sub2 = new_subscription()
    denied = requests.post(form.url, data={**form.fields, "subscriptionId": sub2}, timeout=5)
    assert "Upgrade Denied" in denied.text


def test_allow_upgrade_by_username(sandbox, client, new_subscription):
    new_subscription(username="janedoe1")
    assert client.allow_upgrade("0000", username="janedoe1").succeeded
    refused = client.allow_upgrade("0000", username="nobody")
    assert refused.failed and refused.code == -2


def test_the_upgrade_window_is_thirty_minutes(sandbox, client, new_subscription):
    import requests

    sub = new_subscription()
    assert client.allow_upgrade("0000", subscription_id=sub).succeeded
    sandbox.sandbox.advance_clock({"advance_seconds": 31 * 60})
    form = client.upgrade_form("0000", subscription_id=sub, method="backend_post")
    assert "Upgrade Denied" in requests.post(form.url, data=form.fields, timeout=5).text
    assert sandbox.subscription(sub)["status"] == "active"


def test_the_enc_upgrade_form_end_to_end(sandbox, client, receiver, new_subscription):
    import re

    import requests

    sub = new_subscription()
    form = client.upgrade_form("0000", subscription_id=sub)
    assert set(form.fields) == {"clientAccnum", "clientSubacc", "enc"}
    page = requests.post(form.url, data=form.fields, timeout=5)
    assert "Upgrade Approved" in page.text
    new = re.search(r'<p id="subscriptionId">(\d+)</p>', page.text).group(1)
    assert sandbox.subscription(new)["upgraded_from"] == sub
    assert sandbox.wait_for_webhooks()
    assert receiver.of_type("UpgradeSuccess")[0].fields["source"] == "FORM"


def test_an_enc_made_with_another_key_is_denied(sandbox, client_factory, new_subscription):
    import requests
    from billops.ccbill.upgrade_encryption import EncRecipe, derive_key, encrypt

    sub = new_subscription()
    wrong = encrypt(derive_key("f" * 48), f"subscriptionId={sub}", EncRecipe())
    page = requests.post(sandbox.upgrade_url, data={"clientAccnum": "900100", "clientSubacc": "0000", "enc": wrong},
                         timeout=5)
    assert "Upgrade Denied" in page.text
    assert sandbox.subscription(sub)["status"] == "active"


def test_several_upgrades_carry_the_three_variables_in_enc_and_posts(sandbox_factory, client_factory, new_subscription):
    from dataclasses import replace
    from decimal import Decimal as D

    import requests
    from billops_local.ccbill_sandbox import DEFAULT_ACCOUNTS, ConfiguredUpgrade

    main = DEFAULT_ACCOUNTS[0]
    accounts = (replace(main, upgrades=(*main.upgrades, ConfiguredUpgrade(
        "silver", "900100", "0001", "0014", D("9.95"), 30, D("9.95"), 30))), DEFAULT_ACCOUNTS[1])
    handle = sandbox_factory(accounts=accounts)
    client = client_factory(handle, accounts=accounts)
    sub = new_subscription(handle)
    assert client.allow_upgrade("0000", subscription_id=sub, upgrade="silver").succeeded
    call = handle.calls()[-1]
    assert call["params"]["upgradeTypeId"] == "0014"
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="silver")
    assert form.fields["upgradeTypeId"] == "0014"
    assert "Upgrade Approved" in requests.post(form.url, data=form.fields, timeout=5).text
    upgraded = handle.subscription(sub)["upgraded_to"]
    assert handle.subscription(upgraded)["subscription_type_id"] == "0014"
