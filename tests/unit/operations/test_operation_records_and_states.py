"""Operation IDs, request hashes, new records, the retry policy and the state machine's table."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from billops import operation_states as states
from billops.operations.operation_messages import parse_message
from billops.operations.operation_records import (
    iso,
    new_record,
    operation_id_for,
    parse_iso,
    rejection_id_for,
    rejection_record,
    request_hash,
)
from billops.operations.retry_policy import RetryPolicy

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _discount(key: str = "k-1", **extra):
    return parse_message(json.dumps({"operation_type": "discount", "subscription_id": "0126", "idempotency_key": key,
                                     "parameters": {"discount_amount": "2.00"}, **extra}))


def test_operation_ids_are_derived_from_the_idempotency_key():
    assert operation_id_for("order-42") == operation_id_for("order-42")
    assert operation_id_for("order-42") != operation_id_for("order-43")
    assert re.fullmatch(r"op_[a-z2-7]{26}", operation_id_for("order-42"))
    assert rejection_id_for("garbage").startswith("op_rej_")


def test_the_request_hash_ignores_the_key_but_not_the_request():
    assert request_hash(_discount("a")) == request_hash(_discount("b"))
    assert request_hash(_discount()) != request_hash(_discount(run_at="2026-03-02T00:00:00Z"))
    assert request_hash(_discount()) != request_hash(_discount(suppress_domain_events=True))
    other = parse_message(json.dumps({"operation_type": "discount", "subscription_id": "0126", "idempotency_key": "a",
                                      "parameters": {"discount_amount": "2.01"}}))
    assert request_hash(other) != request_hash(_discount("a"))


def test_a_new_record_is_queued_or_scheduled():
    queued = new_record(_discount(), NOW, max_attempts=5)
    assert queued["status"] == "queued" and "waiting" not in queued and queued["attempt"] == 0
    assert queued["operation_id"] == operation_id_for("k-1")
    assert json.loads(queued["message"])["parameters"] == {"discount_amount": "2.00"}
    later = new_record(_discount(run_at=(NOW + timedelta(hours=1)).isoformat()), NOW, max_attempts=5)
    assert later["status"] == "scheduled" and later["waiting"] == "1"
    assert later["due_at"] == iso(NOW + timedelta(hours=1))
    past = new_record(_discount(run_at=(NOW - timedelta(hours=1)).isoformat()), NOW, max_attempts=5)
    assert past["status"] == "queued"


def test_a_rejection_keeps_no_body():
    body = '{"operation_type": "discount", "email": "jane@example.com", "idempotency_key": "k"}'
    record = rejection_record(body, "bad", "parameters", NOW, json.loads(body))
    assert record["status"] == "rejected" and record["idempotency_key"] == "k"
    assert "jane@example.com" not in json.dumps(record)


def test_timestamps_sort_as_text_in_time_order():
    early, late = iso(NOW), iso(NOW + timedelta(microseconds=1))
    assert early < late and len(early) == len(late)
    assert parse_iso(early) == NOW
    assert parse_iso("2026-03-01T12:00:00Z") == NOW
    assert parse_iso("2026-03-01T13:00:00+01:00") == NOW
    assert parse_iso("nonsense") is None


def test_retry_delays_grow_exponentially_with_full_jitter_up_to_the_cap():
    highest = RetryPolicy(base_seconds=10, cap_seconds=100, uniform=lambda low, high: high)
    assert [highest.delay_seconds(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 100]
    lowest = RetryPolicy(base_seconds=10, cap_seconds=100, uniform=lambda low, high: low)
    assert lowest.delay_seconds(3) == 0
    assert lowest.delay_seconds(1, retry_after_seconds=3600) == 3600  # CCBill's own wait (-12) wins
    assert RetryPolicy().delay_seconds(3) <= 120
    policy = RetryPolicy(max_attempts=3)
    assert policy.may_retry(2) and not policy.may_retry(3) and policy.may_retry(3, max_attempts=4)
    assert highest.due_at(NOW, 1) == NOW + timedelta(seconds=10)


def test_the_transition_table_allows_only_the_documented_moves():
    states.check_transition(("queued",), "in_progress")
    states.check_transition(("scheduled", "retry_wait"), "queued")
    states.check_transition(("unknown",), "unknown")  # escalation
    states.check_transition(("failed",), "succeeded")  # an expired window proven used
    for source, target in [("succeeded", "failed"), ("rejected", "queued"), ("queued", "succeeded"),
                           ("unknown", "in_progress"), ("awaiting_consumer", "retry_wait"), ("failed", "queued")]:
        with pytest.raises(states.IllegalTransition):
            states.check_transition((source,), target)
    assert set(states.TRANSITIONS) == states.ALL_STATUSES
    assert set(states.API_STATUS) == states.ALL_STATUSES
    assert set(states.API_STATUS.values()) <= {"queued", "in_progress", "succeeded", "failed", "unknown"}
