"""Webhooks under duress: 10,000 deliveries with 20% duplicates, shuffled, both formats, posted concurrently to the
local stack whose DynamoDB throttles and fails a share of the receiver's writes (some of them after writing).

CCBill's behaviour is played by ``webhook_traffic.post_like_ccbill``: a 5xx or a timeout is delivered again. What
must hold afterwards:
  * every delivery was eventually answered 2xx (none given up), none 4xx;
  * every 2xx answer names the delivery's key, and that key is in the events table - once (the table holds exactly
    the distinct events, nothing quarantined) with the fields of the event: nothing answered 2xx is lost;
  * once the stream projector has drained, every subscription's record equals the one a clean, ordered run of the
    same events (no duplicates, no faults) gives through the same intake and projection code - minus our clocks.

The deliveries come from the CCBill sandbox's generator in its varied mode (webhook_traffic.py): any format, any
version of each event type, and the variations real deliveries show, drawn from a seed printed in the figures.

Sizes: BILLOPS_RELIABILITY_WEBHOOK_DELIVERIES (10000), _SUBSCRIPTIONS (2000), _DUPLICATES (0.2), _THREADS (4);
faults: BILLOPS_RELIABILITY_WEBHOOK_FAULTS (see billops_local.dynamodb_fault_injection); the traffic's seed:
BILLOPS_RELIABILITY_WEBHOOK_SEED (else BILLOPS_SANDBOX_SEED, else random: replay a run with the seed it printed);
variation: BILLOPS_RELIABILITY_WEBHOOK_VARIATION (varied; off = the newest documented shape, plain values).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from reliability_stack import (
    EVENTS_TABLE,
    PURGEABLE_TAP,
    SUBSCRIPTIONS_TABLE,
    DomainEventsPurger,
    running_stack,
)
from support.waiting import eventually
from webhook_traffic import (
    build_traffic,
    clean_ordered_run,
    comparable,
    differences,
    in_clear,
    post_like_ccbill,
)

DELIVERIES = int(os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_DELIVERIES", "10000"))
SUBSCRIPTIONS = int(os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_SUBSCRIPTIONS", str(max(1, DELIVERIES // 5))))
DUPLICATE_SHARE = float(os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_DUPLICATES", "0.2"))
THREADS = int(os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_THREADS", "4"))
FAULTS = os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_FAULTS",
                        "throttle:0.03,error:0.02,error_after:0.02,repeat:0.4,backoff_scale:0.05,seed:11")
SEED = int(os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_SEED") or os.environ.get("BILLOPS_SANDBOX_SEED")
           or int.from_bytes(os.urandom(4), "big") % 10**9)
VARIATION = os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_VARIATION", "varied")
DRAIN_TIMEOUT_SECONDS = 900
TOKEN = "reliability-webhook-token"


@pytest.fixture
def faulty_stack(tmp_path):
    report = tmp_path / "dynamodb-faults.json"
    settings = {
        "BILLOPS_LOCAL_DYNAMODB_FAULTS": FAULTS,
        "BILLOPS_LOCAL_DYNAMODB_FAULTS_REPORT": str(report),
        "BILLOPS_LOCAL_SCHEDULE_SECONDS": "0",  # no reconciliation job: nothing but webhooks writes subscriptions
        "BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": "1",
        **PURGEABLE_TAP,
    }
    for stack in running_stack("webhooks", settings, webhook_token=TOKEN):
        stack.fault_report = report
        yield stack


@contextlib.contextmanager
def personal_data_key_of(stack) -> Iterator[object]:
    """While the in-process reference run encrypts personal fields (billops.privacy.field_encryption), it does so
    under a key of the stack's own KMS (moto), and this FieldCipher opens the data keys of both runs."""
    from billops.privacy.field_encryption import FieldCipher, reset_default_cipher
    from billops.storage.aws_clients import reset_clients

    kms = stack.client("kms")
    key_id = kms.create_key(Description="reliability suite: the reference run's personal-data key")[
        "KeyMetadata"]["KeyId"]
    variables = {"BILLOPS_PII_KEY_ID": key_id, "AWS_ENDPOINT_URL": stack.aws_endpoint,
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    reset_default_cipher()
    reset_clients()
    try:
        yield FieldCipher(key_id, lambda: kms)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_default_cipher()
        reset_clients()


def delivery_key_secret_of(stack) -> str | None:
    """The stack's DeliveryKeySecret (generated in its moto at start), which keys deliveries without a transaction."""
    secrets = stack.client("secretsmanager")
    names = [entry["Name"] for page in secrets.get_paginator("list_secrets").paginate()
             for entry in page["SecretList"] if "DeliveryKeySecret" in entry["Name"]]
    return secrets.get_secret_value(SecretId=names[0])["SecretString"] if names else None


def _projected_counts(stack) -> dict[str, int]:
    items = stack.scan(SUBSCRIPTIONS_TABLE, ProjectionExpression="subscription_id, event_count")
    return {item["subscription_id"]: int(item.get("event_count", 0)) for item in items}


@pytest.mark.timeout(1800)
def test_ten_thousand_shuffled_duplicated_deliveries_under_dynamodb_faults(faulty_stack, report_figures):
    started = time.monotonic()
    print(f"webhook traffic: variation {VARIATION}, seed {SEED} (replay: BILLOPS_RELIABILITY_WEBHOOK_SEED={SEED})")
    lifecycles, traffic = build_traffic(SUBSCRIPTIONS, DELIVERIES, DUPLICATE_SHARE, SEED, VARIATION)
    with personal_data_key_of(faulty_stack) as cipher:  # the cipher opens the stack's data keys afterwards too
        reference = clean_ordered_run(lifecycles, TOKEN, delivery_key_secret_of(faulty_stack))
    expected_counts = {sid: len(events) for sid, events in lifecycles.items()}
    unique_events = sum(expected_counts.values())

    with DomainEventsPurger(faulty_stack):
        posting = post_like_ccbill(faulty_stack.webhook_url, TOKEN, traffic, threads=THREADS)
        drain_started = time.monotonic()
        try:
            eventually(lambda: _projected_counts(faulty_stack) == expected_counts, DRAIN_TIMEOUT_SECONDS,
                       interval=10, what="the stream projector to fold every stored delivery")
        finally:
            drain_seconds = time.monotonic() - drain_started
    faults = json.loads(faulty_stack.fault_report.read_text())

    stored_items = faulty_stack.scan(EVENTS_TABLE)
    deliveries = [item for item in stored_items if item.get("record_type") == "delivery"]
    quarantined = [item for item in stored_items if item.get("record_type") != "delivery"]
    stored = {item["pk"]: item for item in deliveries}
    records = faulty_stack.subscription_records()

    answered = [delivery for delivery in traffic if delivery.answered_2xx]
    wrong_key = [d for d in answered if d.answer is None or d.answer.get("id") != reference.keys[d.event]]
    answered_keys = {reference.keys[d.event] for d in answered}
    unstored = answered_keys - set(stored)
    content_mismatches = [key for key, item in stored.items() if key in reference.events and any(
        in_clear(item, cipher).get(name) != in_clear(reference.events[key], cipher).get(name)
        for name in ("event_type", "subscription_id", "transaction_id", "occurred_at", "fields", "subscriber",
                     "known_type", "detected_version"))]
    unexpected = set(stored) - set(reference.events)
    unprojected = set(stored) - {entry["key"] for record in records.values() for entry in record.get("history", [])}
    mismatched = {}
    for sid, expected in reference.subscriptions.items():
        actual = records.get(sid)
        diff = (differences(comparable(expected, cipher), comparable(actual, cipher)) if actual
                else {"record": ("present", None)})
        if diff:
            mismatched[sid] = diff
    status_counts = Counter(posting.statuses)
    five_xx = sum(count for status, count in status_counts.items() if isinstance(status, int) and status >= 500)
    four_xx = sum(count for status, count in status_counts.items() if isinstance(status, int) and 400 <= status < 500)
    transport = sum(count for status, count in status_counts.items() if not isinstance(status, int))
    duplicates = sum(1 for delivery in traffic if delivery.duplicate)
    answered_duplicate = sum(1 for d in answered if d.answer and d.answer.get("duplicate") is True)

    variations = Counter(name for lifecycle in lifecycles.values() for event in lifecycle
                         for name in event.delivery.variations)
    figures = {
        "seed": SEED, "variation": VARIATION,
        "varied_deliveries": sum(1 for lifecycle in lifecycles.values() for event in lifecycle
                                 if event.delivery.variations),
        "variations": "/".join(f"{name}:{count}" for name, count in sorted(variations.items())) or "none",
        "subscriptions": len(lifecycles), "deliveries": len(traffic), "duplicates": duplicates,
        "unique_events": unique_events, "posts": posting.posts, "redeliveries": posting.redeliveries,
        "faults_injected": faults["faults"], "throttles": faults["throttle"], "errors": faults["error"],
        "errors_after_write": faults["error_after"], "fault_retries": faults["repeated"],
        "put_items": faults["put_items"], "answered_5xx": five_xx, "answered_4xx": four_xx,
        "transport_errors": transport, "gave_up": len(posting.gave_up), "answered_2xx": len(answered),
        "answered_duplicate": answered_duplicate, "stored": len(stored), "quarantined": len(quarantined),
        "lost": len(unstored) + len(unprojected), "state_mismatches": len(mismatched),
        "posting_seconds": round(posting.seconds), "drain_seconds": round(drain_seconds),
        "seconds": round(time.monotonic() - started),
    }
    details = "\n".join(f"{sid}: {diff}" for sid, diff in list(mismatched.items())[:20])
    report_figures("webhooks", figures, details)

    assert not posting.gave_up, f"{len(posting.gave_up)} deliveries never got a 2xx: {posting.gave_up[:3]}"
    assert four_xx == 0, status_counts
    assert len(answered) == len(traffic)
    assert not wrong_key, f"{len(wrong_key)} answers name another key, e.g. {wrong_key[:3]}"
    assert not unstored, f"answered 2xx but not stored: {sorted(unstored)[:10]}"
    assert not quarantined, quarantined[:3]
    assert not unexpected, sorted(unexpected)[:10]
    assert len(stored) == unique_events == len(reference.events)
    assert not content_mismatches, content_mismatches[:10]
    assert not unprojected, sorted(unprojected)[:10]
    assert set(records) == set(reference.subscriptions)
    assert not mismatched, details
    assert faults["faults"] > 0 and five_xx > 0, "the run injected no fault CCBill could see"
