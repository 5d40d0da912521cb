"""Faults between us and CCBill, and inside the worker: nobody is charged twice, every operation ends settled.

Each test injects one fault (the sandbox's fault injection, or a simulated crash of the worker) and checks the
outcome where it shows: the sandbox's ledger and call log, the operation record, the published domain events.
"""

from __future__ import annotations

import json

import pytest



def _upgrade(subscription_id: str, key: str) -> dict:
    return {"operation_type": "upgrade", "subscription_id": subscription_id, "idempotency_key": key,
            "parameters": {"method": "charge_by_previous_transaction", "upgrade": "gold"}}


def _upgrade_charges(ops, original: str) -> list[dict]:
    """Charges of subscriptions sold as upgrades of ``original`` (the sandbox's ledger)."""
    return [charge for charge in ops.charges()
            if ops.sandbox.subscription(charge["subscription_id"])["upgraded_from"] == original]


def _crash_once_after_the_call(ops) -> dict:
    """The worker's outcome write raises once: the process 'dies' between the CCBill call and the record update."""
    return ops.crash_once_after_the_call()


# --- upgrades by API: a charge is never sent twice ----------------------------------------------------------------


def test_minus_7_on_an_upgrade_is_never_resent_and_ends_escalated(ops):
    original = ops.new_subscription()
    ops.sandbox.add_fault("chargeByPreviousTransactionId", "code:-7")
    ops.send(_upgrade(original, "upgrade-minus-7"))
    ops.work()
    record = ops.operation("upgrade-minus-7")
    assert record["status"] == "unknown" and record["ccbill"]["code"] == -7 and not record["escalated"]

    # Redelivery of the message and reconciliation inside the settle window: looked at, not sent again.
    ops.send({**_upgrade(original, "upgrade-minus-7")})  # SQS deduplicates; the record would too
    ops.work()
    ops.run_reconciliation()
    assert ops.operation("upgrade-minus-7")["status"] == "unknown"

    ops.wait(3.2)  # BILLOPS_SETTLE_WINDOW_SECONDS=3 in these tests
    ops.run_reconciliation()
    record = ops.operation("upgrade-minus-7")
    assert record["status"] == "unknown" and record["escalated"] is True
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1
    assert _upgrade_charges(ops, original) == []
    [escalated] = ops.events_of("OperationEscalated", record["operation_id"])
    assert escalated["detail"]["status"] == "unknown" and escalated["detail"]["ccbill_code"] == -7

    ops.run_reconciliation()  # escalated: left to a person, still never re-sent
    ops.work()
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1


def test_timeout_after_ccbill_charged_is_settled_by_the_webhook_with_exactly_one_charge(ops):
    original = ops.new_subscription()
    ops.sandbox.add_fault("chargeByPreviousTransactionId", "timeout_after", seconds=2)
    ops.send(_upgrade(original, "upgrade-timeout-after"))
    ops.work()
    record = ops.operation("upgrade-timeout-after")
    assert record["status"] == "unknown" and record["ccbill"]["kind"] == "transport"
    [charge] = _upgrade_charges(ops, original)  # CCBill did charge

    ops.deliver_webhooks()  # UpSaleSuccess -> receiver -> events table -> projector -> settlement hook
    record = ops.operation("upgrade-timeout-after")
    assert record["status"] == "succeeded"
    assert record["new_subscription_id"] == charge["subscription_id"]
    assert record["settled_by"]["source"] == "webhook" and record["settled_by"]["event_type"] == "UpSaleSuccess"
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1
    assert len(_upgrade_charges(ops, original)) == 1
    [event] = ops.events_of("OperationSucceeded", record["operation_id"])
    assert event["detail"]["new_subscription_id"] == charge["subscription_id"]


def test_timeout_after_is_settled_by_reconciliation_through_the_subscriptions_index(ops, monkeypatch):
    # A projector without the operations table: the webhook is folded but settles nothing by itself.
    monkeypatch.delenv("BILLOPS_OPERATIONS_TABLE")
    ops.reload("subscription_projector")
    monkeypatch.setenv("BILLOPS_OPERATIONS_TABLE", ops.names["operations_table"])
    original = ops.new_subscription()
    ops.sandbox.add_fault("chargeByPreviousTransactionId", "timeout_after", seconds=2)
    ops.send(_upgrade(original, "upgrade-reconciled"))
    ops.work()
    ops.deliver_webhooks()
    assert ops.operation("upgrade-reconciled")["status"] == "unknown"

    ops.run_reconciliation()
    record = ops.operation("upgrade-reconciled")
    assert record["status"] == "succeeded" and record["settled_by"]["source"] == "subscriptions_index"
    [charge] = _upgrade_charges(ops, original)
    assert record["new_subscription_id"] == charge["subscription_id"]
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1


