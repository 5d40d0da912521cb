"""Upgrades through the Subscription Upgrade System: allowUpgrade, the consumer's form, the Background Posts."""

from __future__ import annotations

from datetime import timedelta

import requests
from billops.operations.operation_records import parse_iso
from support.waiting import eventually


def _allow_upgrade(subscription_id: str, key: str) -> dict:
    return {"operation_type": "upgrade", "subscription_id": subscription_id, "idempotency_key": key,
            "parameters": {"method": "allow_upgrade", "upgrade": "gold"}}


def _approval(original: str, new_id: str | None = None) -> dict:
    fields = {"originalClientAccnum": "900100", "originalClientSubacc": "0000", "originalSubscriptionId": original,
              "clientAccnum": "900100", "clientSubacc": "0001", "customer_fname": "Jane", "customer_lname": "Doe",
              "email": "jane@example.com", "username": "janedoe1", "initialPrice": "19.95", "initialPeriod": "30"}
    if new_id:
        fields["subscription_id"] = new_id
    return fields


def _consumer_uses_the_form(ops, record: dict) -> str:
    form = record["upgrade_form"]
    answer = requests.post(form["url"], data=form["fields"], timeout=5)
    assert "Upgrade Approved" in answer.text, answer.text
    new_id = ops.sandbox.subscription(record["subscription_id"])["upgraded_to"]
    assert new_id
    return new_id


