"""End to end: operations through the running local stack, exactly once, whatever fails (docs/operations.md).

Each test creates its own subscription in the CCBill sandbox (NewSaleSuccess reaches our subscriptions table through
the receiver, the events table's stream and the projector), puts an operation message on the FIFO OperationsQueue
as the merchant's systems would, and waits - bounded - for the stack's own worker, scheduler, reconciliation job and
webhooks to carry it to its end. Only outcomes are asserted: the operation record, the sandbox's subscription, its
call log and ledger, the domain events, our subscription records.

The shared ``local_stack`` runs everything except the crash between the CCBill call and the record update, which
needs a fault inside our worker: a second stack started with ``BILLOPS_LOCAL_FAULTS`` (billops_local.
worker_faults, injected through the worker's composition root by the local stack only) and a 1 s lease (the
template's 180 s lease, outlived by AWS's 720 s visibility timeout, is far longer than the 1 s a failed message
waits locally).

Always: the sandbox records exactly one charge per upgrade request, and every operation ends in a final state or is
escalated as unknown (the last test sweeps every operation this module sent).
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from billops.operations.operation_records import parse_iso
from operations_driver import FUNCTION_ENVIRONMENT_VARIABLE, OperationsDriver, is_settled
from support.waiting import eventually

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
GOLD = {"method": "charge_by_previous_transaction", "upgrade": "gold"}
CHARGE = "chargeByPreviousTransactionId"
DISCOUNT = "discountSubscription"


def key(name: str) -> str:
    return f"e2e-{RUN}-{name}"


def upgrade_message(subscription_id: str, idempotency_key: str, parameters: dict | None = None) -> dict:
    return {"operation_type": "upgrade", "subscription_id": subscription_id, "idempotency_key": idempotency_key,
            "parameters": parameters or GOLD}


def discount_message(subscription_id: str, idempotency_key: str, **parameters: str) -> dict:
    return {"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": idempotency_key,
            "parameters": parameters}


@pytest.fixture(scope="module")
def ops(local_stack) -> OperationsDriver:
    return OperationsDriver(local_stack)


@pytest.fixture(autouse=True)
def no_faults_left(ops):
    ops.clear_faults()
    yield
    ops.clear_faults()


def assert_one_upgrade_charge(ops: OperationsDriver, original: str, record: dict) -> dict:
    """Exactly one charge in the sandbox for the upgrade of ``original``, and it is the operation's new subscription."""
    charges = ops.upgrade_charges(original)
    assert len(charges) == 1, charges
    (charge,) = charges
    assert record["new_subscription_id"] == charge["subscription_id"]
    return charge


# --- 1. a discount, end to end ------------------------------------------------------------------------------------


def test_a_discount_by_amount_lowers_the_recurring_price_at_ccbill(ops):
    subscription_id = ops.create_subscription()
    ops.send(discount_message(subscription_id, key("discount"), discount_amount="2.00"))

    record = ops.wait_for_operation(key("discount"))
    assert record["status"] == "succeeded", record
    assert record["ccbill"]["code"] == 1 and record["attempt"] == 1
    # The amount was turned into a new price before the call (a repeat could not lower it twice).
    assert (record["plan"]["param"], record["plan"]["value"]) == ("newRecurringPrice", "17.95")

    sandbox = ops.sandbox_subscription(subscription_id)
    assert sandbox["recurring_price"] == "17.95" and sandbox["status"] == "active"
    assert [(d["from"], d["to"]) for d in sandbox["discounts"]] == [("19.95", "17.95")]
    [call] = ops.calls(DISCOUNT, subscription_id)
    assert call["params"]["newRecurringPrice"] == "17.95" and call["applied"] is True

    [event] = ops.wait_for_events(record["operation_id"], "OperationSucceeded")
    assert event["source"] == "billops"
    assert event["detail"]["status"] == "succeeded" and event["detail"]["operation_type"] == "discount"
    # CCBill sends no webhook for a discount: the operation notes the price on our subscription record.
    ours = ops.wait_for_subscription(subscription_id,
                                     lambda r: (r.get("operation_facts") or {}).get("recurring_price") == "17.95",
                                     "the discounted price noted")
    assert ours["operation_facts"]["recurring_price_operation_id"] == record["operation_id"]


# --- 2. every discount rule refused before CCBill is called ---------------------------------------------------------

