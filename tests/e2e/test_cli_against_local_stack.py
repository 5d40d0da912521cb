"""End to end: the operator CLI (``python -m billops_cli``, a subprocess, as an operator runs it) against the local
stack - API keys, a subscription lookup, a quarantined delivery fixed and replayed, an operations dead letter
replayed, a bulk discount over a CSV of sandbox subscriptions (dry run, then for real with --wait), reconciliation.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
HISTORY_TABLE = "billops-local-SubscriptionHistoryTable"
EVENTS_TABLE = "billops-local-EventsTable"
OPERATIONS_TABLE = "billops-local-OperationsTable"
OPERATIONS_DLQ = "billops-local-OperationsDeadLetterQueue.fifo"
KEYS_TABLE = "billops-local-ApiKeysTable"
BULK_SIZE = 50


def cli(local_stack, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m billops_cli ARGV`` pointed at the test's stack by its ports, with no AWS settings of ours."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "BILLOPS_"))}
    env.update({"BILLOPS_AWS_PORT": str(urlparse(local_stack.aws_endpoint).port),
                "BILLOPS_API_PORT": str(urlparse(local_stack.api_url).port), "PYTHONUNBUFFERED": "1"})
    return subprocess.run([sys.executable, "-m", "billops_cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def cli_json(local_stack, *argv: str, expect: int = 0, timeout: float = 300) -> dict:
    result = cli(local_stack, *argv, "--json", timeout=timeout)
    assert result.returncode == expect, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return json.loads(result.stdout)


def new_subscription(local_stack, *, price: str = "19.95", **extra) -> str:
    answer = requests.post(f"{local_stack.sandbox_url}/sandbox/subscriptions", json={
        "client_accnum": "900100", "client_subacc": "0000", "initial_price": price, "initial_period": 30,
        "recurring_price": price, "recurring_period": 30, "rebills": 99, "currency_code": "840", **extra},
        timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["subscription_id"]


def record(local_stack, subscription_id: str) -> dict | None:
    from billops.storage.subscriptions_table import SubscriptionsTable

    return SubscriptionsTable(SUBSCRIPTIONS_TABLE, local_stack.boto3_client("dynamodb"), HISTORY_TABLE).get(
        subscription_id)


def operation(local_stack, idempotency_key: str) -> dict | None:
    from billops.operations.operation_records import operation_id_for
    from billops.storage.operations_table import OperationsTable

    return OperationsTable(OPERATIONS_TABLE, local_stack.boto3_client("dynamodb")).get(
        operation_id_for(idempotency_key))


# --- API keys --------------------------------------------------------------------------------------------------------


def test_api_keys_create_list_revoke(local_stack):
    created = cli_json(local_stack, "api-keys", "create", "--name", "e2e-crm", "--scope", "read")
    secret = created["secret"]
    assert secret.startswith("bo_local_")

    listed = cli(local_stack, "api-keys", "list", "--json")
    keys = {key["key_id"]: key for key in json.loads(listed.stdout)["keys"]}
    assert keys[created["key_id"]]["status"] == "active" and keys[created["key_id"]]["scopes"] == ["read"]
    assert secret not in listed.stdout  # shown once, at creation
    stored = local_stack.boto3_client("dynamodb").get_item(TableName=KEYS_TABLE, Key={
        "key_hash": {"S": hashlib.sha256(secret.encode()).hexdigest()}}).get("Item")
    assert stored and stored["key_id"]["S"] == created["key_id"], "kept under the secret's SHA-256"
    everything = local_stack.boto3_client("dynamodb").scan(TableName=KEYS_TABLE)["Items"]
    assert secret not in json.dumps(everything), "never in clear"

    # The merchant API takes it (and knows who it is).
    answer = requests.get(f"{local_stack.api_url}/v1/subscriptions/0000000000000000001", auth=(secret, ""),
                          timeout=30)
    assert answer.status_code in (200, 404), answer.text

    revoked = cli_json(local_stack, "api-keys", "revoke", created["key_id"])
    assert revoked["status"] == "revoked"
    keys = {key["key_id"]: key for key in cli_json(local_stack, "api-keys", "list")["keys"]}
    assert keys[created["key_id"]]["status"] == "revoked"
    # A key revoked before the API has seen it is refused at once (one it has seen: within its key cache time).
    unused = cli_json(local_stack, "api-keys", "create", "--name", "e2e-unused", "--scope", "read")
    cli_json(local_stack, "api-keys", "revoke", unused["key_id"])
    refused = requests.get(f"{local_stack.api_url}/v1/subscriptions", auth=(unused["secret"], ""), timeout=30)
    assert refused.status_code == 401 and refused.json()["api_error_code"] == "api_authentication_failed"


# --- subscription lookup ---------------------------------------------------------------------------------------------


def test_subscription_show_masks_personal_data_unless_revealed(local_stack):
    subscription_id = new_subscription(local_stack, email="e2e-cli@example.com", username="e2e-cli-user")
    eventually(lambda: record(local_stack, subscription_id))

    human = cli(local_stack, "subscriptions", "show", subscription_id)
    assert human.returncode == 0, human.stderr
    assert "e2e-cli@example.com" not in human.stdout and "email=***" in human.stdout
    assert "active" in human.stdout and "19.95 / 30 days" in human.stdout and "NewSaleSuccess" in human.stdout

    revealed = cli_json(local_stack, "subscriptions", "show", subscription_id, "--reveal")
    assert revealed["subscriber"]["email"] == "e2e-cli@example.com"

    missing = cli(local_stack, "subscriptions", "show", "0000000000000000002")
    assert missing.returncode == 1 and "no subscription" in missing.stderr


# --- quarantine ------------------------------------------------------------------------------------------------------


def _quarantined_by_an_older_receiver(local_stack, subscription_id: str) -> str:
    """A sale with an 8-digit BIN, refused as an older receiver did (before BINs of 8 digits were accepted): its
    quarantine record written by the receiver's own code."""
    from billops.settings import Settings
    from billops.storage.events_table import EventsTable
    from billops.webhooks.delivery_decoding import MalformedDelivery
    from billops.webhooks.intake import WebhookIntake, WebhookRequest
    from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

    fields = sample_fields("NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id,
                           bin="41111111")
    body, content_type = encode_body(fields, "urlencoded")
    request = WebhookRequest("64.38.240.10", webhook_query("NewSaleSuccess", fields, local_stack.webhook_token),
                             {"content-type": content_type}, base64.b64encode(body).decode(), True)
    from billops.privacy.field_encryption import FieldCipher

    # The body is kept encrypted, under the stack's personal-data key, as its receiver keeps it.
    cipher = FieldCipher("alias/billops-local-BillopsKeyAlias", lambda: local_stack.boto3_client("kms"))
    intake = WebhookIntake(Settings(environment="local"), EventsTable(EVENTS_TABLE, local_stack.boto3_client("dynamodb")), cipher=cipher)
    result = intake._quarantine(request, body, datetime.now(UTC) - timedelta(hours=1),
                                MalformedDelivery("bin: must be 6 digits", "bin"))
    return str(result.key)


