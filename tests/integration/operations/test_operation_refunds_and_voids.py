"""Refunds and voids as operations: the claim before the call, exactly one money movement back whatever fails, an
unknown outcome settled by the Refund / Void webhook or CCBill's counters - never by sending it again.

Every test reads the outcome where it shows: the sandbox's ledger and call log, the operation record, the events.
"""

from __future__ import annotations

import pytest


def _refund(subscription_id: str, key: str, **parameters) -> dict:
    message = {"operation_type": "refund", "subscription_id": subscription_id, "idempotency_key": key}
    if parameters:
        message["parameters"] = parameters
    return message


def _void(subscription_id: str, key: str) -> dict:
    return {"operation_type": "void", "subscription_id": subscription_id, "idempotency_key": key}


def _money_back(ops, kind: str) -> list[dict]:
    return [entry for entry in ops.sandbox.ledger() if entry["kind"] == kind]


def _crash_once_after_the_call(ops) -> None:
    ops.crash_once_after_the_call()


def test_a_full_refund_end_to_end(ops):
    sub = ops.new_subscription()
    ops.send(_refund(sub, "refund-full"))
    ops.work()
    record = ops.operation("refund-full")
    assert record["status"] == "succeeded" and record["ccbill"]["code"] == 1
    assert record["plan"] == {"action": "refundTransaction", "transaction_id": sub}
    assert record["pre_call_view"]["refundsIssued"] == "0"  # read before the call, to settle a lost answer
    [refund] = _money_back(ops, "refund")
    assert refund["amount"] == "-19.95" and refund["of_transaction_id"] == sub
    [call] = ops.calls("refundTransaction")
    assert call["params"]["subscriptionId"] == sub and "amount" not in call["params"]
    ops.deliver_webhooks()
    assert ops.subscription(sub)["status"] == "expired"  # CCBill ends a refunded subscription (the sandbox too)
    [event] = ops.events_of("OperationSucceeded", record["operation_id"])
    assert event["detail"]["operation_type"] == "refund"


def test_a_partial_refund_sends_the_amount(ops):
    sub = ops.new_subscription()
    ops.send(_refund(sub, "refund-partial", amount="5.00"))
    ops.work()
    assert ops.operation("refund-partial")["status"] == "succeeded"
    [call] = ops.calls("refundTransaction")
    assert call["params"]["amount"] == "5.00"
    [refund] = _money_back(ops, "refund")
    assert refund["amount"] == "-5.00"


def test_a_refund_of_more_than_the_charge_is_refused_by_ccbill_and_failed(ops):
    sub = ops.new_subscription()
    ops.send(_refund(sub, "refund-too-much", amount="50.00"))
    ops.work()
    record = ops.operation("refund-too-much")
    assert record["status"] == "failed" and record["failure"]["code"] == -5
    assert _money_back(ops, "refund") == []


def test_a_void_end_to_end(ops):
    sub = ops.new_subscription()
    ops.send(_void(sub, "void-1"))
    ops.work()
    record = ops.operation("void-1")
    assert record["status"] == "succeeded" and record["plan"]["action"] == "voidTransaction"
    [void] = _money_back(ops, "void")
    assert void["amount"] == "-19.95"
    assert ops.sandbox.subscription(sub)["charges"][0]["voided"] is True


@pytest.mark.parametrize("mode", ["http_302", "timeout_after", "reset_after"])
def test_a_refund_whose_answer_is_lost_is_settled_by_ccbills_counters_and_never_resent(ops, mode):
    sub = ops.new_subscription()
    ops.sandbox.add_fault("refundTransaction", mode, seconds=2)
    ops.send(_refund(sub, f"refund-{mode}", amount="5.00"))
    ops.work()
    record = ops.operation(f"refund-{mode}")
    assert record["status"] == "succeeded", record.get("unknown_reason")
    assert record["settled_by"]["source"] == "viewSubscriptionStatus"
    assert "refundsIssued went from 0 to 1" in record["settled_by"]["detail"]
    assert record["ccbill"]["status"] == "unknown"
    assert len(ops.calls("refundTransaction")) == 1
    assert len(_money_back(ops, "refund")) == 1
    ops.send(_refund(sub, f"refund-{mode}", amount="5.00"))
    ops.work()
    ops.run_reconciliation()
    assert len(ops.calls("refundTransaction")) == 1