NON_RECURRING = {"recurring_price": "0.00", "recurring_period": 0, "rebills": 0}
DISCOUNT_RULES = [
    # code, subscription, parameters, the parameter named
    pytest.param(-2, NON_RECURRING, {"new_recurring_price": "9.95"}, "newRecurringPrice", id="-2-non-recurring"),
    pytest.param(-11, {"initial_price": "4.95", "recurring_price": "4.95"}, {"discount_amount": "0.50"},
                 "subscriptionId", id="-11-price-below-5"),
    pytest.param(-18, {}, {"discount_amount": "15.00"}, "discountAmount", id="-18-result-below-5"),
    pytest.param(-19, {}, {"discount_amount": "0.00"}, "discountAmount", id="-19-amount-below-0.01"),
    pytest.param(-20, {}, {"new_recurring_price": "24.95"}, "newRecurringPrice", id="-20-above-current"),
    pytest.param(-21, {"cancel_discount_price": "15.00"}, {"new_recurring_price": "16.00"}, "newRecurringPrice",
                 id="-21-not-below-cancel-discount"),
    pytest.param(-22, "cancelled", {"discount_amount": "1.00"}, "subscriptionId", id="-22-not-active"),
]


@pytest.mark.parametrize(("code", "subscription", "parameters", "param"), DISCOUNT_RULES)
def test_each_discount_rule_is_refused_before_ccbill_is_called(ops, code, subscription, parameters, param):
    if subscription == "cancelled":
        subscription_id = ops.create_subscription()
        ops.cancel_in_sandbox(subscription_id)
        ops.wait_for_subscription(subscription_id, lambda r: r.get("status") == "cancelled",
                                  "its Cancellation to be projected")
    else:
        subscription_id = ops.create_subscription(**subscription)
        if "cancel_discount_price" in subscription:
            # No webhook carries a cancel discount: an operator notes it on the subscription record.
            ops.set_cancel_discount_price(subscription_id, subscription["cancel_discount_price"])
    before = ops.sandbox_subscription(subscription_id)
    idempotency_key = key(f"discount-rule{code}")
    ops.send(discount_message(subscription_id, idempotency_key, **parameters))

    record = ops.wait_for_operation(idempotency_key)
    assert record["status"] == "failed", record
    assert record["failure"]["reason"] == "request_invalid"
    assert (record["failure"]["code"], record["failure"]["param"]) == (code, param), record["failure"]
    assert record["ccbill_called"] is False and "call_started_at" not in record
    assert ops.calls(DISCOUNT, subscription_id) == []  # the sandbox never heard of it
    after = ops.sandbox_subscription(subscription_id)
    assert (after["recurring_price"], after["discounts"]) == (before["recurring_price"], [])

    [event] = ops.wait_for_events(record["operation_id"], "OperationFailed")
    detail = event["detail"]
    assert (detail["ccbill_code"], detail["param"], detail["failure_reason"]) == (code, param, "request_invalid")
    assert detail["status"] == "failed"


# --- 3. an upgrade by API ---------------------------------------------------------------------------------------------


def test_an_upgrade_by_api_charges_once_and_the_new_subscription_links_to_the_original(ops):
    original = ops.create_subscription()
    explicit = {"method": "charge_by_previous_transaction", "new_client_accnum": "900100", "new_client_subacc": "0001",
                "initial_price": "24.95", "initial_period": 30, "recurring_price": "24.95", "recurring_period": 30,
                "rebills": 99, "currency_code": "EUR"}
    ops.send(upgrade_message(original, key("upgrade-api"), explicit))

    record = ops.wait_for_operation(key("upgrade-api"))
    assert record["status"] == "succeeded", record
    charge = assert_one_upgrade_charge(ops, original, record)
    assert (charge["amount"], charge["currency_code"], charge["client_subacc"]) == ("24.95", "978", "0001")
    assert len(ops.calls(CHARGE, original)) == 1
    assert ops.sandbox_subscription(original)["status"] == "active"  # chargeByPreviousTransactionId leaves it

    new_id = record["new_subscription_id"]
    ours = ops.wait_for_subscription(new_id, lambda r: r.get("original_subscription_id") == original,
                                     "the UpSaleSuccess to be projected")
    assert (ours["client_subacc"], ours["status"]) == ("0001", "active")
    [event] = ops.wait_for_events(record["operation_id"], "OperationSucceeded")
    assert event["detail"]["upgrade_method"] == "charge_by_previous_transaction"
    assert event["detail"].get("new_subscription_id") == new_id


# --- 4. an upgrade by the Subscription Upgrade System ------------------------------------------------------------