def test_timeout_before_the_charge_ends_escalated_without_any_charge(ops):
    original = ops.new_subscription()
    ops.sandbox.add_fault("chargeByPreviousTransactionId", "timeout_before", seconds=2)
    ops.send(_upgrade(original, "upgrade-timeout-before"))
    ops.work()
    assert ops.operation("upgrade-timeout-before")["status"] == "unknown"
    ops.wait(3.2)
    ops.deliver_webhooks()
    ops.run_reconciliation()
    record = ops.operation("upgrade-timeout-before")
    assert record["status"] == "unknown" and record["escalated"] is True
    assert _upgrade_charges(ops, original) == []
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1


def test_connection_reset_after_the_charge_is_settled_by_the_webhook(ops):
    original = ops.new_subscription()
    ops.sandbox.add_fault("chargeByPreviousTransactionId", "reset_after")
    ops.send(_upgrade(original, "upgrade-reset"))
    ops.work()
    assert ops.operation("upgrade-reset")["status"] == "unknown"
    ops.deliver_webhooks()
    assert ops.operation("upgrade-reset")["status"] == "succeeded"
    assert len(_upgrade_charges(ops, original)) == 1


def test_crash_between_the_charge_and_the_record_write_charges_once(ops, monkeypatch):
    monkeypatch.setenv("BILLOPS_OPERATION_LEASE_SECONDS", "2")
    ops.reload("operation_worker")
    original = ops.new_subscription()
    crash = _crash_once_after_the_call(ops)
    ops.send(_upgrade(original, "upgrade-crash"))
    [response] = ops.work(rounds=1)
    assert crash["crashed"] == 1 and len(response["batchItemFailures"]) == 1  # the message comes back
    assert ops.operation("upgrade-crash")["status"] == "in_progress"

    ops.work(rounds=1)  # redelivered while the lease still holds: another worker may be on it, nothing is done
    assert ops.operation("upgrade-crash")["status"] == "in_progress"
    assert ops.queue_depth() == 0

    ops.wait(2.2)  # the dead worker's lease (2 s here) runs out
    ops.run_reconciliation()
    record = ops.operation("upgrade-crash")
    assert record["status"] == "unknown" and "lease expired" in record["unknown_reason"]
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1

    ops.deliver_webhooks()
    record = ops.operation("upgrade-crash")
    assert record["status"] == "succeeded"
    [charge] = _upgrade_charges(ops, original)
    assert record["new_subscription_id"] == charge["subscription_id"]
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1


def test_a_webhook_settles_an_upgrade_whose_worker_crashed_and_the_redelivery_does_nothing(ops):
    original = ops.new_subscription()
    _crash_once_after_the_call(ops)
    ops.send(_upgrade(original, "upgrade-crash-redelivered"))
    messages = ops.receive()
    ops.invoke_worker(messages, settle=False)  # the failed message stays invisible, as with a real visibility timeout
    ops.wait(1.2)
    ops.deliver_webhooks()  # the webhook arrives while the record is still in_progress: it settles it
    assert ops.operation("upgrade-crash-redelivered")["status"] == "succeeded"
    ops.invoke_worker(messages)  # the redelivery: already final
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1
    assert len(_upgrade_charges(ops, original)) == 1


# --- the same request twice --------------------------------------------------------------------------------------


def test_the_same_message_delivered_twice_charges_once(ops):
    original = ops.new_subscription()
    body = json.dumps(_upgrade(original, "upgrade-twice"))
    ops.send_raw(body, group=original, dedup="first-delivery")
    ops.send_raw(body, group=original, dedup="second-delivery")  # past SQS's deduplication window
    messages = ops.receive()
    ops.invoke_worker(messages)
    ops.invoke_worker(messages)  # the very same SQS messages handed over again (a lost delete)
    ops.work()
    assert ops.operation("upgrade-twice")["status"] == "succeeded"
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1
    assert len(_upgrade_charges(ops, original)) == 1
    assert len(ops.events_of("OperationSucceeded", ops.operation("upgrade-twice")["operation_id"])) == 1


def test_two_messages_with_one_idempotency_key(ops):
    original = ops.new_subscription()
    ops.send(_upgrade(original, "one-key"))
    ops.work()
    other = {"operation_type": "cancel", "subscription_id": original, "idempotency_key": "one-key"}
    ops.send_raw(json.dumps(other), group=original, dedup="another-body")
    ops.send_raw(json.dumps(_upgrade(original, "one-key")), group=original, dedup="same-body-again")
    assert ops.work() == [{"batchItemFailures": []}]

    record = ops.operation("one-key")
    assert record["status"] == "succeeded" and record["operation_type"] == "upgrade"
    assert len(record["conflicts"]) == 1
    assert ops.calls("cancelSubscription") == []
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1
    assert len(_upgrade_charges(ops, original)) == 1
    [dead] = ops.dead_letters()
    assert json.loads(dead["Body"])["operation_type"] == "cancel"
    assert dead["MessageAttributes"]["reason"]["StringValue"].startswith("idempotency_key_conflict")
    [rejected] = ops.events_of("OperationRejected", record["operation_id"])
    assert rejected["detail"]["failure_reason"] == "idempotency_key_conflict"


