"""Every action of the client against the sandbox, over real HTTP, in both of CCBill's formats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billops.ccbill.subscription_facts import SubscriptionState, facts_from_status, parse_ccbill_datetime
from billops_local.ccbill_sandbox import DEFAULT_ACCOUNTS


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


def test_allow_upgrade_then_the_consumer_form(post_sandbox, client_factory, new_subscription):
    import requests

    client = client_factory(post_sandbox)
    sub = new_subscription(post_sandbox)
    assert client.allow_upgrade("0000", subscription_id=sub, upgrade="gold").succeeded
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="gold", method="backend_post")
    # 900100 has two upgrades configured: the three variables are required, and sent.
    assert (form.fields["upgradeClientAccnum"], form.fields["upgradeClientSubacc"],
            form.fields["upgradeTypeId"]) == ("900100", "0001", "0015")
    without = {k: v for k, v in form.fields.items() if not k.startswith("upgrade")}
    assert "Upgrade Denied" in requests.post(form.url, data=without, timeout=5).text
    page = requests.post(form.url, data={**form.fields, "submit": "Upgrade Subscription"}, timeout=5)
    assert "Upgrade Approved" in page.text
    assert post_sandbox.subscription(sub)["status"] == "expired"
    # The allowance is used up.
    sub2 = new_subscription(post_sandbox)
    denied = requests.post(form.url, data={**form.fields, "subscriptionId": sub2}, timeout=5)
    assert "Upgrade Denied" in denied.text


def test_one_security_type_per_account(sandbox, post_sandbox, client_factory, new_subscription):
    import requests

    # Encryption account: allowUpgrade is "Authorization Denied" (0).
    sub = new_subscription()
    refused = client_factory().allow_upgrade("0000", subscription_id=sub, upgrade="gold")
    assert refused.failed and refused.code == 0
    # Backend-post account: any enc is refused, even a correct one.
    client = client_factory(post_sandbox)
    other = new_subscription(post_sandbox)
    charges = len(post_sandbox.ledger())
    form = client.upgrade_form("0000", subscription_id=other, upgrade="gold")
    page = requests.post(form.url, data=form.fields, timeout=5)
    assert "Upgrade Denied" in page.text and "Backend HTTPS Post" in page.text
    assert post_sandbox.subscription(other)["status"] == "active" and len(post_sandbox.ledger()) == charges


def test_allow_upgrade_only_from_the_whitelisted_address(sandbox_factory, client_factory, new_subscription):
    from billops_local.ccbill_sandbox import with_upgrade_security

    handle = sandbox_factory(accounts=with_upgrade_security(DEFAULT_ACCOUNTS, "backend_post", ("203.0.113.7/32",)))
    sub = new_subscription(handle)
    refused = client_factory(handle).allow_upgrade("0000", subscription_id=sub, upgrade="gold")
    assert refused.failed and refused.code == 0


def test_allow_upgrade_by_username(post_sandbox, client_factory, new_subscription):
    client = client_factory(post_sandbox)
    new_subscription(post_sandbox, username="janedoe1")
    assert client.allow_upgrade("0000", username="janedoe1", upgrade="gold").succeeded
    refused = client.allow_upgrade("0000", username="nobody", upgrade="gold")
    assert refused.failed and refused.code == -2


def test_the_upgrade_window_is_thirty_minutes(post_sandbox, client_factory, new_subscription):
    import requests

    client = client_factory(post_sandbox)
    sub = new_subscription(post_sandbox)
    assert client.allow_upgrade("0000", subscription_id=sub, upgrade="gold").succeeded
    post_sandbox.sandbox.advance_clock({"advance_seconds": 31 * 60})
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="gold", method="backend_post")
    assert "Upgrade Denied" in requests.post(form.url, data=form.fields, timeout=5).text
    assert post_sandbox.subscription(sub)["status"] == "active"


def test_the_enc_upgrade_form_end_to_end(sandbox, client, receiver, new_subscription):
    import re

    import requests

    sub = new_subscription()
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="gold")
    assert set(form.fields) == {"clientAccnum", "clientSubacc", "enc", "upgradeClientAccnum", "upgradeClientSubacc",
                                "upgradeTypeId"}
    page = requests.post(form.url, data={**form.fields, "submit": "Upgrade Subscription"}, timeout=5)
    assert "Upgrade Approved" in page.text
    new = re.search(r'<p id="subscriptionId">(\d+)</p>', page.text).group(1)
    assert sandbox.subscription(new)["upgraded_from"] == sub
    assert sandbox.wait_for_webhooks()
    assert receiver.of_type("UpgradeSuccess")[0].fields["source"] == "FORM"


def test_an_enc_upgrade_into_another_account(sandbox, client, receiver, new_subscription):
    import requests

    sub = new_subscription()
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="platinum")
    assert "Upgrade Approved" in requests.post(form.url, data=form.fields, timeout=5).text
    new = sandbox.subscription(sub)["upgraded_to"]
    assert (sandbox.subscription(new)["client_accnum"], sandbox.subscription(new)["client_subacc"]) == (
        "900300", "0000")
    assert sandbox.wait_for_webhooks()
    upgrade = receiver.of_type("UpgradeSuccess")[0]
    assert upgrade.query["clientAccnum"] == "900300" and upgrade.fields["originalClientAccnum"] == "900100"


def test_an_enc_is_refused_unless_its_plaintext_is_the_identity_alone(sandbox, new_subscription):
    import requests
    from billops.ccbill.upgrade_encryption import EncRecipe, encrypt

    key = sandbox.sandbox.rules.upgrade_key  # the account's key, as CCBill holds it
    sub, other = new_subscription(), new_subscription()
    variables = {"upgradeClientAccnum": "900100", "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}
    for plaintext in (f"subscriptionId={sub}&upgradeClientAccnum=900100&upgradeClientSubacc=0001&upgradeTypeId=0015",
                      f"subscriptionId={sub}&custom=42", f"clientAccnum=900100&subscriptionId={sub}", "custom=1"):
        page = requests.post(sandbox.upgrade_url, data={"clientAccnum": "900100", "clientSubacc": "0000",
                                                        "enc": encrypt(key, plaintext, EncRecipe()), **variables},
                             timeout=5)
        assert "Upgrade Denied" in page.text and "nothing else" in page.text, plaintext
    # The identity is the enc's alone: a subscriptionId posted beside it changes nothing.
    page = requests.post(sandbox.upgrade_url, data={"clientAccnum": "900100", "clientSubacc": "0000",
                                                    "enc": encrypt(key, f"subscriptionId={sub}", EncRecipe()),
                                                    "subscriptionId": other, **variables}, timeout=5)
    assert "Upgrade Approved" in page.text
    assert sandbox.subscription(sub)["status"] == "expired" and sandbox.subscription(other)["status"] == "active"


def test_with_several_upgrades_an_enc_without_the_upgrade_variables_is_refused(sandbox, client, new_subscription):
    import requests

    sub = new_subscription()
    charges = len(sandbox.ledger())
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="gold")
    bare = {k: v for k, v in form.fields.items() if not k.startswith("upgrade")}
    assert "Upgrade Denied" in requests.post(form.url, data=bare, timeout=5).text
    assert sandbox.subscription(sub)["status"] == "active" and len(sandbox.ledger()) == charges


def test_an_enc_made_with_another_key_is_denied(sandbox, client_factory, new_subscription):
    import requests
    from billops.ccbill.upgrade_encryption import EncRecipe, derive_key, encrypt

    sub = new_subscription()
    wrong = encrypt(derive_key("f" * 48), f"subscriptionId={sub}", EncRecipe())
    page = requests.post(sandbox.upgrade_url, data={"clientAccnum": "900100", "clientSubacc": "0000", "enc": wrong,
                                                    "upgradeClientAccnum": "900100", "upgradeClientSubacc": "0001",
                                                    "upgradeTypeId": "0015"}, timeout=5)
    assert "Upgrade Denied" in page.text
    assert sandbox.subscription(sub)["status"] == "active"


def test_several_upgrades_carry_the_three_variables_beside_enc_and_in_posts(sandbox_factory, client_factory,
                                                                           new_subscription):
    from dataclasses import replace
    from decimal import Decimal as D

    import requests
    from billops_local.ccbill_sandbox import DEFAULT_ACCOUNTS, ConfiguredUpgrade, with_upgrade_security

    main = DEFAULT_ACCOUNTS[0]
    accounts = (replace(main, upgrades=(*main.upgrades, ConfiguredUpgrade(
        "silver", "900100", "0001", "0014", D("9.95"), 30, D("9.95"), 30))), *DEFAULT_ACCOUNTS[1:])
    handle = sandbox_factory(accounts=accounts)
    client = client_factory(handle, accounts=accounts)
    sub = new_subscription(handle)
    form = client.upgrade_form("0000", subscription_id=sub, upgrade="silver")
    assert form.fields["upgradeTypeId"] == "0014"
    assert "Upgrade Approved" in requests.post(form.url, data=form.fields, timeout=5).text
    upgraded = handle.subscription(sub)["upgraded_to"]
    assert handle.subscription(upgraded)["subscription_type_id"] == "0014"
    # The backend post, in the spelling of the guide's Option 2 tables (upgradeclientAccnum, upgradeTypeID).
    post_accounts = with_upgrade_security(accounts, "backend_post", ("127.0.0.1/32",))
    post_handle = sandbox_factory(accounts=post_accounts)
    post_client = client_factory(post_handle, accounts=post_accounts, upgrade_variable_spelling="tables")
    other = new_subscription(post_handle)
    assert post_client.allow_upgrade("0000", subscription_id=other, upgrade="silver").succeeded
    assert post_handle.calls()[-1]["params"]["upgradeTypeID"] == "0014"
    step_two = post_client.upgrade_form("0000", subscription_id=other, upgrade="silver", method="backend_post")
    assert "Upgrade Approved" in requests.post(step_two.url, data=step_two.fields, timeout=5).text


def test_a_test_link_opened_in_a_browser_shows_the_form_and_charges_nothing(sandbox, client, new_subscription):
    """billops ccbill check's test link (billops.ccbill.upgrade_test_link): a GET shows CCBill's upgrade form, and
    only the consumer's POST of that form upgrades."""
    import requests
    from billops.ccbill.upgrade_test_link import build_test_upgrade_link, upgrade_key_check

    sub = new_subscription()
    charges = len(sandbox.ledger())
    link = build_test_upgrade_link(client, "0000", subscription_id=sub, upgrade="gold")
    assert link.url.startswith(sandbox.upgrade_url + "?") and "permanent credential" in link.warning
    assert link.fields["submit"] == "Upgrade Subscription" and "enc=" in link.url
    page = requests.get(link.url, timeout=5)
    assert "Upgrade Your Subscription" in page.text and "Denied" not in page.text
    assert len(sandbox.ledger()) == charges and sandbox.subscription(sub)["status"] == "active"
    assert "Upgrade Approved" in requests.post(sandbox.upgrade_url, data=link.fields, timeout=5).text
    verdict, reason = upgrade_key_check(client._encryptor)
    assert verdict == "pass" and "hexmod" in reason and UPGRADE_KEY_TEXT not in reason


UPGRADE_KEY_TEXT = "0123456789abcdeffedcba987654321089abcdef01234567"