def test_an_upgrade_by_the_subscription_upgrade_system_waits_for_the_consumer(ops):
    original = ops.create_subscription()
    ops.send(upgrade_message(original, key("upgrade-system"), {"method": "allow_upgrade", "upgrade": "gold"}))

    waiting = ops.wait_for_operation(key("upgrade-system"), lambda r: r["status"] != "in_progress"
                                     and r["status"] != "queued", "the allowUpgrade answer")
    assert waiting["status"] == "awaiting_consumer", waiting
    form = waiting["upgrade_form"]
    assert form["fields"]["action"] == "upgradeSubscription"
    assert (form["fields"]["subscriptionId"], form["fields"]["clientSubacc"]) == (original, "0000")
    window = parse_iso(waiting["window_expires_at"]) - parse_iso(waiting["call_started_at"])
    assert window == timedelta(minutes=30)
    assert len(ops.calls("allowUpgrade", original)) == 1
    assert ops.upgrade_charges(original) == []  # allowUpgrade charges nothing
    [awaiting] = ops.wait_for_events(waiting["operation_id"], "OperationAwaitingConsumer")
    assert awaiting["detail"]["status"] == "in_progress"

    # The consumer submits the form the operation recorded, at CCBill, within the window.
    page = ops.post_upgrade_form(form)
    assert page.status_code == 200 and "Upgrade Approved" in page.text, page.text

    record = ops.wait_for_operation(key("upgrade-system"))
    assert record["status"] == "succeeded", record
    assert record["settled_by"]["event_type"] == "UpgradeSuccess"
    assert_one_upgrade_charge(ops, original, record)
    assert len(ops.calls("upgradeSubscription", original)) == 1
    assert ops.sandbox_subscription(original)["status"] == "expired"  # an upgrade replaces the original
    ops.wait_for_subscription(record["new_subscription_id"], lambda r: r.get("original_subscription_id") == original,
                              "the UpgradeSuccess to be projected")
    ops.wait_for_events(record["operation_id"], "OperationSucceeded")


# --- 5. a deferred operation ----------------------------------------------------------------------------------------


def test_a_deferred_operation_waits_for_its_time_then_runs(ops):
    subscription_id = ops.create_subscription()
    run_at = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": key("deferred"),
              "run_at": run_at.isoformat().replace("+00:00", "Z")})

    scheduled = ops.wait_for_operation(key("deferred"), lambda r: r, "the record", timeout=10)
    assert scheduled["status"] == "scheduled" and parse_iso(scheduled["due_at"]) == run_at
    # Until run_at it stays scheduled and CCBill hears nothing (the scheduler sweeps every second meanwhile).
    while datetime.now(UTC) < run_at - timedelta(seconds=0.5):
        assert ops.operation(key("deferred"))["status"] == "scheduled"
        assert ops.calls("cancelSubscription", subscription_id) == []
        ops.settle_quietly(0.2)

    record = ops.wait_for_operation(key("deferred"), timeout=20)
    assert record["status"] == "succeeded", record
    claimed = parse_iso(record["call_started_at"])
    assert run_at <= claimed < run_at + timedelta(seconds=15)  # not before, and soon after
    assert len(ops.calls("cancelSubscription", subscription_id)) == 1
    assert ops.sandbox_subscription(subscription_id)["status"] == "cancelled"
    ops.wait_for_subscription(subscription_id, lambda r: r.get("status") == "cancelled",
                              "the Cancellation to be projected")
    ops.wait_for_events(record["operation_id"], "OperationSucceeded")


# --- 6-7. faults at CCBill on an upgrade ----------------------------------------------------------------------------


def test_minus_7_on_an_upgrade_is_never_resent_and_is_escalated(ops, local_stack):
    original = ops.create_subscription()
    ops.add_fault(CHARGE, "code:-7")
    ops.send(upgrade_message(original, key("upgrade-minus-7")))

    unknown = ops.wait_for_operation(key("upgrade-minus-7"), lambda r: r["status"] == "unknown", "unknown")
    assert unknown["ccbill"]["code"] == -7
    assert ops.pending_faults() == []  # the -7 was answered to our call

    # No webhook comes; after the settle window the reconciliation job escalates it (it runs every 15 s; run it
    # now instead of waiting).
    since = parse_iso(unknown["unknown_since"])
    window = timedelta(seconds=local_stack.settle_window_seconds)
    ops.settle_quietly(max(0.0, (since + window - datetime.now(UTC)).total_seconds()) + 0.5)
    local_stack.trigger_schedule("ReconciliationFunction")
    record = ops.wait_for_operation(key("upgrade-minus-7"), timeout=20)
    assert (record["status"], record["escalated"]) == ("unknown", True), record
    [escalated] = ops.wait_for_events(record["operation_id"], "OperationEscalated")
    assert escalated["detail"]["ccbill_code"] == -7 and escalated["detail"]["status"] == "unknown"

    local_stack.trigger_schedule("ReconciliationFunction")  # escalated: looked at again, never re-sent
    [call] = ops.calls(CHARGE, original)
    assert call["fault"] == "code:-7" and call["applied"] is False
    assert ops.upgrades_of(original) == [] and ops.upgrade_charges(original) == []
    assert ops.operation(key("upgrade-minus-7"))["escalated"] is True