def test_a_quarantined_delivery_is_fixed_and_replayed(local_stack):
    from billops.webhooks.delivery_keys import DeliveryKeys
    from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

    # Quarantine keys are keyed hashes: computed here with the stack's own key, as its receiver does.
    key_secret = local_stack.boto3_client("secretsmanager").get_secret_value(
        SecretId="billops-local-DeliveryKeySecret")["SecretString"].encode()
    quarantine_key = DeliveryKeys(lambda: key_secret).quarantine_key

    subscription_id = f"01263267{uuid.uuid4().int % 10**11:011d}"
    fixed = _quarantined_by_an_older_receiver(local_stack, subscription_id)

    # A delivery malformed today as well, posted over HTTP like CCBill would.
    broken = sample_fields("Cancellation", subscriptionId=subscription_id, reason=f"e2e {uuid.uuid4().hex}")
    del broken["subscriptionId"]
    body, content_type = encode_body(broken, "json")
    params = webhook_query("Cancellation", broken, local_stack.webhook_token)
    answer = requests.post(f"{local_stack.api_url}/webhooks/ccbill", params=params, data=body,
                           headers={"Content-Type": content_type}, timeout=10)
    assert answer.status_code == 400 and answer.json()["param"] == "subscriptionId"
    still_broken = quarantine_key(body, {name: value for name, value in params.items() if name != "token"})

    # The listing reads the delivery log, which the projector writes from the events table's stream: wait for it.
    def both_listed():
        views = {view["key"]: view for view in cli_json(local_stack, "quarantine", "list")["deliveries"]}
        return views if fixed in views and still_broken in views else None

    listed = eventually(both_listed)
    assert listed[fixed]["reason"] == "bin: must be 6 digits"
    assert listed[still_broken]["reason"] == "subscriptionId is required"
    assert "example.com" not in json.dumps(listed)  # no personal data in a listing

    dry = cli_json(local_stack, "quarantine", "replay", fixed, still_broken, "--dry-run", expect=1)
    assert {d["key"]: d["outcome"] for d in dry["deliveries"]} == {fixed: "would_store",
                                                                   still_broken: "still_malformed"}
    assert record(local_stack, subscription_id) is None

    done = cli_json(local_stack, "quarantine", "replay", fixed, still_broken, expect=1)
    outcomes = {d["key"]: d for d in done["deliveries"]}
    assert outcomes[fixed]["outcome"] == "replayed"
    assert outcomes[fixed]["delivery_key"] == f"NewSaleSuccess#txn#{subscription_id}"
    assert outcomes[still_broken]["outcome"] == "still_malformed"

    # Stored once, folded by the projector from the stream like any delivery.
    projected = eventually(lambda: record(local_stack, subscription_id))
    assert projected["status"] == "active" and projected["card"]["bin"] == "41111111"

    after = {view["key"]: view for view in cli_json(local_stack, "quarantine", "list", "--all")["deliveries"]}
    assert after[fixed]["replayed_as"] == f"NewSaleSuccess#txn#{subscription_id}"
    assert after[still_broken]["replayed_at"] is None and after[still_broken]["replay_attempts"] == 1
    remaining = {view["key"] for view in cli_json(local_stack, "quarantine", "list")["deliveries"]}
    assert fixed not in remaining and still_broken in remaining

    again = cli_json(local_stack, "quarantine", "replay", fixed, "--again")
    assert again["deliveries"][0]["outcome"] == "replayed_duplicate"
    assert len(record(local_stack, subscription_id)["history"]) == 1