def test_a_malformed_message_is_rejected_and_dead_lettered_not_retried(ops):
    ops.send_raw('{"operation_type": "discount", "subscription_id": "0126", "idempotency_key": "bad",'
                 ' "parameters": {"discount_amount": "2,00"}}', group="0126")
    ops.send_raw("this is not JSON", group="junk")
    assert ops.work() == [{"batchItemFailures": []}]
    assert ops.queue_depth() == 0
    rejected = [op for op in ops.operations() if op["status"] == "rejected"]
    assert sorted(op["failure"]["param"] or "" for op in rejected) == ["", "parameters.discount_amount"]
    assert all(op["failure"]["reason"] == "message_invalid" for op in rejected)
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in ops.dead_letters())
    assert len(reasons) == 2 and all(reason.startswith("message_invalid") for reason in reasons)
    assert len(ops.events_of("OperationRejected")) == 2
    assert ops.calls() == []


# --- subscription management actions: settled by looking, re-sent only when harmless -----------------------------


def test_timeout_before_a_discount_is_resent_and_applies_once(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("discountSubscription", "timeout_before", seconds=2)
    ops.send({"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": "discount-tb",
              "parameters": {"discount_amount": "2.00"}})
    ops.work()
    record = ops.operation("discount-tb")
    # newRecurringPrice sent again is harmless: straight to retry_wait (due now: backoff base 0 in tests).
    assert record["status"] == "retry_wait" and record["resend_after_unknown"] is True
    ops.run_scheduler()
    ops.work()
    assert ops.operation("discount-tb")["status"] == "succeeded"
    state = ops.sandbox.subscription(subscription_id)
    assert state["recurring_price"] == "17.95" and len(state["discounts"]) == 1
    sent = [call["params"]["newRecurringPrice"] for call in ops.calls("discountSubscription")]
    assert sent == ["17.95", "17.95"]


def test_crash_after_a_discount_applied_resends_the_same_price_harmlessly(ops):
    subscription_id = ops.new_subscription()
    _crash_once_after_the_call(ops)
    ops.send({"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": "discount-crash",
              "parameters": {"discount_amount": "2.00"}})
    ops.work(rounds=1)
    ops.wait(1.2)
    ops.work()  # the redelivery finds the expired lease: unknown -> re-send the same newRecurringPrice
    ops.run_scheduler()
    ops.work()
    record = ops.operation("discount-crash")
    assert record["status"] == "succeeded" and record["attempt"] == 2
    state = ops.sandbox.subscription(subscription_id)
    # The price moved once: the repeat of newRecurringPrice=17.95 at 17.95 changes nothing.
    assert state["recurring_price"] == "17.95"
    assert [d["to"] for d in state["discounts"]] == ["17.95", "17.95"]


def test_an_unknown_discount_by_amount_with_no_known_price_is_escalated(ops):
    subscription_id = ops.sandbox.create_subscription(client_accnum="900100", client_subacc="0000",
                                                      initial_price="19.95", initial_period=30,
                                                      recurring_price="19.95", recurring_period=30)
    # No webhook was delivered: the price is not known, so the amount goes out as discountAmount.
    ops.sandbox.add_fault("discountSubscription", "code:-7")
    ops.send({"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": "discount-amount",
              "parameters": {"discount_amount": "2.00"}})
    ops.work()
    record = ops.operation("discount-amount")
    assert record["plan"]["param"] == "discountAmount"
    assert record["status"] == "unknown" and record["escalated"] is True
    ops.run_reconciliation()
    ops.run_scheduler()
    ops.work()
    assert len(ops.calls("discountSubscription")) == 1


def test_http_500_on_cancel_is_settled_by_looking_then_sent_again(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "http_500")
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "cancel-500"})
    ops.work()
    record = ops.operation("cancel-500")
    assert record["status"] == "retry_wait"  # viewSubscriptionStatus said: still active, so it did not apply
    ops.run_scheduler()
    ops.work()
    assert ops.operation("cancel-500")["status"] == "succeeded"
    assert len(ops.calls("cancelSubscription")) == 2
    ops.deliver_webhooks()
    assert len([w for w in ops.sandbox.webhooks() if w.get("event_type") == "Cancellation"]) <= 1
    assert ops.sandbox.subscription(subscription_id)["status"] == "cancelled"