def test_a_timeout_after_ccbill_charged_is_settled_by_the_webhook_with_one_charge(ops):
    original = ops.create_subscription()
    # CCBill charges, then holds the connection and closes it without an answer: the worker cannot know.
    ops.add_fault(CHARGE, "timeout_after", seconds=0.5)
    ops.send(upgrade_message(original, key("upgrade-timeout-after")))

    record = ops.wait_for_operation(key("upgrade-timeout-after"))
    assert record["status"] == "succeeded", record
    if record.get("ccbill"):  # the worker wrote its outcome before the webhook came: it wrote "unknown"
        assert record["ccbill"]["status"] == "unknown" and record["ccbill"]["kind"] == "transport", record["ccbill"]
    assert record["settled_by"]["source"] in ("webhook", "subscriptions_index")
    assert record["settled_by"]["event_type"] == "UpSaleSuccess"
    assert_one_upgrade_charge(ops, original, record)
    [call] = ops.calls(CHARGE, original)
    assert call["fault"] == "timeout_after" and call["applied"] is True and call["answer"]["dropped"] == "timeout"
    [event] = ops.wait_for_events(record["operation_id"], "OperationSucceeded")
    assert event["detail"].get("new_subscription_id") == record["new_subscription_id"]


# --- 8. the worker dies between the CCBill call and the record update ---------------------------------------------

CRASHES = "crash_after_call:chargeByPreviousTransactionId:1,crash_after_call:discountSubscription:1"


@pytest.fixture(scope="module")
def crashing(start_local_stack):
    """A second stack whose worker dies once after each of those calls (and whose lease is 1 s)."""
    command = [sys.executable, str(Path(__file__).with_name("operations_driver.py"))]
    env = {"BILLOPS_LOCAL_FAULTS": CRASHES,
           FUNCTION_ENVIRONMENT_VARIABLE: json.dumps({"BILLOPS_OPERATION_LEASE_SECONDS": "1"}),
           "BILLOPS_OPERATION_RETRY_BASE_SECONDS": "0"}
    with start_local_stack(env, command) as stack:
        driver = OperationsDriver(stack)
        yield driver
        unsettled = {k: (r or {}).get("status") for k in driver.sent_keys if not is_settled(r := driver.operation(k))}
        assert not unsettled, f"operations left open on the crashing stack: {unsettled}"


def test_a_crash_after_an_upgrade_charged_is_settled_by_the_webhook_with_one_charge(crashing):
    original = crashing.create_subscription()
    failed_before = crashing.worker_stats()["failed_messages"]
    crashing.send(upgrade_message(original, key("upgrade-crash")))

    record = crashing.wait_for_operation(key("upgrade-crash"))
    assert record["status"] == "succeeded", record
    assert record["attempt"] == 1 and "ccbill" not in record  # the outcome was never written by the worker
    assert record["settled_by"]["source"] in ("webhook", "subscriptions_index")
    assert_one_upgrade_charge(crashing, original, record)
    [call] = crashing.calls(CHARGE, original)
    assert call["applied"] is True and call["fault"] is None
    # The crashed invocation handed the message back; its redelivery sent nothing.
    eventually(lambda: crashing.worker_stats()["failed_messages"] > failed_before, 10,
               what="the crashed message to come back")
    crashing.settle_quietly(2.5)
    assert len(crashing.calls(CHARGE, original)) == 1 and len(crashing.upgrade_charges(original)) == 1
    assert "SimulatedCrash" in crashing.stack.output
    crashing.wait_for_events(record["operation_id"], "OperationSucceeded")