def test_allow_upgrade_opens_the_window_and_the_approval_post_settles_it(ops):
    original = ops.new_subscription()
    ops.send(_allow_upgrade(original, "allow-1"))
    ops.work()
    record = ops.operation("allow-1")
    assert record["status"] == "awaiting_consumer"
    window = parse_iso(record["window_expires_at"]) - parse_iso(record["call_started_at"])
    assert window == timedelta(minutes=30)
    form = record["upgrade_form"]
    assert form["url"] == ops.sandbox.upgrade_url
    # Two upgrades are configured at the sandbox's 900100: the step-2 form names the one the post allowed.
    assert form["fields"] == {"clientAccnum": "900100", "clientSubacc": "0000", "subscriptionId": original,
                              "action": "upgradeSubscription", "upgradeClientAccnum": "900100",
                              "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}
    [waiting] = ops.events_of("OperationAwaitingConsumer", record["operation_id"])
    assert waiting["detail"]["upgrade_form"] == form and waiting["detail"]["status"] == "in_progress"
    [call] = ops.calls("allowUpgrade")
    assert call["params"]["subscriptionId"] == original

    new_id = _consumer_uses_the_form(ops, record)
    answer = ops.post_upgrade_postback("approval", _approval(original, new_id))
    assert answer == {"status": 200, "body": {"received": True, "matched": True,
                                              "operation_id": record["operation_id"], "status": "succeeded"}}
    record = ops.operation("allow-1")
    assert record["status"] == "succeeded" and record["new_subscription_id"] == new_id
    assert record["settled_by"]["source"] == "postback"
    [kept] = record["postbacks"]
    assert kept["subscription_id"] == new_id and "email" not in kept and "username" not in kept
    ops.deliver_webhooks()  # UpgradeSuccess arrives later: already settled, nothing changes
    assert ops.operation("allow-1")["status"] == "succeeded"
    assert len(ops.events_of("OperationSucceeded", record["operation_id"])) == 1
    assert len(ops.calls("allowUpgrade")) == 1


def test_the_upgrade_success_webhook_settles_it_when_it_comes_first(ops):
    original = ops.new_subscription()
    ops.send(_allow_upgrade(original, "allow-webhook"))
    ops.work()
    new_id = _consumer_uses_the_form(ops, ops.operation("allow-webhook"))
    ops.deliver_webhooks()
    record = ops.operation("allow-webhook")
    assert record["status"] == "succeeded" and record["new_subscription_id"] == new_id
    assert record["settled_by"]["event_type"] == "UpgradeSuccess"
    answer = ops.post_upgrade_postback("approval", _approval(original, new_id))  # the post, late: still matched
    assert answer["body"]["matched"] is True and ops.operation("allow-webhook")["status"] == "succeeded"


def test_the_denial_post_fails_the_operation_with_ccbills_reason(ops):
    original = ops.new_subscription()
    ops.send(_allow_upgrade(original, "allow-denied"))
    ops.work()
    fields = {**_approval(original), "denialId": "0126999902000000001", "reasonForDeclineCode": "24",
              "reasonForDecline": "Transaction Denied by Bank"}
    answer = ops.post_upgrade_postback("denial", fields)
    assert answer["status"] == 200 and answer["body"]["status"] == "failed"
    record = ops.operation("allow-denied")
    assert record["failure"]["reason"] == "upgrade_denied" and record["failure"]["code"] == "24"
    assert record["failure"]["denial_id"] == "0126999902000000001"
    [event] = ops.events_of("OperationFailed", record["operation_id"])
    assert event["detail"]["failure_reason"] == "upgrade_denied"


def test_an_expired_window_fails_the_operation_and_a_late_approval_still_proves_it(ops, monkeypatch):
    # 5 s: long enough that the reconciliation run right after the call finds the window still open on a loaded
    # machine (1 s was not: the run came 1.2 s after the call), short enough to wait for it to close.
    monkeypatch.setenv("BILLOPS_UPGRADE_WINDOW_SECONDS", "5")
    ops.reload("operation_worker")
    original = ops.new_subscription()
    ops.send(_allow_upgrade(original, "allow-expired"))
    ops.work()
    ops.run_reconciliation()
    assert ops.operation("allow-expired")["status"] == "awaiting_consumer"

    def expired_by_reconciliation() -> dict | None:
        ops.run_reconciliation()
        record = ops.operation("allow-expired")
        return record if record["status"] != "awaiting_consumer" else None

    record = eventually(expired_by_reconciliation, 30, 0.5, what="the reconciliation to close the window")
    assert record["status"] == "failed" and record["failure_reason"] == "upgrade_window_expired"
    [event] = ops.events_of("OperationFailed", record["operation_id"])
    assert event["detail"]["failure_reason"] == "upgrade_window_expired"

    answer = ops.post_upgrade_postback("approval", _approval(original, "0126999902000000002"))
    assert answer["body"]["status"] == "succeeded"
    record = ops.operation("allow-expired")
    assert record["status"] == "succeeded" and record["new_subscription_id"] == "0126999902000000002"


def test_allow_upgrade_whose_answer_was_lost_is_sent_again(ops):
    original = ops.new_subscription()
    # The client itself repeats allowUpgrade (it changes nothing) twice; the third answer is lost too.
    ops.sandbox.add_fault("allowUpgrade", "http_500", count=3)
    ops.send(_allow_upgrade(original, "allow-lost"))
    ops.work()
    assert ops.operation("allow-lost")["status"] == "retry_wait"
    ops.run_scheduler()
    ops.work()
    assert ops.operation("allow-lost")["status"] == "awaiting_consumer"
    assert len(ops.calls("allowUpgrade")) == 4


def test_allow_upgrade_without_a_known_subaccount_is_refused_before_calling(ops):
    subscription_id = ops.sandbox.create_subscription(initial_price="19.95", initial_period=30,
                                                      recurring_price="19.95", recurring_period=30)
    ops.sandbox.sandbox.clear_calls()
    ops.send(_allow_upgrade(subscription_id, "allow-no-subacc"))
    ops.work()
    record = ops.operation("allow-no-subacc")
    assert record["status"] == "failed" and record["failure"]["param"] == "clientSubacc"
    assert ops.calls() == []


def test_postbacks_are_authenticated_like_webhooks(ops):
    original = ops.new_subscription()
    assert ops.post_upgrade_postback("approval", _approval(original), token="wrong")["status"] == 403
    assert ops.post_upgrade_postback("approval", _approval(original), source_ip="203.0.113.9")["status"] == 403
    assert ops.post_upgrade_postback("maybe", _approval(original))["status"] == 400
    malformed = ops.post_upgrade_postback("approval", {"originalClientAccnum": "900100"})
    assert malformed["status"] == 400 and malformed["body"]["param"] == "originalSubscriptionId"
    unmatched = ops.post_upgrade_postback("approval", _approval(original, "0126999902000000003"))
    assert unmatched == {"status": 200, "body": {"received": True, "matched": False}}