def test_timeout_after_a_cancel_is_settled_by_the_status_read(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "timeout_after", seconds=2)
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "cancel-ta"})
    ops.work()
    record = ops.operation("cancel-ta")
    assert record["status"] == "succeeded" and record["settled_by"]["source"] == "viewSubscriptionStatus"
    assert len(ops.calls("cancelSubscription")) == 1


@pytest.mark.parametrize("mode", ["timeout_after", "timeout_before"])
def test_an_unknown_extension_is_settled_by_comparing_the_billing_date(ops, mode):
    from datetime import date

    subscription_id = ops.new_subscription()
    before = date.fromisoformat(ops.sandbox.subscription(subscription_id)["next_billing_date"][:10])
    ops.sandbox.add_fault("extendSubscription", mode, seconds=2)
    ops.send({"operation_type": "extend", "subscription_id": subscription_id, "idempotency_key": f"extend-{mode}",
              "parameters": {"days": 7}})
    ops.work()
    ops.run_scheduler()
    ops.work()
    record = ops.operation(f"extend-{mode}")
    assert record["status"] == "succeeded"
    after = date.fromisoformat(ops.sandbox.subscription(subscription_id)["next_billing_date"][:10])
    assert (after - before).days == 7  # applied exactly once
    assert len(ops.calls("extendSubscription")) == (1 if mode == "timeout_after" else 2)


def test_velocity_limits_are_retried_with_backoff_until_the_limit(ops, monkeypatch):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "code:-23", count=1)
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "cancel-velocity"})
    ops.work()
    assert ops.operation("cancel-velocity")["status"] == "retry_wait"
    ops.run_scheduler()
    ops.work()
    assert ops.operation("cancel-velocity")["status"] == "succeeded"

    monkeypatch.setenv("BILLOPS_OPERATION_MAX_ATTEMPTS", "2")
    ops.reload("operation_worker", "operation_scheduler")
    other = ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "code:-24", count=5)
    ops.send({"operation_type": "cancel", "subscription_id": other, "idempotency_key": "cancel-limit"})
    for _ in range(3):
        ops.work()
        ops.run_scheduler()
    record = ops.operation("cancel-limit")
    assert record["status"] == "failed" and record["failure"]["reason"] == "retries_exhausted"
    assert record["failure"]["code"] == -24 and record["attempt"] == 2
    assert len([c for c in ops.calls("cancelSubscription") if c["params"]["subscriptionId"] == other]) == 2


def test_connection_refused_is_retried(ops, monkeypatch):
    subscription_id = ops.new_subscription()
    monkeypatch.setenv("BILLOPS_CCBILL_SMS_URL", "http://127.0.0.1:9/utils/subscriptionManagement.cgi")
    ops.reload("operation_worker")
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "cancel-refused-conn"})
    ops.work()
    record = ops.operation("cancel-refused-conn")
    assert record["status"] == "retry_wait" and record["ccbill"]["kind"] == "transport"
    monkeypatch.setenv("BILLOPS_CCBILL_SMS_URL", ops.sandbox.sms_url)
    ops.reload("operation_worker")
    ops.run_scheduler()
    ops.work()
    assert ops.operation("cancel-refused-conn")["status"] == "succeeded"


def test_a_discount_resend_refused_as_if_already_applied_is_escalated(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("discountSubscription", "code:-7")
    ops.sandbox.add_fault("discountSubscription", "code:-21")  # what CCBill might answer if the first applied
    ops.send({"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": "discount-amb",
              "parameters": {"new_recurring_price": "15.95"}})
    ops.work()
    assert ops.operation("discount-amb")["status"] == "retry_wait"
    ops.run_scheduler()
    ops.work()
    record = ops.operation("discount-amb")
    assert record["status"] == "unknown" and record["escalated"] is True and record["ccbill"]["code"] == -21
    assert len(ops.events_of("OperationEscalated", record["operation_id"])) == 1
    ops.run_reconciliation()
    ops.run_scheduler()
    ops.work()
    assert len(ops.calls("discountSubscription")) == 2


def test_a_worker_short_of_time_hands_the_message_back_unclaimed(ops):
    subscription_id = ops.new_subscription()

    class AlmostOutOfTime:
        aws_request_id = "short-invocation"
        function_name = "operation-worker"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:operation-worker"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 3000  # less than connect + read timeout + 5 s

    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "short"})
    normal, ops.context = ops.context, AlmostOutOfTime()
    [response] = ops.work(rounds=1)
    assert len(response["batchItemFailures"]) == 1
    record = ops.operation("short")
    assert record["status"] == "queued" and record["attempt"] == 0
    assert ops.calls("cancelSubscription") == []
    ops.context = normal
    ops.work()
    assert ops.operation("short")["status"] == "succeeded"
    assert len(ops.calls("cancelSubscription")) == 1
