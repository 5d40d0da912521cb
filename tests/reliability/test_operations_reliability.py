"""Operations under duress: 1,000 operations against the CCBill sandbox through the local stack, with CCBill
misbehaving (-7, timeouts before and after applying, HTTP 500, redirects after applying), our worker dying between
the CCBill call and the record update, messages delivered twice, and once a run of -7 answers that pauses every CCBill
call until an operator resumes (`billops ccbill resume`, the CLI as a subprocess).

The operations (upgrades by API, discounts, cancellations, extensions, refreshes, refunds, voids) go on the FIFO
OperationsQueue as
the merchant's systems would send them (group = subscription, deduplication ID = idempotency key), spread over
subscriptions created in the sandbox, in waves; before each wave more faults are queued at the sandbox. The stack
runs the real worker, scheduler, reconciliation job, receiver and projector; its worker crashes after the first
calls of each changing action (billops_local.worker_faults) and its lease is a few seconds.

What must hold:
  * every operation ends succeeded or failed, or unknown and escalated to a person - none left open;
  * zero double charges: at most one upgrade charge in the sandbox's ledger per upgrade request, and a succeeded
    upgrade names the charged subscription; never a second applied chargeByPreviousTransactionId for one request;
  * nothing else applied twice: per subscription, no more price decreases than discount requests and no more applied
    extensions than extension requests;
  * zero double refunds / voids: per subscription, no more refunds (voids) in the ledger, nor applied
    refundTransaction (voidTransaction) calls, than refund (void) requests;
  * the -7 breaker: once open, no call reaches CCBill but those already in flight; the operations wait (none fails
    for it) and end once resumed;
  * cancel_original (half the upgrades ask for it): exactly one cancellation operation per upgrade that succeeded,
    none for an upgrade that did not (never a cancel before the upgrade is known to have succeeded), each settled;
  * one record per idempotency key, whatever was delivered twice.

Sizes: BILLOPS_RELIABILITY_OPERATIONS (1000), BILLOPS_RELIABILITY_OPERATION_SUBSCRIPTIONS (300).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from billops.operations.operation_queue import enqueue
from billops.operations.operation_records import operation_id_for
from reliability_stack import (
    OPERATIONS_QUEUE,
    OPERATIONS_TABLE,
    PURGEABLE_TAP,
    SANDBOX_SEED,
    SUBSCRIPTIONS_TABLE,
    VARIED_SANDBOX,
    DomainEventsPurger,
    running_stack,
)
from support.waiting import eventually

OPERATIONS = int(os.environ.get("BILLOPS_RELIABILITY_OPERATIONS", "1000"))
SUBSCRIPTIONS = int(os.environ.get("BILLOPS_RELIABILITY_OPERATION_SUBSCRIPTIONS", str(max(1, OPERATIONS * 3 // 10))))
SEED = 7
RUN = f"rel{int(time.time()) % 100000:05d}"
CHARGE, DISCOUNT, CANCEL, EXTEND, VIEW = ("chargeByPreviousTransactionId", "discountSubscription",
                                          "cancelSubscription", "extendSubscription", "viewSubscriptionStatus")
REFUND, VOID = "refundTransaction", "voidTransaction"
CRASH_COUNTS = {CHARGE: 12, DISCOUNT: 12, CANCEL: 8, EXTEND: 8, REFUND: 4, VOID: 2}
BREAKER_THRESHOLD = 3
WAVES = 10
BREAKER_WAVE = WAVES // 2  # the wave during which a run of -7 opens the breaker
WORKERS = 4
CRASH_LOG_LINE = "local fault: simulated crash after"
TIMEOUT_FAULT_SECONDS = 3  # longer than the worker's read timeout below: the client gives up first
FAULTS_PER_WAVE = [
    (CHARGE, "code:-7"), (CHARGE, "timeout_before"), (CHARGE, "timeout_after"), (CHARGE, "http_500"),
    (DISCOUNT, "code:-7"), (DISCOUNT, "timeout_before"), (DISCOUNT, "timeout_after"), (DISCOUNT, "http_500"),
    (CANCEL, "timeout_after"), (CANCEL, "http_500"),
    (EXTEND, "timeout_before"), (EXTEND, "timeout_after"), (EXTEND, "code:-7"),
    (VIEW, "http_500"),
    (REFUND, "code:-7"), (REFUND, "timeout_after"), (REFUND, "http_302"), (VOID, "timeout_before"), (VOID, "http_302"),
    (CANCEL, "http_302"),
]
SETTLE_TIMEOUT_SECONDS = 600
BASE_SUBSCRIPTION = {"client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95",
                     "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30, "rebills": 99,
                     "currency_code": "840"}
GOLD = {"method": "charge_by_previous_transaction", "upgrade": "gold"}
TERMINAL = ("cancel", "refund", "void")  # the subscription ends (a refund or void ends it at CCBill)


@pytest.fixture
def operations_stack():
    settings = {
        "BILLOPS_LOCAL_FAULTS": ",".join(f"crash_after_call:{action}:{count}" for action, count in CRASH_COUNTS.items()),
        "BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": "1",
        "BILLOPS_LOCAL_SCHEDULE_SCALE": "1/60",  # scheduler every 1 s, reconciliation every 15 s
        "BILLOPS_SETTLE_WINDOW_SECONDS": "5",
        "BILLOPS_CCBILL_CONNECT_TIMEOUT": "1",
        "BILLOPS_CCBILL_READ_TIMEOUT": "2",
        "BILLOPS_OPERATION_RETRY_BASE_SECONDS": "1",
        "BILLOPS_OPERATION_RETRY_CAP_SECONDS": "4",
        "BILLOPS_RECONCILE_REFRESH_LIMIT": "0",  # no stale-subscription refreshes: only our 1,000 operations
        # Four workers (the template's default is 2): a worker waiting out a timeout fault holds no one else up.
        "BILLOPS_LOCAL_PARAMETER_OVERRIDES": f"WorkerConcurrency={WORKERS} CCBillBreakerThreshold={BREAKER_THRESHOLD}",
        "BILLOPS_OPERATION_PAUSED_RECHECK_SECONDS": "2",
        **VARIED_SANDBOX,  # the sandbox's webhooks (sales, upgrades, cancellations...) varied, from a printed seed
        **PURGEABLE_TAP,
    }
    # A lease longer than a claim-to-outcome (read timeout 2 s), far shorter than the template's 180 s, so that a
    # crashed worker's claim runs out while the suite waits.
    yield from running_stack("operations", settings, function_environment={"BILLOPS_OPERATION_LEASE_SECONDS": "6"},
                             count_lines_with=(CRASH_LOG_LINE,))


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        answer = self.http.request(method, f"{self.url}{path}", json=body, timeout=60)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text[:300]}"
        return answer.json()


def _plan(rng: random.Random, subscription_ids: list[str], total: int) -> list[dict[str, Any]]:
    """``total`` operations: per subscription a short, sensible sequence (refreshes, extensions, discounts, at most
    one upgrade, maybe a final cancellation), interleaved across subscriptions keeping each one's order; a few aim at
    subscriptions CCBill does not know."""
    per_subscription: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ids = list(subscription_ids)
    strangers = [f"0126999902{n:09d}" for n in range(max(1, total // 100))]
    count = 0
    while count < total:
        sid = rng.choice(ids + strangers if rng.random() < 0.02 else ids)
        ops = per_subscription[sid]
        if ops and (ops[-1]["operation_type"] in TERMINAL or len(ops) >= 12):
            continue
        kinds = ["refresh", "extend", "discount"]
        if not any(op["operation_type"] == "upgrade" for op in ops):
            kinds += ["upgrade", "upgrade"]
        if len(ops) >= 2:
            kinds += ["cancel", "refund", "void"] if rng.random() < 0.5 else ["cancel"]
        kind = rng.choice(kinds)
        message: dict[str, Any] = {"operation_type": kind, "subscription_id": sid,
                                   "idempotency_key": f"{RUN}-{sid}-{len(ops)}-{kind}"}
        if kind == "upgrade":
            message["parameters"] = {**GOLD, "cancel_original": True} if rng.random() < 0.5 else GOLD
        elif kind == "discount":
            message["parameters"] = ({"discount_amount": rng.choice(["0.50", "1.00", "2.00"])} if rng.random() < 0.7
                                     else {"new_recurring_price": rng.choice(["18.95", "17.95", "16.95"])})
        elif kind == "extend":
            message["parameters"] = {"days": rng.randint(1, 30)}
        elif kind == "refund" and rng.random() < 0.5:
            message["parameters"] = {"amount": rng.choice(["1.00", "5.00"])}
        ops.append(message)
        count += 1
    # A random merge that keeps each subscription's own order.
    queues = {sid: list(ops) for sid, ops in per_subscription.items()}
    weighted = [sid for sid, ops in queues.items() for _ in ops]
    rng.shuffle(weighted)
    return [queues[sid].pop(0) for sid in weighted]


def _settled(record: dict[str, Any] | None) -> bool:
    return bool(record) and (record.get("status") in ("succeeded", "failed", "rejected")
                             or (record.get("status") == "unknown" and record.get("escalated") is True))


@pytest.mark.timeout(1800)
def test_a_thousand_operations_with_ccbill_faults_crashes_and_duplicates(operations_stack, report_figures):
    stack = operations_stack
    started = time.monotonic()
    rng = random.Random(SEED)
    sandbox = Sandbox(stack.sandbox_url)
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=OPERATIONS_QUEUE)["QueueUrl"]

    breaker = Breaker(stack, sandbox)
    with DomainEventsPurger(stack):
        # 1. Subscriptions at CCBill; their NewSaleSuccess webhooks reach our subscriptions table (prices known).
        subscription_ids = [sandbox.call("POST", "/sandbox/subscriptions", BASE_SUBSCRIPTION, expect=201)[
            "subscription_id"] for _ in range(SUBSCRIPTIONS)]
        eventually(lambda: len(stack.scan(SUBSCRIPTIONS_TABLE, ProjectionExpression="subscription_id"))
                   >= SUBSCRIPTIONS, 300, interval=2, what="every NewSaleSuccess to be projected")

        # 2. The operations, in waves, with faults queued at CCBill before each wave and duplicates.
        plan = _plan(rng, subscription_ids, OPERATIONS)
        wave_size = -(-len(plan) // WAVES)
        same_id_repeats = other_id_repeats = 0
        late_repeats: list[dict[str, Any]] = []
        for wave in range(WAVES):
            for action, mode in FAULTS_PER_WAVE:
                fault = {"action": action, "mode": mode, "count": 1}
                if mode.startswith("timeout"):
                    fault["seconds"] = TIMEOUT_FAULT_SECONDS
                sandbox.call("POST", "/sandbox/faults", fault, expect=201)
            for message in late_repeats:  # sent again under another deduplication ID: SQS delivers it
                sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message),
                                 MessageGroupId=message["subscription_id"],
                                 MessageDeduplicationId=f"{message['idempotency_key']}:again")
                other_id_repeats += 1
            late_repeats = []
            if wave == BREAKER_WAVE:  # the DataLink password "changed": every call answers -7 for a while
                sandbox.call("POST", "/sandbox/faults", {"action": "*", "mode": "code:-7",
                                                         "count": BREAKER_THRESHOLD + 2 * WORKERS}, expect=201)
            for message in plan[wave * wave_size:(wave + 1) * wave_size]:
                enqueue(message, queue_url=queue_url, sqs=sqs)
                draw = rng.random()
                if draw < 0.05:  # the sender retries at once: same deduplication ID, SQS drops it
                    enqueue(message, queue_url=queue_url, sqs=sqs)
                    same_id_repeats += 1
                elif draw < 0.10:
                    late_repeats.append(message)
            if wave == BREAKER_WAVE:
                breaker.deliberate(sandbox)
            breaker.resume_if_paused()
            eventually(lambda: _depth(sqs, queue_url) < wave_size // 2, 300, interval=1,
                       what=f"wave {wave + 1} to be taken by the workers")
        for message in late_repeats:
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message),
                             MessageGroupId=message["subscription_id"],
                             MessageDeduplicationId=f"{message['idempotency_key']}:again")
            other_id_repeats += 1
        sent_seconds = time.monotonic() - started

        # 3. Wait for every operation to end (final, or escalated), running the reconciliation job meanwhile.
        wanted = {operation_id_for(message["idempotency_key"]): message for message in plan}
        last_reconciliation = [time.monotonic()]

        def all_settled() -> bool:
            records = _records(stack)
            open_ones = [oid for oid in wanted if not _settled(records.get(oid))]
            breaker.resume_if_paused()
            # ... and the cancellations the succeeded cancel_original upgrades asked for, queued and ended.
            cancels = _cancel_original_records(records)
            open_ones += [oid for oid in wanted if _wants_cancel(wanted[oid], records.get(oid)) and (
                oid not in cancels or not _settled(cancels[oid]))]
            if open_ones and time.monotonic() - last_reconciliation[0] > 6:
                stack.trigger_schedule("ReconciliationFunction")
                last_reconciliation[0] = time.monotonic()
            return not open_ones

        try:
            eventually(all_settled, SETTLE_TIMEOUT_SECONDS, interval=3, what="every operation to end")
        except AssertionError:
            pass  # reported (unsettled) and asserted below, with the figures
        settle_seconds = time.monotonic() - started - sent_seconds
        sandbox.call("DELETE", "/sandbox/faults")
        time.sleep(2)  # webhooks of the last calls
        records = _records(stack)
        calls = sandbox.call("GET", "/sandbox/calls")
        ledger = sandbox.call("GET", "/sandbox/ledger")
        at_ccbill = {sub["subscription_id"]: sub for sub in sandbox.call("GET", "/sandbox/subscriptions")}

    # --- outcomes -------------------------------------------------------------------------------------------------
    ours = {oid: records.get(oid) for oid in wanted}
    unsettled = {oid: (record or {}).get("status") for oid, record in ours.items() if not _settled(record)}
    outcome = Counter("escalated" if (r or {}).get("escalated") else (r or {}).get("status", "missing")
                      for r in ours.values())
    duplicate_records = len([r for r in records.values() if r.get("idempotency_key", "").startswith(RUN)]) - len(
        [r for r in ours.values() if r])

    # --- money: one charge per upgrade request at most --------------------------------------------------------------
    upgrades_by_original = Counter(m["subscription_id"] for m in plan if m["operation_type"] == "upgrade")
    upgraded = defaultdict(list)
    for sub in at_ccbill.values():
        if sub.get("upgraded_from"):
            upgraded[sub["upgraded_from"]].append(sub["subscription_id"])
    charges_by_original = Counter()
    for entry in ledger:
        if entry["kind"] == "charge":
            for original, new_ids in upgraded.items():
                if entry["subscription_id"] in new_ids:
                    charges_by_original[original] += 1
    double_charges = sum(max(0, charges_by_original[o] - upgrades_by_original[o]) for o in charges_by_original)
    applied_charges = Counter(call["params"].get("subscriptionId") for call in calls
                              if call["action"] == CHARGE and call.get("applied"))
    double_charge_calls = sum(max(0, n - upgrades_by_original[o]) for o, n in applied_charges.items())
    wrong_upgrade_links = []
    for oid, message in wanted.items():
        record = ours[oid] or {}
        if message["operation_type"] == "upgrade":
            charged = upgraded.get(message["subscription_id"], [])
            if record.get("status") == "succeeded" and record.get("new_subscription_id") not in charged:
                wrong_upgrade_links.append(oid)
            if record.get("status") == "failed" and charges_by_original[message["subscription_id"]]:
                wrong_upgrade_links.append(oid)
    escalated_charged = sum(1 for oid, m in wanted.items() if m["operation_type"] == "upgrade"
                            and (ours[oid] or {}).get("escalated") and charges_by_original[m["subscription_id"]])

    # --- nothing else applied twice -------------------------------------------------------------------------------------
    discount_requests = Counter(m["subscription_id"] for m in plan if m["operation_type"] == "discount")
    double_discounts = sum(max(0, sum(1 for d in sub.get("discounts", []) if float(d["to"]) < float(d["from"]))
                               - discount_requests[sid]) for sid, sub in at_ccbill.items())
    extend_requests = Counter(m["subscription_id"] for m in plan if m["operation_type"] == "extend")
    applied_extensions = Counter(call["params"].get("subscriptionId") for call in calls
                                 if call["action"] == EXTEND and call.get("applied"))
    double_extensions = sum(max(0, n - extend_requests[sid]) for sid, n in applied_extensions.items())

    # --- money back: one refund / void per request at most --------------------------------------------------------------
    double_money_back = {}
    for kind, action in (("refund", REFUND), ("void", VOID)):
        requests_of = Counter(m["subscription_id"] for m in plan if m["operation_type"] == kind)
        in_ledger = Counter(entry["subscription_id"] for entry in ledger if entry["kind"] == kind)
        applied = Counter(call["params"].get("subscriptionId") for call in calls
                          if call["action"] == action and call.get("applied"))
        double_money_back[kind] = (sum(max(0, n - requests_of[sid]) for sid, n in in_ledger.items())
                                   + sum(max(0, n - requests_of[sid]) for sid, n in applied.items()))
        double_money_back[f"{kind}s_in_ledger"] = sum(in_ledger.values())
    failed_for_the_breaker = [oid for oid, record in ours.items() if (record or {}).get("status") == "failed"
                              and "paused" in str((record or {}).get("failure") or "")]
    # --- cancel_original: once, and only after the upgrade succeeded ------------------------------------------------
    cancels = _cancel_original_records(records)
    cancel_wanted = {oid for oid in wanted if _wants_cancel(wanted[oid], ours[oid])}
    premature_cancels = sorted(set(cancels) - cancel_wanted)
    missing_cancels = sorted(cancel_wanted - set(cancels))
    unsettled_cancels = [oid for oid, record in cancels.items() if not _settled(record)]

    faults = Counter(f"{call['action']}:{call['fault']}" for call in calls if call.get("fault"))
    crashes = stack.pattern_counts[CRASH_LOG_LINE]
    figures = {
        "sandbox_seed": SANDBOX_SEED,
        "operations": len(plan), "subscriptions": SUBSCRIPTIONS,
        "types": "/".join(f"{kind}:{n}" for kind, n in sorted(Counter(m["operation_type"] for m in plan).items())),
        "duplicates": same_id_repeats + other_id_repeats, "duplicates_same_dedup_id": same_id_repeats,
        "duplicates_new_dedup_id": other_id_repeats,
        "faults_injected": sum(faults.values()),
        "minus_7": sum(n for k, n in faults.items() if k.endswith("code:-7")),
        "timeouts_before": sum(n for k, n in faults.items() if k.endswith("timeout_before")),
        "timeouts_after": sum(n for k, n in faults.items() if k.endswith("timeout_after")),
        "http_500": sum(n for k, n in faults.items() if k.endswith("http_500")),
        "worker_crashes": crashes,
        "ccbill_calls": len(calls),
        "succeeded": outcome["succeeded"], "failed": outcome["failed"], "escalated": outcome["escalated"],
        "unsettled": len(unsettled), "duplicate_records": duplicate_records,
        "upgrade_charges": sum(charges_by_original.values()), "escalated_upgrades_charged": escalated_charged,
        "double_charges": double_charges + double_charge_calls, "wrong_upgrade_outcomes": len(wrong_upgrade_links),
        "double_discounts": double_discounts, "double_extensions": double_extensions,
        "refunds": double_money_back["refunds_in_ledger"], "voids": double_money_back["voids_in_ledger"],
        "double_refunds": double_money_back["refund"], "double_voids": double_money_back["void"],
        "breaker_openings": breaker.openings, "calls_after_opening": breaker.calls_after_opening,
        "http_302": sum(n for k, n in faults.items() if k.endswith("http_302")),
        "cancel_original_upgrades": sum(1 for m in plan if (m.get("parameters") or {}).get("cancel_original")),
        "originals_cancelled": sum(1 for r in cancels.values() if r.get("status") == "succeeded"),
        "premature_cancels": len(premature_cancels), "missing_cancels": len(missing_cancels),
        "sending_seconds": round(sent_seconds), "settling_seconds": round(settle_seconds),
        "seconds": round(time.monotonic() - started),
    }
    details = "\n".join(f"unsettled {oid}: {status}" for oid, status in list(unsettled.items())[:30])
    report_figures("operations", figures, details)

    assert not unsettled, f"{len(unsettled)} operations did not end: {list(unsettled.items())[:10]}"
    assert outcome["missing"] == 0
    assert double_charges == 0 and double_charge_calls == 0, (charges_by_original, applied_charges)
    assert not wrong_upgrade_links, [ours[oid] for oid in wrong_upgrade_links[:3]]
    assert double_discounts == 0 and double_extensions == 0
    assert double_money_back["refund"] == 0 and double_money_back["void"] == 0, double_money_back
    assert breaker.openings >= 1 and not failed_for_the_breaker
    # Once open, only calls already in flight (at most one per worker) may still reach CCBill.
    assert max(breaker.calls_after_opening or [0]) <= WORKERS, breaker.calls_after_opening
    assert not premature_cancels and not missing_cancels and not unsettled_cancels, (
        premature_cancels[:5], missing_cancels[:5], unsettled_cancels[:5])
    assert duplicate_records == 0
    assert figures["faults_injected"] > 0 and crashes > 0


class Breaker:
    """The -7 circuit breaker seen from outside: its item in the operations table, resumed through the CLI."""

    def __init__(self, stack: Any, sandbox: Sandbox) -> None:
        self.stack = stack
        self.sandbox = sandbox
        self.openings = 0
        self.calls_after_opening: list[int] = []

    def is_open(self) -> bool:
        from billops.storage.ccbill_breaker_store import BREAKER_KEY

        item = self.stack.client("dynamodb").get_item(TableName=OPERATIONS_TABLE, ConsistentRead=True,
                                                      Key={"operation_id": {"S": BREAKER_KEY}}).get("Item") or {}
        return item.get("breaker_state", {}).get("S") == "open"

    def deliberate(self, sandbox: Sandbox) -> None:
        """The wave's run of -7: wait for the breaker, watch that nothing more reaches CCBill, then resume."""
        eventually(self.is_open, 120, interval=0.5, what="the -7 run to open the circuit breaker")
        at_opening = len(sandbox.call("GET", "/sandbox/calls"))
        time.sleep(6)  # the scheduler re-sends waiting operations every 2 s meanwhile
        self.calls_after_opening.append(len(sandbox.call("GET", "/sandbox/calls")) - at_opening)
        sandbox.call("DELETE", "/sandbox/faults")  # the login is fixed (the wave's other faults go too)
        self.resume_if_paused()

    def resume_if_paused(self) -> None:
        if not self.is_open():
            return
        self.openings += 1
        env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "BILLOPS_"))}
        env.update({"BILLOPS_AWS_PORT": str(urlparse(self.stack.aws_endpoint).port),
                    "BILLOPS_API_PORT": str(urlparse(self.stack.api_url).port)})
        result = subprocess.run([sys.executable, "-m", "billops_cli", "ccbill", "resume", "--json",
                                 "--reason", "reliability suite"], env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, result.stderr


def _wants_cancel(message: dict[str, Any], record: dict[str, Any] | None) -> bool:
    """A cancel_original upgrade that succeeded: its original must be cancelled, once."""
    return (message["operation_type"] == "upgrade" and bool((message.get("parameters") or {}).get("cancel_original"))
            and (record or {}).get("status") == "succeeded")


def _cancel_original_records(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """upgrade operation ID -> the record of its original's cancellation (key ``cancel-original:<upgrade id>``)."""
    found: dict[str, dict[str, Any]] = {}
    for record in records.values():
        key = str(record.get("idempotency_key") or "")
        if key.startswith("cancel-original:"):
            upgrade_id = key.split(":", 1)[1]
            assert upgrade_id not in found, f"two cancellations for {upgrade_id}"
            found[upgrade_id] = record
    return found


def _depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _records(stack) -> dict[str, dict[str, Any]]:
    return {item["operation_id"]: item for item in stack.scan(
        OPERATIONS_TABLE, ProjectionExpression="operation_id, idempotency_key, #s, escalated, new_subscription_id, "
                                               "operation_type, subscription_id, failure",
        ExpressionAttributeNames={"#s": "status"})}