def test_a_crashed_worker_s_refund_is_settled_by_the_refund_webhook(ops):
    sub = ops.new_subscription()
    _crash_once_after_the_call(ops)
    ops.send(_refund(sub, "refund-crash", amount="5.00"))
    messages = ops.receive()
    ops.invoke_worker(messages, settle=False)
    assert ops.operation("refund-crash")["status"] == "in_progress"
    ops.deliver_webhooks()  # Refund -> receiver -> events table -> projector -> settlement hook
    record = ops.operation("refund-crash")
    assert record["status"] == "succeeded"
    assert record["settled_by"]["source"] == "webhook" and record["settled_by"]["event_type"] == "Refund"
    assert record["settled_by"]["amount"] == "5.00"
    ops.invoke_worker(messages)  # the redelivery: already final
    assert len(ops.calls("refundTransaction")) == 1 and len(_money_back(ops, "refund")) == 1


def test_a_refund_webhook_for_another_amount_settles_nothing(ops):
    from billops_local.ccbill_sandbox.rules import SMS_PATH

    sub = ops.new_subscription()
    _crash_once_after_the_call(ops)
    ops.sandbox.add_fault("refundTransaction", "timeout_before", seconds=2)  # ours never reaches CCBill
    ops.send(_refund(sub, "refund-other-amount", amount="5.00"))
    ops.invoke_worker(ops.receive(), settle=False)
    # Meanwhile someone refunds 3.00 in CCBill's Admin Portal: a Refund webhook of the subscription, not ours.
    ops.sandbox.sandbox.rules.handle(SMS_PATH, {"clientAccnum": "900100", "username": "billopsapi",
                                                "password": "sandbox-datalink-password",
                                                "action": "refundTransaction", "subscriptionId": sub,
                                                "amount": "3.00"}, "127.0.0.1")
    ops.deliver_webhooks()
    assert ops.operation("refund-other-amount")["status"] == "in_progress"
    assert len(ops.calls("refundTransaction")) == 1


def test_minus_7_on_a_refund_is_never_resent_and_ends_escalated(ops):
    sub = ops.new_subscription()
    ops.sandbox.add_fault("refundTransaction", "code:-7")
    ops.send(_refund(sub, "refund-minus-7"))
    ops.work()
    record = ops.operation("refund-minus-7")
    assert record["status"] == "unknown" and record["ccbill"]["code"] == -7 and not record["escalated"]
    ops.wait(3.2)  # BILLOPS_SETTLE_WINDOW_SECONDS=3 in these tests
    ops.run_reconciliation()
    record = ops.operation("refund-minus-7")
    assert record["status"] == "unknown" and record["escalated"] is True
    assert "never sent twice" in record["unknown_reason"]
    [escalated] = ops.events_of("OperationEscalated", record["operation_id"])
    assert escalated["detail"]["operation_type"] == "refund"
    ops.run_reconciliation()
    ops.work()
    assert len(ops.calls("refundTransaction")) == 1 and _money_back(ops, "refund") == []


def test_a_late_void_webhook_settles_an_escalated_void(ops):
    sub = ops.new_subscription()
    _crash_once_after_the_call(ops)
    ops.send(_void(sub, "void-late"))
    ops.invoke_worker(ops.receive(), settle=False)
    ops.wait(1.2)  # the lease (1 s in these tests) runs out; the webhooks are held back meanwhile
    ops.sandbox.add_fault("viewSubscriptionStatus", "http_500", count=20)  # CCBill cannot be asked either
    ops.run_reconciliation()
    ops.wait(3.2)
    ops.run_reconciliation()
    record = ops.operation("void-late")
    assert record["status"] == "unknown" and record["escalated"] is True
    ops.deliver_webhooks()
    record = ops.operation("void-late")
    assert record["status"] == "succeeded" and record["settled_by"]["event_type"] == "Void"
    assert len(ops.calls("voidTransaction")) == 1 and len(_money_back(ops, "void")) == 1