def test_a_crash_after_a_discount_applied_is_found_by_its_expired_lease_and_moves_the_price_once(crashing):
    subscription_id = crashing.create_subscription()
    crashing.send(discount_message(subscription_id, key("discount-crash"), discount_amount="2.00"))

    record = crashing.wait_for_operation(key("discount-crash"))
    assert record["status"] == "succeeded", record
    # The message came back after the lease had run out: unknown, then the same newRecurringPrice sent again.
    assert record["attempt"] >= 2 and "lease expired" in record["unknown_reason"], record
    sent = [call["params"]["newRecurringPrice"] for call in crashing.calls(DISCOUNT, subscription_id)]
    assert len(sent) == record["attempt"] and set(sent) == {"17.95"}  # every attempt sent the same price
    sandbox = crashing.sandbox_subscription(subscription_id)
    assert sandbox["recurring_price"] == "17.95"  # moved once: the repeat at the price already set changes nothing
    assert [d["from"] for d in sandbox["discounts"]] == ["19.95"] + ["17.95"] * (len(sent) - 1)
    [event] = crashing.wait_for_events(record["operation_id"], "OperationSucceeded")
    assert event["detail"]["attempt"] == record["attempt"]


# --- 9-10. repeats -----------------------------------------------------------------------------------------------------


def _queue_drained(ops: OperationsDriver) -> bool:
    attributes = ops.sqs.get_queue_attributes(QueueUrl=ops.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def test_the_same_message_delivered_twice_is_one_operation_and_one_call(ops):
    original = ops.create_subscription()
    body = upgrade_message(original, key("upgrade-twice"))
    ops.send_raw(body, deduplication_id=f"{RUN}-first-delivery")
    ops.send_raw(body, deduplication_id=f"{RUN}-second-delivery")  # not a repeat to SQS: delivered again

    record = ops.wait_for_operation(key("upgrade-twice"))
    assert record["status"] == "succeeded", record
    eventually(lambda: _queue_drained(ops), 20, what="the operations queue to be drained (both deliveries handled)")
    assert len(ops.calls(CHARGE, original)) == 1
    assert_one_upgrade_charge(ops, original, record)
    assert [r["operation_id"] for r in ops.operations_of(original)
            if r.get("operation_type") == "upgrade"] == [record["operation_id"]]
    assert len(ops.wait_for_events(record["operation_id"], "OperationSucceeded")) == 1
    ops.settle_quietly(0.5)
    assert len(ops.events(record["operation_id"], "OperationSucceeded")) == 1


def test_a_second_request_under_a_used_key_is_a_conflict_and_never_runs(ops):
    subscription_id = ops.create_subscription()
    ops.send(discount_message(subscription_id, key("one-key"), new_recurring_price="15.95"))
    other = {"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": key("one-key")}
    ops.send_raw(other, deduplication_id=f"{RUN}-another-body")

    record = ops.wait_for_operation(key("one-key"), lambda r: is_settled(r) and r.get("conflicts"),
                                    "the first request settled and the second noted as a conflict")
    assert (record["status"], record["operation_type"]) == ("succeeded", "discount"), record
    assert len(record["conflicts"]) == 1
    (dead,) = eventually(lambda: ops.dead_letters(record["operation_id"]), 10,
                         what="the conflicting message in the dead-letter queue")
    assert '"cancel"' in dead["Body"]
    assert dead["MessageAttributes"]["reason"]["StringValue"].startswith("idempotency_key_conflict")
    [rejected] = ops.wait_for_events(record["operation_id"], "OperationRejected")
    assert rejected["detail"]["failure_reason"] == "idempotency_key_conflict"

    assert ops.calls("cancelSubscription", subscription_id) == []
    assert len(ops.calls(DISCOUNT, subscription_id)) == 1
    sandbox = ops.sandbox_subscription(subscription_id)
    assert (sandbox["status"], sandbox["recurring_price"]) == ("active", "15.95")


# --- every operation ends settled, and said so on the bus -----------------------------------------------------------

EVENT_OF = {"succeeded": "OperationSucceeded", "failed": "OperationFailed", "rejected": "OperationRejected"}


def test_every_operation_sent_ended_final_or_escalated_with_its_event(ops):
    assert ops.sent_keys, "the tests above sent nothing"
    records = {k: ops.wait_for_operation(k, timeout=10) for k in dict.fromkeys(ops.sent_keys)}
    ops.events()  # read what the tap holds now
    subscriptions, ledger = ops.sandbox_subscriptions(), ops.ledger()
    for idempotency_key, record in records.items():
        detail_type = "OperationEscalated" if record.get("escalated") else EVENT_OF[record["status"]]
        assert ops.events(record["operation_id"], detail_type, read=False), (idempotency_key, detail_type)
        assert not record.get("pending_events"), idempotency_key  # the outbox is empty
        if record["operation_type"] == "upgrade":
            # Exactly one charge per upgrade request that succeeded; none for the escalated one.
            charges = ops.upgrade_charges(record["subscription_id"], subscriptions=subscriptions, ledger=ledger)
            assert len(charges) == (0 if record.get("escalated") else 1), (idempotency_key, charges)
