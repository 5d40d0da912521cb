"""Deferred operations (run_at), the scheduler's due sweep, and the reconciliation job's other duties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billops.domain_events.publishing import DomainEventsUnavailable
from billops.operations.operation_records import parse_iso


def test_a_deferred_operation_is_carried_out_when_its_time_comes(ops):
    subscription_id = ops.new_subscription()
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    ops.send({"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": "later",
              "run_at": run_at.isoformat(), "parameters": {"new_recurring_price": "14.95"}})
    ops.work()
    record = ops.operation("later")
    assert record["status"] == "scheduled" and parse_iso(record["due_at"]) == run_at
    assert ops.calls("discountSubscription") == []

    assert ops.run_scheduler() == {"enqueued": 0, "skipped": 0, "failed": 0}  # not due yet
    ops.work()
    assert ops.operation("later")["status"] == "scheduled"

    ops.wait(max(0.0, (run_at - datetime.now(UTC)).total_seconds()) + 0.1)
    assert ops.run_scheduler()["enqueued"] == 1
    assert ops.operation("later")["status"] == "queued"
    ops.work()
    record = ops.operation("later")
    assert record["status"] == "succeeded"
    assert parse_iso(record["call_started_at"]) >= run_at
    [call] = ops.calls("discountSubscription")
    assert call["params"]["newRecurringPrice"] == "14.95"
    assert ops.sandbox.subscription(subscription_id)["recurring_price"] == "14.95"
    assert ops.run_scheduler()["enqueued"] == 0  # nothing waits any more


def test_a_past_run_at_runs_at_once(ops):
    subscription_id = ops.new_subscription()
    ops.send({"operation_type": "refresh", "subscription_id": subscription_id, "idempotency_key": "past",
              "run_at": "2020-01-01T00:00:00+00:00"})
    ops.work()
    assert ops.operation("past")["status"] == "succeeded"


def test_stale_subscriptions_are_refreshed_by_the_reconciliation_job(ops, monkeypatch):
    subscription_id = ops.new_subscription()
    monkeypatch.setenv("BILLOPS_RECONCILE_REFRESH_LIMIT", "5")
    ops.reload("reconciliation")
    assert ops.run_reconciliation()["refreshes_enqueued"] == 1
    ops.work()
    view = ops.subscription(subscription_id)["ccbill_view"]
    assert view["subscriptionStatus"] == "2"
    refresh = [op for op in ops.operations() if op.get("operation_type") == "refresh"]
    assert [op["status"] for op in refresh] == ["succeeded"] and refresh[0]["suppress_domain_events"] is True
    assert ops.events_of("OperationSucceeded", refresh[0]["operation_id"]) == []
    assert ops.run_reconciliation()["refreshes_enqueued"] == 0  # fresh now


def test_events_eventbridge_refused_are_published_by_the_reconciliation_job(ops):
    subscription_id = ops.new_subscription()
    publisher = ops.services().writer.publisher
    original = publisher.publish
    refused = {"count": 0}

    def publish(events):
        if not refused["count"]:
            refused["count"] += 1
            raise DomainEventsUnavailable("simulated EventBridge outage")
        return original(events)

    publisher.publish = publish
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "outbox"})
    ops.work()
    record = ops.operation("outbox")
    assert record["status"] == "succeeded" and len(record["pending_events"]) == 1
    assert ops.events_of("OperationSucceeded", record["operation_id"]) == []

    assert ops.run_reconciliation()["events_flushed"] == 1
    assert "pending_events" not in ops.operation("outbox")
    [event] = ops.events_of("OperationSucceeded", record["operation_id"])
    assert event["detail"]["event_id"] == f"{record['operation_id']}:OperationSucceeded:1"


def test_the_scheduler_requeues_retries_with_a_new_deduplication_id(ops):
    subscription_id = ops.new_subscription()
    ops.sandbox.add_fault("cancelSubscription", "code:-23", count=2)
    ops.send({"operation_type": "cancel", "subscription_id": subscription_id, "idempotency_key": "requeued"})
    for _ in range(3):  # within SQS's five-minute deduplication window: each re-send must still arrive
        ops.work()
        ops.run_scheduler()
    ops.work()
    record = ops.operation("requeued")
    assert record["status"] == "succeeded" and record["attempt"] == 3
    assert [entry["code"] for entry in record["attempts_log"]] == [-23, -23, 1]