# --- operations dead-letter queue ------------------------------------------------------------------------------------


def test_an_operations_dead_letter_is_replayed_after_the_fix(local_stack):
    subscription_id = new_subscription(local_stack)
    eventually(lambda: record(local_stack, subscription_id))
    sqs = local_stack.boto3_client("sqs")
    dead = sqs.get_queue_url(QueueName=OPERATIONS_DLQ)["QueueUrl"]
    key = f"e2e-dlq-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"operation_type": "extend", "subscription_id": subscription_id, "idempotency_key": key,
                       "parameters": {"days": 7}})
    # As the redrive policy leaves a message that failed five receives (e.g. while CCBill's login was broken).
    sqs.send_message(QueueUrl=dead, MessageBody=body, MessageGroupId=subscription_id, MessageDeduplicationId=key)
    bad_key = f"e2e-dlq-bad-{uuid.uuid4().hex[:12]}"
    bad = json.dumps({"operation_type": "extend", "subscription_id": subscription_id, "idempotency_key": bad_key,
                      "parameters": {"days": 7, "hours": 3}})
    sqs.send_message(QueueUrl=dead, MessageBody=bad, MessageGroupId=subscription_id,
                     MessageDeduplicationId=bad_key, MessageAttributes={"reason": {
                         "DataType": "String", "StringValue": "message_invalid: parameters.hours: Extra inputs"}})

    listed = cli_json(local_stack, "dlq", "list", "--queue", "operations")["messages"]
    mine = [view for view in listed if view["group"] == subscription_id]
    assert {view.get("idempotency_key") for view in mine} == {key, None}

    try:
        replayed = cli_json(local_stack, "dlq", "replay", "--queue", "operations", expect=1)["messages"]
        outcomes = {view.get("idempotency_key") or "invalid": view["outcome"]
                    for view in replayed if view["group"] == subscription_id}
        assert outcomes == {key: "replayed", "invalid": "kept"}

        done = eventually(lambda: (op := operation(local_stack, key)) and op["status"] == "succeeded" and op,
                          timeout=60)
        assert done["plan"]["action"] == "extendSubscription"
        calls = requests.get(f"{local_stack.sandbox_url}/sandbox/calls", timeout=10).json()
        assert sum(1 for call in calls if "extendSubscription" in json.dumps(call)
                   and subscription_id in json.dumps(call)) == 1
    finally:  # leave the shared dead-letter queue as we found it
        for _ in range(5):
            for message in sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=5,
                                               AttributeNames=["All"]).get("Messages", []):
                if message["Attributes"].get("MessageGroupId") == subscription_id:
                    sqs.delete_message(QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"])
                else:
                    sqs.change_message_visibility(QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"],
                                                  VisibilityTimeout=0)


# --- bulk ----------------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, subscription_ids: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subscription_id", "note"])
        for subscription_id in subscription_ids:
            writer.writerow([subscription_id, "retention"])


def _sandbox_discounts(local_stack, subscription_id: str) -> list[dict]:
    return requests.get(f"{local_stack.sandbox_url}/sandbox/subscriptions/{subscription_id}",
                        timeout=10).json()["discounts"]


def test_a_bulk_discount_over_a_csv_dry_run_then_for_real(local_stack, tmp_path):
    subscription_ids = [new_subscription(local_stack) for _ in range(BULK_SIZE)]
    too_cheap = new_subscription(local_stack, price="5.95")
    eventually(lambda: all(record(local_stack, sid) for sid in [*subscription_ids, too_cheap]), timeout=120)
    unknown = "0000000000000000003"
    path = tmp_path / "retention.csv"
    _write_csv(path, [*subscription_ids, too_cheap, unknown])
    prefix = f"retention-e2e-{uuid.uuid4().hex[:8]}"
    options = ["bulk", "discount", "--csv", str(path), "--amount", "2.00", "--key-prefix", prefix]

    dry = cli_json(local_stack, *options, "--dry-run", expect=1)
    assert dry["counts"] == {"would_send": BULK_SIZE, "invalid": 2}
    reasons = {row["subscription_id"]: row for row in dry["rows"] if row["status"] == "invalid"}
    assert reasons[too_cheap]["code"] == -18 and "unknown subscription" in reasons[unknown]["reason"]
    assert "less than the minimum" in reasons[too_cheap]["ccbill_meaning"], "CCBill's code with its meaning"
    assert all(row["plan"]["value"] == "17.95" for row in dry["rows"] if row["status"] == "would_send")
    assert not any(_sandbox_discounts(local_stack, sid) for sid in subscription_ids[:5])

    started = time.monotonic()
    run = cli(local_stack, *options, "--wait", "--poll-interval", "1", "--timeout", "240", "--json", timeout=300)
    assert run.returncode == 1, run.stderr  # the two invalid rows; every sent one succeeded
    summary = json.loads(run.stdout)
    assert summary["counts"] == {"succeeded": BULK_SIZE, "invalid": 2}, summary["counts"]
    assert summary["timed_out"] is False
    assert "sending [" in run.stderr and "waiting for outcomes [" in run.stderr  # the progress bar (not a TTY)
    print(f"bulk discount of {BULK_SIZE}: {time.monotonic() - started:.1f} s")
    for subscription_id in subscription_ids:
        (discount,) = _sandbox_discounts(local_stack, subscription_id)
        assert (discount["param"], discount["to"]) == ("newRecurringPrice", "17.95")

    # The same CSV again: nothing is sent twice, the summary tells what happened the first time.
    again = cli_json(local_stack, *options, "--wait", "--poll-interval", "1", expect=1)
    assert again["counts"] == {"succeeded": BULK_SIZE, "invalid": 2}
    assert all(row["already_recorded"] for row in again["rows"] if row["status"] == "succeeded")
    assert all(len(_sandbox_discounts(local_stack, sid)) == 1 for sid in subscription_ids)

    human = cli(local_stack, *options, "--dry-run", "--no-progress")
    assert human.returncode == 1
    assert "succeeded  50" in human.stdout and "invalid    2" in human.stdout and not human.stderr


def test_a_clean_bulk_run_exits_0(local_stack, tmp_path):
    subscription_ids = [new_subscription(local_stack) for _ in range(3)]
    eventually(lambda: all(record(local_stack, sid) for sid in subscription_ids))
    path = tmp_path / "extend.csv"
    _write_csv(path, subscription_ids)
    done = cli_json(local_stack, "bulk", "extend", "--csv", str(path), "--days", "5", "--key-prefix",
                    f"goodwill-{uuid.uuid4().hex[:8]}", "--wait", "--poll-interval", "1", "--timeout", "120")
    assert done["counts"] == {"succeeded": 3}


# --- reconciliation ------------------------------------------------------------------------------------------------------


def test_reconcile_on_demand(local_stack):
    result = cli_json(local_stack, "reconcile")
    assert result["reconciliation"]["errors"] == 0
    assert set(result["reconciliation"]) >= {"windows_expired", "leases_expired", "settled", "refreshes_enqueued"}

    subscription_id = new_subscription(local_stack)
    eventually(lambda: record(local_stack, subscription_id))
    one = cli_json(local_stack, "reconcile", "--subscription", subscription_id, "--wait", "--timeout", "60")
    assert one["refresh"]["status"] == "succeeded"
    refreshed = eventually(lambda: (r := record(local_stack, subscription_id)) and r.get("ccbill_view") and r)
    assert refreshed["ccbill_view"]["subscriptionStatus"] == "2"  # CCBill's (the sandbox's) word: active
