"""The -7 circuit breaker: a run of -7 answers pauses every CCBill call, across workers, until a person resumes it;
nothing fails, nothing is lost, nothing is charged twice, and the calls CCBill receives stay bounded."""

from __future__ import annotations

import pytest

from billops.ccbill.circuit_breaker import CircuitBreaker
from billops.storage.ccbill_breaker_store import BREAKER_KEY, CCBillBreakerStore

SANDBOX_ACTIONS = ("cancelSubscription", "viewSubscriptionStatus", "chargeByPreviousTransactionId",
                   "refundTransaction", "discountSubscription")


def _cancel(subscription_id: str, key: str) -> dict:
    return {"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": key}


def _upgrade(subscription_id: str, key: str) -> dict:
    return {"operation_type": "upgrade", "subscription_id": subscription_id, "idempotency_key": key,
            "parameters": {"method": "charge_by_previous_transaction", "upgrade": "gold"}}


def _ccbill_calls(ops) -> list[dict]:
    return [call for call in ops.sandbox.calls() if call["action"] in SANDBOX_ACTIONS]


@pytest.fixture
def paused_quickly(ops, monkeypatch):
    monkeypatch.setenv("BILLOPS_OPERATION_PAUSED_RECHECK_SECONDS", "0")
    ops.reload("operation_worker", "operation_scheduler", "reconciliation", "subscription_projector")
    return ops


def _breaker(ops) -> CircuitBreaker:
    return ops.services().breaker


def test_a_run_of_minus_7_pauses_every_call_until_resumed_and_nothing_is_lost(paused_quickly):
    ops = paused_quickly
    upgrade_of = ops.new_subscription()
    cancels = [ops.new_subscription() for _ in range(4)]
    ops.sandbox.add_fault("*", "code:-7", count=1000)  # e.g. the DataLink password was changed at CCBill

    ops.send(_upgrade(upgrade_of, "breaker-upgrade"))
    for number, subscription_id in enumerate(cancels):
        ops.send(_cancel(subscription_id, f"breaker-cancel-{number}"))
    ops.work()

    # At most the threshold of calls reached CCBill (one worker here: exactly three), all answered -7.
    calls = _ccbill_calls(ops)
    assert len(calls) == 3 and all(call["answer"]["body"].strip().endswith(('"-7"', "<results>-7</results>"))
                                   for call in calls)
    status = _breaker(ops).status()
    assert status.open and status.consecutive_minus7 == 3
    [paused_event] = ops.events_of("CCBillCallsPaused")
    assert paused_event["detail"]["consecutive_minus7"] == 3 and paused_event["detail"]["threshold"] == 3

    upgrade = ops.operation("breaker-upgrade")
    assert upgrade["status"] == "unknown" and upgrade["ccbill"]["code"] == -7  # a -7 on a charge: never resent
    waiting = [ops.operation(f"breaker-cancel-{n}") for n in range(4)]
    paused = [record for record in waiting if record.get("paused_by_breaker")]
    assert paused and all(record["status"] == "retry_wait" for record in paused)
    assert all(record["status"] in ("unknown", "retry_wait") for record in waiting)
    assert not [record for record in waiting if record["status"] == "failed"]

    # While open: the scheduler and the reconciliation job run, the worker looks again - nothing leaves.
    for _ in range(3):
        ops.run_scheduler()
        ops.work()
        assert ops.run_reconciliation()["ccbill_calls_paused"] is True
    assert len(_ccbill_calls(ops)) == 3
    assert all(ops.operation(f"breaker-cancel-{n}")["status"] != "failed" for n in range(4))

    # The login is fixed; an operator resumes. Everything waiting runs once.
    ops.sandbox.sandbox.faults.clear()
    assert _breaker(ops).close(by="test operator", reason="DataLink password updated") is True
    [resumed] = ops.events_of("CCBillCallsResumed")
    assert resumed["detail"]["closed_by"] == "test operator"
    for _ in range(4):
        ops.run_scheduler()
        ops.work()
        ops.run_reconciliation()
    for number, subscription_id in enumerate(cancels):
        record = ops.operation(f"breaker-cancel-{number}")
        assert record["status"] == "succeeded", record
        assert ops.sandbox.subscription(subscription_id)["status"] == "cancelled"
    cancelled = [call for call in ops.calls("cancelSubscription") if call["applied"]]
    assert sorted(call["params"]["subscriptionId"] for call in cancelled) == sorted(cancels)  # each once
    assert len(ops.calls("chargeByPreviousTransactionId")) == 1  # the upgrade's -7 was never resent
    upgrade_charges = [c for c in ops.charges()
                       if ops.sandbox.subscription(c["subscription_id"])["upgraded_from"] == upgrade_of]
    assert upgrade_charges == []


def test_an_answer_that_proves_the_login_ends_the_run(ops):
    first, second = ops.new_subscription(), ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "code:-7", count=2)
    ops.send(_cancel(first, "run-1"))
    ops.work()  # cancel -7, then the status read that settles it answers normally: the run is over
    status = _breaker(ops).status()
    assert not status.open and status.consecutive_minus7 == 0
    ops.send(_cancel(second, "run-2"))
    ops.work()
    assert not _breaker(ops).status().open
    assert ops.events_of("CCBillCallsPaused") == []


def test_the_breaker_is_shared_by_every_worker_and_counts_concurrent_minus_7s(ops):
    # Two containers' breakers over the same item: their counts add up, and only one opens it.
    store = CCBillBreakerStore(ops.names["operations_table"], ops.dynamodb)
    published: list[str] = []
    one = CircuitBreaker(store, 3, publish=lambda kind, detail: published.append(kind))
    two = CircuitBreaker(store, 3, publish=lambda kind, detail: published.append(kind))
    sub = ops.new_subscription()
    ops.sandbox.add_fault("*", "code:-7", count=3)
    from billops.ccbill.client import CCBillClient

    # Two containers' clients, configured from the fixture's environment (the sandbox).
    clients = [CCBillClient.from_env(breaker=one), CCBillClient.from_env(breaker=two)]
    assert clients[0].cancel_subscription(sub).code == -7
    assert clients[1].cancel_subscription(sub).code == -7
    assert not one.status().open
    assert clients[0].cancel_subscription(sub).code == -7
    assert two.status().open and published == ["CCBillCallsPaused"]
    refused = clients[1].view_subscription_status(sub)
    assert refused.failed and refused.kind.value == "circuit_open" and "not sent" in refused.meaning
    assert len(ops.calls("viewSubscriptionStatus")) == 0
    item = ops.dynamodb.get_item(TableName=ops.names["operations_table"],
                                 Key={"operation_id": {"S": BREAKER_KEY}})["Item"]
    assert "status" not in item and "subscription_id" not in item  # no index of the table sees it
