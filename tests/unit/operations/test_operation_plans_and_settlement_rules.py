"""What each operation plans to send, and the settlement rules' decisions - no network, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from billops.ccbill.client import CCBillClient
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentials, StaticCredentials
from billops.ccbill.subscription_facts import SubscriptionFacts, SubscriptionState
from billops.operations.operation_actions import ActionRefused, plan_for
from billops.operations.operation_context import OperationContext
from billops.operations.operation_records import iso
from billops.operations.operation_settings import OperationSettings
from billops.operations.settlement import Sale, Settler, sale_from_delivery, sale_from_subscription
from billops_local.ccbill_sandbox import client_subaccounts_setting, client_upgrade_catalogue_setting

SUB = "0126326702000000001"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ACTIVE = SubscriptionFacts(SUB, SubscriptionState.ACTIVE, True, False, Decimal("19.95"), client_subacc="0000")


@pytest.fixture
def client() -> CCBillClient:
    unreachable = "http://127.0.0.1:9"
    return CCBillClient(
        CCBillClientSettings(environment="local", sms_url=unreachable + "/utils/subscriptionManagement.cgi",
                             billing_api_url=unreachable + "/jpost/billingApi.cgi",
                             upgrade_url=unreachable + "/jpost/upgradeSubscription.cgi",
                             subaccounts=client_subaccounts_setting(),
                             upgrade_catalogue=client_upgrade_catalogue_setting()),
        StaticCredentials(CCBillCredentials("900100", "user", "password")),
    )


def _record(kind: str, parameters: dict | None = None, **extra) -> dict:
    return {"operation_id": "op_x", "operation_type": kind, "subscription_id": SUB, "parameters": parameters or {},
            "attempt": 0, **extra}


def test_a_discount_amount_becomes_a_new_price_when_the_price_is_known(client):
    plan = plan_for(_record("discount", {"discount_amount": "2.00"}), client, ACTIVE, Decimal("19.95"))
    assert plan.details["param"] == "newRecurringPrice" and plan.details["value"] == "17.95"
    assert plan.details["converted_from_amount"] is True and plan.resend_harmless is True
    assert not plan.charges_money


def test_a_discount_amount_stays_an_amount_when_the_price_is_unknown(client):
    plan = plan_for(_record("discount", {"discount_amount": "2.00"}), client, SubscriptionFacts(SUB), None)
    assert plan.details["param"] == "discountAmount" and plan.details["value"] == "2.00"
    assert plan.resend_harmless is False


def test_a_later_attempt_sends_the_stored_plan_unchanged(client):
    stored = {"param": "newRecurringPrice", "value": "17.95", "action": "discountSubscription"}
    # The price the first attempt may have set is now the "current" one: the rules are not applied again.
    plan = plan_for(_record("discount", {"discount_amount": "2.00"}, plan=stored), client,
                    SubscriptionFacts(SUB, SubscriptionState.ACTIVE, True, recurring_price=Decimal("17.95")),
                    Decimal("17.95"))
    assert plan.details["value"] == "17.95" and plan.details["param"] == "newRecurringPrice"


@pytest.mark.parametrize(("parameters", "facts", "code", "param"), [
    ({"discount_amount": "0.00"}, ACTIVE, -19, "discountAmount"),
    ({"discount_amount": "15.00"}, ACTIVE, -18, "discountAmount"),
    ({"new_recurring_price": "20.00"}, ACTIVE, -20, "newRecurringPrice"),
    ({"discount_amount": "1.00"}, SubscriptionFacts(SUB, SubscriptionState.CANCELLED, True), -22, "subscriptionId"),
    ({"new_recurring_price": "9.00"}, SubscriptionFacts(SUB, SubscriptionState.ACTIVE, False), -2,
     "newRecurringPrice"),
    ({"discount_amount": "0.10"}, SubscriptionFacts(SUB, SubscriptionState.ACTIVE, True,
                                                    recurring_price=Decimal("4.95")), -11, "subscriptionId"),
    ({"new_recurring_price": "16.00"}, SubscriptionFacts(SUB, SubscriptionState.ACTIVE, True,
                                                         recurring_price=Decimal("19.95"),
                                                         cancel_discount_price=Decimal("15.00")), -21,
     "newRecurringPrice"),
])
def test_discount_rules_refuse_naming_ccbills_code(client, parameters, facts, code, param):
    with pytest.raises(ActionRefused) as refused:
        plan_for(_record("discount", parameters), client, facts, facts.recurring_price)
    assert refused.value.code == code and refused.value.param == param


def test_upgrade_plans_name_the_destination(client):
    plan = plan_for(_record("upgrade", {"method": "charge_by_previous_transaction", "upgrade": "gold"}), client,
                    ACTIVE, None)
    assert plan.charges_money and not plan.resend_harmless
    assert (plan.details["new_client_accnum"], plan.details["new_client_subacc"]) == ("900100", "0001")
    with pytest.raises(ActionRefused) as refused:
        plan_for(_record("upgrade", {"method": "charge_by_previous_transaction", "upgrade": "diamond"}), client,
                 ACTIVE, None)
    assert refused.value.param == "upgrade"
    cross = plan_for(_record("upgrade", {"method": "charge_by_previous_transaction", "upgrade": "platinum"}),
                     client, ACTIVE, None)
    assert (cross.details["new_client_accnum"], cross.details["new_client_subacc"]) == ("900300", "0000")


def test_allow_upgrade_needs_the_original_subaccount(client, monkeypatch):
    monkeypatch.setenv("BILLOPS_UPGRADE_SECURITY", "backend_post")
    plan = plan_for(_record("upgrade", {"method": "allow_upgrade", "upgrade": "gold"}), client, ACTIVE, None)
    assert plan.details == {"action": "allowUpgrade", "client_subacc": "0000", "upgrade": "gold"}
    assert plan.resend_harmless
    with pytest.raises(ActionRefused) as refused:
        plan_for(_record("upgrade", {"method": "allow_upgrade", "upgrade": "gold"}), client, SubscriptionFacts(SUB),
                 None)
    assert refused.value.param == "clientSubacc"
    with pytest.raises(ActionRefused) as refused:  # two upgrades are configured: which one?
        plan_for(_record("upgrade", {"method": "allow_upgrade"}), client, ACTIVE, None)
    assert refused.value.param == "upgrade"


def test_allow_upgrade_is_refused_where_ccbill_would_refuse_it(client, monkeypatch):
    monkeypatch.setenv("BILLOPS_UPGRADE_SECURITY", "auto")
    monkeypatch.setenv("BILLOPS_FIXED_EGRESS_IP", "false")  # no whitelisted address: Security Type encryption
    with pytest.raises(ActionRefused) as refused:
        plan_for(_record("upgrade", {"method": "allow_upgrade", "upgrade": "gold"}), client, ACTIVE, None)
    assert refused.value.param == "method" and "fixed egress IP" in refused.value.message


# --- settlement rules -------------------------------------------------------------------------------------------


def test_cancel_verdicts_follow_ccbills_status():
    verdict = Settler._cancel_verdict
    assert verdict({}, {"subscriptionStatus": "1", "recurringSubscription": "1"})[0] == "succeeded"
    assert verdict({}, {"subscriptionStatus": "0", "recurringSubscription": "1"})[0] == "succeeded"
    assert verdict({}, {"subscriptionStatus": "2", "recurringSubscription": "1"})[0] == "retry"
    assert verdict({}, {"subscriptionStatus": "1", "recurringSubscription": "0"})[0] == "escalate"
    assert verdict({}, {})[0] == "escalate"


def test_extend_verdicts_compare_with_the_date_read_before_the_call():
    record = {"parameters": {"days": 7}, "pre_call_view": {"nextBillingDate": "20260331", "expirationDate": ""}}
    verdict = Settler._extend_verdict
    assert verdict(record, {"nextBillingDate": "20260407"})[0] == "succeeded"
    assert verdict(record, {"nextBillingDate": "20260331"})[0] == "retry"
    assert verdict(record, {"nextBillingDate": "20260430"})[0] == "escalate"  # a renewal in between
    assert verdict(record, {"nextBillingDate": ""})[0] == "escalate"
    cancelled = {"parameters": {"days": 3}, "pre_call_view": {"nextBillingDate": "",
                                                              "expirationDate": "20260331120000"}}
    assert verdict(cancelled, {"expirationDate": "20260403120000"})[0] == "succeeded"
    assert verdict({"parameters": {"days": 3}, "pre_call_view": {}}, {"nextBillingDate": "20260403"})[0] == "escalate"


def _delivery(event_type: str = "UpSaleSuccess", **fields) -> dict:
    return {"pk": f"{event_type}#txn#0126000000000000009", "record_type": "delivery", "event_type": event_type,
            "subscription_id": "0126000000000000009", "occurred_at": "2026-03-01T12:00:05Z",
            "received_at": "2026-03-01T12:00:06.000000Z",
            "fields": {"originalSubscriptionId": SUB, "clientAccnum": "900100", "clientSubacc": "0001", **fields}}


def test_sales_are_read_from_deliveries_and_subscription_records():
    sale = sale_from_delivery(_delivery())
    assert sale is not None and sale.original_subscription_id == SUB and sale.source == "webhook"
    assert sale_from_delivery(_delivery("NewSaleSuccess")) is None
    assert sale_from_delivery({**_delivery(), "fields": {"clientAccnum": "900100"}}) is None
    assert sale_from_delivery({**_delivery(), "record_type": "quarantine"}) is None
    record = {"subscription_id": "0126000000000000009", "original_subscription_id": SUB,
              "signed_up_at": "2026-03-01T12:00:05Z", "created_at": "2026-03-01T12:00:06.000000Z",
              "client_accnum": "900100", "client_subacc": "0001",
              "history": [{"event_type": "UpSaleSuccess", "fields": {}}]}
    sale = sale_from_subscription(record)
    assert sale is not None and sale.event_type == "UpSaleSuccess" and sale.source == "subscriptions_index"


def _upgrade_record(status: str = "unknown", method: str = "charge_by_previous_transaction",
                    started: datetime = NOW, **extra) -> dict:
    return {"operation_id": "op_u", "operation_type": "upgrade", "subscription_id": SUB, "status": status,
            "parameters": {"method": method}, "call_started_at": iso(started),
            "plan": {"new_client_accnum": "900100", "new_client_subacc": "0001"}, **extra}


def _sale(event_type: str = "UpSaleSuccess", subacc: str = "0001", *moments: datetime) -> Sale:
    return Sale("0126000000000000009", SUB, event_type, "900100", subacc, moments or (NOW + timedelta(seconds=5),),
                "webhook")


@pytest.fixture
def settler() -> Settler:
    return Settler(OperationContext(None, None, lambda: None, None, OperationSettings(evidence_tolerance_seconds=300)))


def test_a_sale_matches_the_upgrade_it_can_be_the_result_of(settler):
    assert settler._matches(_upgrade_record(), _sale())
    assert settler._matches(_upgrade_record("in_progress"), _sale("UpgradeSuccess"))
    assert not settler._matches(_upgrade_record(), _sale(subacc="0002"))  # another destination
    assert not settler._matches(_upgrade_record("succeeded"), _sale())
    assert not settler._matches(_upgrade_record(new_subscription_id="0126000000000000001"), _sale())
    assert not settler._matches({**_upgrade_record(), "operation_type": "discount"}, _sale())
    assert not settler._matches({**_upgrade_record(), "call_started_at": None}, _sale())


def test_a_sale_older_than_the_call_is_not_evidence_unless_our_clock_says_otherwise(settler):
    long_before = NOW - timedelta(hours=1)
    assert not settler._matches(_upgrade_record(), _sale("UpSaleSuccess", "0001", long_before))
    assert settler._matches(_upgrade_record(), _sale("UpSaleSuccess", "0001", NOW - timedelta(minutes=4)))
    # CCBill's zone-less timestamp may read 7 hours early; our receipt time still proves it came after the call.
    assert settler._matches(_upgrade_record(), _sale("UpSaleSuccess", "0001", NOW - timedelta(hours=7),
                                                     NOW + timedelta(seconds=3)))


def test_allow_upgrade_operations_are_settled_only_by_upgrade_success(settler):
    waiting = _upgrade_record("awaiting_consumer", "allow_upgrade")
    assert settler._matches(waiting, _sale("UpgradeSuccess"))
    assert not settler._matches(waiting, _sale("UpSaleSuccess"))
    expired = _upgrade_record("failed", "allow_upgrade", failure_reason="upgrade_window_expired")
    assert settler._matches(expired, _sale("UpgradeSuccess"))
    assert not settler._matches(_upgrade_record("in_progress", "allow_upgrade"), _sale("UpgradeSuccess"))
    denied = _upgrade_record("failed", "allow_upgrade", failure_reason="upgrade_denied")
    assert not settler._matches(denied, _sale("UpgradeSuccess"))
