"""Each operation type end to end: message on the FIFO queue -> worker -> the CCBill sandbox -> record and events."""

from __future__ import annotations

import pytest


def _message(kind: str, subscription_id: str, key: str, **parameters) -> dict:
    message = {"operation_type": kind, "subscription_id": subscription_id, "idempotency_key": key}
    if parameters or kind in ("discount", "extend", "upgrade"):
        message["parameters"] = parameters
    return message


def test_discount_end_to_end_lowers_the_recurring_price_once(ops):
    subscription_id = ops.new_subscription()
    ops.send(_message("discount", subscription_id, "discount-1", discount_amount="2.00"))
    assert ops.work() == [{"batchItemFailures": []}]

    assert ops.sandbox.subscription(subscription_id)["recurring_price"] == "17.95"
    record = ops.operation("discount-1")
    assert record["status"] == "succeeded" and record["ccbill"]["code"] == 1
    # The amount was turned into a new price before the first call, so a repeat could not lower it twice.
    assert record["plan"]["param"] == "newRecurringPrice" and record["plan"]["value"] == "17.95"
    assert record["plan"]["requested"] == {"discount_amount": "2.00"}
    [call] = ops.calls("discountSubscription")
    assert call["params"]["newRecurringPrice"] == "17.95" and "discountAmount" not in call["params"]
    assert ops.subscription(subscription_id)["operation_facts"]["recurring_price"] == "17.95"
    [event] = ops.events_of("OperationSucceeded", record["operation_id"])
    assert event["source"] == "billops"
    assert event["detail"]["operation_type"] == "discount" and event["detail"]["ccbill_code"] == 1
    assert event["detail"]["subscription_id"] == subscription_id

    # A second discount starts from the price the first one left (no webhook reports discounts).
    ops.send(_message("discount", subscription_id, "discount-2", discount_amount="2.00"))
    ops.work()
    assert ops.sandbox.subscription(subscription_id)["recurring_price"] == "15.95"
    assert ops.operation("discount-2")["plan"]["current_recurring_price"] == "17.95"


def test_the_projector_keeps_operation_facts_when_it_folds_new_events(ops):
    subscription_id = ops.new_subscription()
    ops.send(_message("discount", subscription_id, "discount-kept", new_recurring_price="16.00"))
    ops.work()
    ops.sandbox.sandbox.subscription_operation(subscription_id, "renew", {})
    ops.deliver_webhooks()
    record = ops.subscription(subscription_id)
    assert record["times_rebilled"] == 1
    assert record["operation_facts"]["recurring_price"] == "16.00"


DISCOUNT_RULES = [
    # (rule, subscription overrides, our record overrides, parameters, param named)
    ("-19", {}, {}, {"discount_amount": "0.00"}, "discountAmount"),
    ("-18", {}, {}, {"discount_amount": "15.00"}, "discountAmount"),
    ("-20", {}, {}, {"new_recurring_price": "25.00"}, "newRecurringPrice"),
    ("-11", {"initial_price": "4.95", "recurring_price": "4.95"}, {}, {"discount_amount": "0.50"}, "subscriptionId"),
    ("-2", {"recurring_price": "0.00", "recurring_period": 0, "rebills": 0}, {}, {"new_recurring_price": "9.95"},
     "newRecurringPrice"),
    ("-21", {"cancel_discount_price": "15.00"}, {"cancel_discount_price": "15.00"}, {"new_recurring_price": "16.00"},
     "newRecurringPrice"),
    ("-22", {}, {"cancelled": True}, {"discount_amount": "1.00"}, "subscriptionId"),
]


@pytest.mark.parametrize(("rule", "sandbox_fields", "known", "parameters", "param"), DISCOUNT_RULES,
                         ids=[rule[0] for rule in DISCOUNT_RULES])
def test_every_discount_rule_is_applied_before_ccbill_is_called(ops, rule, sandbox_fields, known, parameters, param):
    subscription_id = ops.new_subscription(**sandbox_fields)
    if known.get("cancelled"):
        ops.sandbox.sandbox.subscription_operation(subscription_id, "cancel", {})
        ops.deliver_webhooks()
    if known.get("cancel_discount_price"):
        # What an operator recorded of the subscription's existing cancel discount (no webhook carries it).
        from billops.storage.subscriptions_table import SubscriptionsTable

        table = SubscriptionsTable(ops.tables.subscriptions_table, ops.dynamodb)
        item = table.get(subscription_id)
        item["cancel_discount_price"] = known["cancel_discount_price"]
        revision = int(item["revision"])
        item["revision"] = revision + 1
        table.put(item, expected_revision=revision)
    ops.sandbox.sandbox.clear_calls()

    ops.send(_message("discount", subscription_id, f"rule{rule}", **parameters))
    assert ops.work() == [{"batchItemFailures": []}]

    record = ops.operation(f"rule{rule}")
    assert record["status"] == "failed"
    assert record["failure"]["reason"] == "request_invalid"
    assert record["failure"]["param"] == param
    assert record["failure"]["code"] == int(rule)
    assert record["ccbill_called"] is False
    assert ops.calls() == []  # the sandbox's call log: nothing was sent
    [event] = ops.events_of("OperationFailed", record["operation_id"])
    assert event["detail"]["param"] == param and event["detail"]["ccbill_code"] == int(rule)


