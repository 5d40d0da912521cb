"""The sandbox answers CCBill's documented codes for CCBill's documented rules (raw HTTP, no client validation)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests
from billops.ccbill.responses import BodyKind, parse_body
from billops_local.ccbill_sandbox import (
    DEFAULT_ACCOUNTS,
    DEFAULT_DATALINK_PASSWORD,
    DEFAULT_DATALINK_USERNAME,
    DataLinkUser,
)

AUTH = {"clientAccnum": "900100", "username": DEFAULT_DATALINK_USERNAME, "password": DEFAULT_DATALINK_PASSWORD}


def sms(sandbox, **params):
    return parse_body(requests.post(sandbox.sms_url, data={**AUTH, **params}, timeout=5).content)


def billing(sandbox, **params):
    return parse_body(requests.post(sandbox.billing_api_url, data={**AUTH, **params}, timeout=5).content)


def code(parsed):
    assert parsed.kind is BodyKind.CODE, parsed
    return parsed.code


def test_get_works_like_post(sandbox, new_subscription):
    sub = new_subscription()
    response = requests.get(sandbox.sms_url, params={**AUTH, "action": "viewSubscriptionStatus",
                                                     "subscriptionId": sub, "returnXML": "1"}, timeout=5)
    assert response.text.startswith("<?xml version='1.0' standalone='yes'?>")
    assert parse_body(response.content).fields["subscriptionStatus"] == "2"


@pytest.mark.parametrize("missing", ["clientAccnum", "username", "password"])
def test_missing_authentication_is_minus_1(sandbox, new_subscription, missing):
    sub = new_subscription()
    params = {**AUTH, "action": "cancelSubscription", "subscriptionId": sub}
    del params[missing]
    assert code(parse_body(requests.post(sandbox.sms_url, data=params, timeout=5).content)) == -1


def test_an_unknown_account_is_minus_1(sandbox):
    assert code(sms(sandbox, clientAccnum="999999", action="cancelSubscription", subscriptionId="1")) == -1


def test_a_wrong_password_is_minus_7_and_the_third_failure_locks_the_account_for_an_hour(sandbox, new_subscription):
    sub = new_subscription()
    for _ in range(3):
        assert code(sms(sandbox, password="wrong", action="cancelSubscription", subscriptionId=sub)) == -7
    # Even the right password is refused now.
    assert code(sms(sandbox, action="viewSubscriptionStatus", subscriptionId=sub)) == -12
    sandbox.sandbox.advance_clock({"advance_seconds": 3601})
    assert sms(sandbox, action="viewSubscriptionStatus", subscriptionId=sub).kind is BodyKind.DOCUMENT
    assert sandbox.subscription(sub)["status"] == "active"


def test_unknown_action_is_minus_6(sandbox):
    assert code(sms(sandbox, action="deleteEverything", subscriptionId="1")) == -6
    assert code(billing(sandbox, action="cancelSubscription", subscriptionId="1")) == -6


@pytest.mark.parametrize("subscription_id,expected", [("", -5), ("abc", -2), ("0126015401999999999", -3)])
def test_subscription_id_problems(sandbox, subscription_id, expected):
    assert code(sms(sandbox, action="cancelSubscription", subscriptionId=subscription_id)) == expected


def test_a_subscription_of_another_account_or_subaccount_is_minus_4(sandbox, new_subscription):
    other = new_subscription(client_accnum="900200")
    assert code(sms(sandbox, action="cancelSubscription", subscriptionId=other)) == -4
    in_0001 = new_subscription(client_subacc="0001")
    assert code(sms(sandbox, action="cancelSubscription", subscriptionId=in_0001, usingSubacc="0000")) == -4
    assert code(sms(sandbox, action="cancelSubscription", subscriptionId=in_0001, usingSubacc="0001")) == 1


def test_ip_permissions_and_datalink_setup(sandbox_factory, new_subscription):
    main = DEFAULT_ACCOUNTS[0]
    accounts = (
        replace(main, datalink_users=(
            DataLinkUser("ipbound", "password-1", allowed_ips=("10.0.0.0/8",)),
            DataLinkUser("readonly", "password-2", permissions=frozenset({"viewSubscriptionStatus"})),
            DataLinkUser("subuser", "password-3", subacc="0001"),
        )),
        replace(DEFAULT_ACCOUNTS[1], datalink_enabled=False),
    )
    handle = sandbox_factory(accounts=accounts)
    sub = new_subscription(handle)
    base = {"clientAccnum": "900100", "action": "cancelSubscription", "subscriptionId": sub}

    def post(**params):
        return code(parse_body(requests.post(handle.sms_url, data={**base, **params}, timeout=5).content))

    assert post(username="ipbound", password="password-1") == -8
    assert post(username="readonly", password="password-2") == -9
    assert post(username="subuser", password="password-3") == -1  # a bound user must send its clientSubacc
    assert post(username="subuser", password="password-3", clientSubacc="0001") == -4  # sub is in 0000
    assert post(clientAccnum="900200", username=DEFAULT_DATALINK_USERNAME, password=DEFAULT_DATALINK_PASSWORD) == -10


def test_cancel_rules(sandbox, new_subscription):
    single = new_subscription(recurring_price=None, recurring_period=None, rebills=None)
    assert code(sms(sandbox, action="cancelSubscription", subscriptionId=single)) == -2
    sub = new_subscription()
    sandbox.sandbox.subscription_operation(sub, "expire", {})
    assert code(sms(sandbox, action="cancelSubscription", subscriptionId=sub)) == 0


class TestDiscountRules:
    def discount(self, sandbox, sub, **params):
        return code(sms(sandbox, action="discountSubscription", subscriptionId=sub, **params))

    def test_exactly_one_parameter(self, sandbox, new_subscription):
        sub = new_subscription()
        assert self.discount(sandbox, sub) == -5
        assert self.discount(sandbox, sub, discountAmount="1.00", newRecurringPrice="9.95") == -5

    def test_non_numeric_is_minus_7(self, sandbox, new_subscription):
        assert self.discount(sandbox, new_subscription(), discountAmount="$1") == -7

    def test_minus_19(self, sandbox, new_subscription):
        assert self.discount(sandbox, new_subscription(), discountAmount="0.00") == -19

    def test_minus_18(self, sandbox, new_subscription):
        sub = new_subscription()
        assert self.discount(sandbox, sub, discountAmount="15.00") == -18
        assert self.discount(sandbox, sub, newRecurringPrice="4.99") == -18
        assert self.discount(sandbox, sub, newRecurringPrice="5.00") == 1

    def test_minus_20(self, sandbox, new_subscription):
        assert self.discount(sandbox, new_subscription(), newRecurringPrice="29.95") == -20

    def test_minus_21(self, sandbox, new_subscription):
        sub = new_subscription(cancel_discount_price="14.95")
        assert self.discount(sandbox, sub, newRecurringPrice="14.95") == -21
        assert self.discount(sandbox, sub, newRecurringPrice="12.95") == 1

    def test_minus_22_cancelled_or_expired(self, sandbox, new_subscription):
        sub = new_subscription()
        sandbox.sandbox.subscription_operation(sub, "cancel", {})
        assert self.discount(sandbox, sub, discountAmount="1.00") == -22

    def test_minus_2_new_price_on_a_single_charge(self, sandbox, new_subscription):
        single = new_subscription(recurring_price=None, recurring_period=None, rebills=None)
        assert self.discount(sandbox, single, newRecurringPrice="9.95") == -2
        assert self.discount(sandbox, single, discountAmount="1.00") == -22

    def test_minus_11(self, sandbox, new_subscription):
        assert self.discount(sandbox, new_subscription(recurring_price="4.95"), discountAmount="0.50") == -11

    def test_a_trial_can_be_discounted(self, sandbox, new_subscription):
        trial = new_subscription(initial_price="1.00", initial_period=3)
        assert self.discount(sandbox, trial, discountAmount="1.00") == 1


def test_extend_rules(sandbox, new_subscription):
    sub = new_subscription()
    assert code(sms(sandbox, action="extendSubscription", subscriptionId=sub)) == -5
    assert code(sms(sandbox, action="extendSubscription", subscriptionId=sub, extendLength="a week")) == -7
    sandbox.sandbox.subscription_operation(sub, "expire", {})
    assert code(sms(sandbox, action="extendSubscription", subscriptionId=sub, extendLength="7")) == 0


class TestChargeByPreviousTransactionIdRules:
    def cbpt(self, sandbox, sub, **overrides):
        params = {"action": "chargeByPreviousTransactionId", "subscriptionId": sub, "newClientAccnum": "900100",
                  "newClientSubacc": "0001", "initialPrice": "19.95", "initialPeriod": "30",
                  "recurringPrice": "19.95", "recurringPeriod": "30", "rebills": "99", "currencyCode": "840"}
        params.update(overrides)
        return billing(sandbox, **{k: v for k, v in params.items() if v is not None})

    @pytest.mark.parametrize("overrides", [
        {"initialPrice": "19,95"}, {"initialPrice": "$19.95"}, {"recurringPrice": "abc"}, {"initialPeriod": "30d"},
        {"rebills": "many"}, {"currencyCode": "999"}, {"initialPrice": "150.00"}, {"initialPrice": "1.00"},
        {"recurringPeriod": "45"}, {"initialPeriod": "1"}, {"newClientSubacc": "0009"}, {"newClientAccnum": None},
        {"subscriptionId": None},
    ])
    def test_minus_7_for_every_documented_cause(self, sandbox, new_subscription, overrides):
        sub = new_subscription()
        assert code(self.cbpt(sandbox, sub, **overrides)) == -7
        assert len(sandbox.ledger()) == 1  # only the original sale: nothing was charged

    def test_minus_7_password_too_short_on_a_cross_account_upgrade(self, sandbox, new_subscription):
        short_username = new_subscription(username="shorty")
        assert code(self.cbpt(sandbox, short_username, newClientAccnum="900200", newClientSubacc="0000")) == -7
        short_password = new_subscription(username="longenough01", password="pw12345")
        assert code(self.cbpt(sandbox, short_password, newClientAccnum="900200", newClientSubacc="0000")) == -7
        fine = new_subscription(username="longenough02", password="longpassword")
        parsed = self.cbpt(sandbox, fine, newClientAccnum="900200", newClientSubacc="0000")
        assert parsed.fields["approved"] == "1"

    def test_approved_in_csv(self, sandbox, new_subscription):
        parsed = self.cbpt(sandbox, new_subscription())
        assert parsed.body_format == "csv" and parsed.fields["approved"] == "1"
        assert parsed.fields["subscriptionId"].isdigit()


def test_allow_upgrade_refusals(post_sandbox, new_subscription):
    sandbox = post_sandbox
    sub = new_subscription(sandbox)
    gold = {"upgradeClientAccnum": "900100", "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}

    def allow(**params):
        data = {"clientAccnum": "900100", "clientSubacc": "0000", "action": "allowUpgrade", **gold, **params}
        return requests.post(sandbox.upgrade_url, data=data, timeout=5).text.strip()

    assert allow(subscriptionId=sub) == "1"
    # Two upgrades are configured: the variables are required (in either of the guide's spellings).
    assert requests.post(sandbox.upgrade_url, data={"clientAccnum": "900100", "clientSubacc": "0000",
                                                    "action": "allowUpgrade", "subscriptionId": sub},
                         timeout=5).text.strip() == "-1"
    assert requests.post(sandbox.upgrade_url, data={
        "clientAccnum": "900100", "clientSubacc": "0000", "action": "allowUpgrade", "subscriptionId": sub,
        "upgradeclientAccnum": "900300", "upgradeclientSubacc": "0000", "upgradeTypeID": "0020"},
        timeout=5).text.strip() == "1"
    assert allow() == "-1"
    assert allow(subscriptionId="abc") == "-3"
    assert allow(subscriptionId="0126015401999999999") == "-3"
    assert allow(clientAccnum="900200", subscriptionId=sub) == "0"  # no upgrade configured there
    sandbox.sandbox.subscription_operation(sub, "expire", {})
    assert allow(subscriptionId=sub) == "-2"