def test_cancel_end_to_end(ops):
    subscription_id = ops.new_subscription()
    ops.send(_message("cancel", subscription_id, "cancel-1"))
    ops.work()
    assert ops.operation("cancel-1")["status"] == "succeeded"
    assert ops.sandbox.subscription(subscription_id)["status"] == "cancelled"
    ops.deliver_webhooks()
    assert ops.subscription(subscription_id)["status"] == "cancelled"
    changed = [e for e in ops.events_of("SubscriptionChanged") if e["detail"]["subscription_id"] == subscription_id]
    assert changed[-1]["detail"]["status"] == "cancelled" and changed[-1]["detail"]["previous_status"] == "active"


def test_extend_end_to_end_moves_the_next_billing_date(ops):
    subscription_id = ops.new_subscription()
    before = ops.sandbox.subscription(subscription_id)["next_billing_date"]
    ops.send(_message("extend", subscription_id, "extend-1", days=10))
    ops.work()
    record = ops.operation("extend-1")
    assert record["status"] == "succeeded"
    assert record["pre_call_view"]["nextBillingDate"] == before[:10].replace("-", "")
    after = ops.sandbox.subscription(subscription_id)["next_billing_date"]
    from datetime import datetime, timedelta

    assert datetime.fromisoformat(after[:10]) - datetime.fromisoformat(before[:10]) == timedelta(days=10)


def test_refresh_keeps_ccbills_view_on_the_subscription_record(ops):
    subscription_id = ops.new_subscription()
    ops.send(_message("refresh", subscription_id, "refresh-1"))
    ops.work()
    assert ops.operation("refresh-1")["status"] == "succeeded"
    view = ops.subscription(subscription_id)["ccbill_view"]
    assert view["subscriptionStatus"] == "2" and view["operation_id"] == ops.operation("refresh-1")["operation_id"]
    assert ops.subscription(subscription_id)["status"] == "active"  # the fold's status is left alone


def test_upgrade_by_api_from_the_catalogue_charges_once(ops):
    subscription_id = ops.new_subscription()
    ops.send(_message("upgrade", subscription_id, "upgrade-api", method="charge_by_previous_transaction",
                      upgrade="gold"))
    ops.work()
    record = ops.operation("upgrade-api")
    assert record["status"] == "succeeded"
    new_id = record["new_subscription_id"]
    [charge] = [c for c in ops.charges() if c["subscription_id"] == new_id]
    assert charge["amount"] == "19.95" and charge["client_subacc"] == "0001"
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1
    ops.deliver_webhooks()  # UpSaleSuccess: the operation is already settled, nothing changes
    assert ops.operation("upgrade-api")["status"] == "succeeded"
    assert ops.subscription(new_id)["original_subscription_id"] == subscription_id
    [event] = ops.events_of("OperationSucceeded", record["operation_id"])
    assert event["detail"]["new_subscription_id"] == new_id


def test_upgrade_by_api_to_another_subaccount_with_regional_pricing(ops):
    subscription_id = ops.new_subscription()
    ops.send(_message("upgrade", subscription_id, "upgrade-eur", method="charge_by_previous_transaction",
                      new_client_accnum="900100", new_client_subacc="1", initial_price="24.95", initial_period=30,
                      recurring_price="24.95", recurring_period=30, rebills=99, currency_code="EUR"))
    ops.work()
    record = ops.operation("upgrade-eur")
    assert record["status"] == "succeeded", record.get("failure")
    new = ops.sandbox.subscription(record["new_subscription_id"])
    assert new["currency_code"] == "978" and new["client_subacc"] == "0001" and new["initial_price"] == "24.95"
    [call] = ops.calls("chargeByPreviousTransactionId")
    assert call["params"]["currencyCode"] == "978" and call["params"]["newClientSubacc"] == "0001"


def test_upgrade_refused_by_the_destinations_price_range_is_never_sent(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.sandbox.clear_calls()
    ops.send(_message("upgrade", subscription_id, "upgrade-too-dear", method="charge_by_previous_transaction",
                      new_client_accnum="900100", new_client_subacc="0001", initial_price="150.00",
                      initial_period=30))
    ops.work()
    record = ops.operation("upgrade-too-dear")
    assert record["status"] == "failed" and record["failure"]["param"] == "initialPrice"
    assert ops.calls() == []
    assert all(charge["subscription_id"] == subscription_id for charge in ops.charges())


def test_decline_fails_the_upgrade_with_ccbills_decline(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("chargeByPreviousTransactionId", "decline")
    ops.send(_message("upgrade", subscription_id, "upgrade-declined", method="charge_by_previous_transaction",
                      upgrade="gold"))
    ops.work()
    record = ops.operation("upgrade-declined")
    assert record["status"] == "failed" and record["failure"]["reason"] == "ccbill_refused"
    assert record["failure"]["decline_code"] == "24"
    assert [c for c in ops.charges() if c["subscription_id"] != subscription_id] == []


def test_permanent_ccbill_failure_ends_the_operation_with_code_and_meaning(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "code:-4")
    ops.send(_message("cancel", subscription_id, "cancel-refused"))
    ops.work()
    record = ops.operation("cancel-refused")
    assert record["status"] == "failed"
    assert record["failure"]["code"] == -4 and "account" in record["failure"]["meaning"].lower()
    assert len(ops.calls("cancelSubscription")) == 1
    [event] = ops.events_of("OperationFailed", record["operation_id"])
    assert event["detail"]["ccbill_code"] == -4


def test_suppressed_domain_events_are_not_published(ops):
    subscription_id = ops.new_subscription()
    message = _message("refresh", subscription_id, "quiet-refresh")
    message["suppress_domain_events"] = True
    ops.send(message)
    ops.work()
    record = ops.operation("quiet-refresh")
    assert record["status"] == "succeeded"
    assert [e for e in ops.events() if e["detail"].get("operation_id") == record["operation_id"]] == []
