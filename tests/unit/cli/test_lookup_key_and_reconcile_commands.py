"""``billops subscriptions show``, ``billops api-keys``, ``billops reconcile`` (the local stack's trigger stubbed)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

SUBSCRIPTION = "0126015401000000777"
PERSONAL = {"email": "jane@example.com", "firstName": "Jane", "username": "jane77"}


def _put_subscription(local_resources, **extra) -> dict:
    from billops.storage.subscriptions_table import SubscriptionsTable

    record = {"subscription_id": SUBSCRIPTION, "status": "active", "recurring_price": "19.95",
              "initial_price": "2.95", "initial_period": 3, "recurring_period": 30, "currency": "USD",
              "times_rebilled": 1, "revision": 3, "subscriber": dict(PERSONAL),
              "subscriber_as_of": {"email": "2026|00|x"}, "subscriber_keys": {"k1": "wrapped-data-key"},
              "operation_facts": {"recurring_price": "17.95", "recurring_price_operation_id": "op_x"},
              "history": [{"key": f"NewSaleSuccess#txn#{SUBSCRIPTION}", "event_type": "NewSaleSuccess",
                           "occurred_at": "2026-11-01T10:00:00Z", "fields": {}},
                          {"key": "RenewalSuccess#txn#1", "event_type": "RenewalSuccess",
                           "occurred_at": "2026-11-04T10:00:00Z", "fields": {}}], **extra}
    SubscriptionsTable(local_resources.table("SubscriptionsTable"), local_resources.client("dynamodb")).put(
        record, expected_revision=None)
    return record


def test_a_subscription_is_shown_with_personal_data_masked(local_resources, run_cli):
    _put_subscription(local_resources)
    from datetime import UTC, datetime

    from billops.operations.operation_messages import parse_message
    from billops.operations.operation_records import new_record
    from billops.storage.operations_table import OperationsTable

    message = parse_message({"operation_type": "discount", "subscription_id": SUBSCRIPTION,
                             "idempotency_key": "retention-1", "parameters": {"discount_amount": "2.00"}})
    OperationsTable(local_resources.table("OperationsTable"), local_resources.client("dynamodb")).create(
        new_record(message, datetime.now(UTC), max_attempts=5) | {"status": "succeeded"})

    human = run_cli("subscriptions", "show", SUBSCRIPTION)
    assert human.code == 0, human.err
    for value in PERSONAL.values():
        assert value not in human.out
    assert "email=***" in human.out and "17.95" in human.out and "RenewalSuccess" in human.out
    assert "retention-1" in human.out and "succeeded" in human.out

    document = run_cli("subscriptions", "show", SUBSCRIPTION, "--json").json()
    assert document["subscriber"] == {name: "***" for name in PERSONAL}
    assert "subscriber_keys" not in document and "subscriber_as_of" not in document
    assert document["operations"][0]["idempotency_key"] == "retention-1"
    assert len(document["history"]) == 2
    assert "wrapped-data-key" not in json.dumps(document)


def test_reveal_shows_personal_data_in_clear(local_resources, run_cli):
    _put_subscription(local_resources, subscriber_keys={})
    document = run_cli("subscriptions", "show", SUBSCRIPTION, "--reveal", "--json").json()
    assert document["subscriber"] == PERSONAL


def test_reveal_decrypts_encrypted_personal_data(local_resources, run_cli):
    from billops.privacy.field_encryption import FieldCipher

    kms = local_resources.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    cipher = FieldCipher(key_id, lambda: kms)
    encrypted, keys = cipher.encrypt_fields(PERSONAL)
    assert encrypted["email"] != PERSONAL["email"]
    _put_subscription(local_resources, subscriber=encrypted, subscriber_keys=keys)

    masked = run_cli("subscriptions", "show", SUBSCRIPTION, "--json").json()
    assert masked["subscriber"] == {name: "***" for name in PERSONAL}
    revealed = run_cli("subscriptions", "show", SUBSCRIPTION, "--reveal", "--json").json()
    assert revealed["subscriber"] == PERSONAL


def test_an_unknown_subscription_exits_1(local_resources, run_cli):
    result = run_cli("subscriptions", "show", "1")
    assert result.code == 1 and "no subscription 1" in result.err


def test_api_keys_are_created_listed_and_revoked_and_the_secret_shown_once(local_resources, run_cli):
    created = run_cli("api-keys", "create", "--name", "crm-sync", "--scope", "read", "--json")
    assert created.code == 0, created.err
    key = created.json()
    assert key["secret"].startswith("bo_local_") and key["scopes"] == ["read"]

    listed = run_cli("api-keys", "list", "--json")
    (entry,) = listed.json()["keys"]
    assert (entry["key_id"], entry["name"], entry["status"]) == (key["key_id"], "crm-sync", "active")
    assert key["secret"] not in listed.out and "key_hash" not in listed.out
    assert key["secret"] not in run_cli("api-keys", "list").out

    revoked = run_cli("api-keys", "revoke", key["key_id"], "--json")
    assert revoked.code == 0 and revoked.json()["status"] == "revoked"
    assert run_cli("api-keys", "list", "--json").json()["keys"][0]["status"] == "revoked"

    assert run_cli("api-keys", "revoke", "key_doesnotexist").code == 1
    refused = run_cli("api-keys", "create", "--name", "x", "--scope", "admin")
    assert refused.code == 1 and "unknown scope" in refused.err


def test_default_scopes_are_read_and_write(local_resources, run_cli):
    key = run_cli("api-keys", "create", "--name", "default-scopes", "--json").json()
    assert key["scopes"] == ["read", "write"]


# --- reconcile --------------------------------------------------------------------------------------------------------


@pytest.fixture
def local_api(monkeypatch):
    """A stand-in for the local stack's HTTP API: answers POST /__local/schedules/<FunctionId>."""
    calls: list[str] = []
    answers = {"status": 200, "body": {"function": "ReconciliationFunction", "event_id": "Every15Minutes",
                                       "event": {}, "result": {"windows_expired": 0, "leases_expired": 1,
                                                               "settled": {"succeeded": 2}, "events_flushed": 0,
                                                               "refreshes_enqueued": 3, "errors": 0}}}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(self.path)
            data = json.dumps(answers["body"]).encode()
            self.send_response(answers["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("BILLOPS_API_PORT", str(server.server_address[1]))
    yield calls, answers
    server.shutdown()
    server.server_close()


def test_reconcile_runs_the_local_schedule_now(local_api, run_cli):
    calls, _ = local_api
    result = run_cli("reconcile", "--json")
    assert result.code == 0, result.err
    assert calls == ["/__local/schedules/ReconciliationFunction"]
    assert result.json()["reconciliation"]["settled"] == {"succeeded": 2}
    human = run_cli("reconcile")
    assert "settled                  succeeded: 2" in human.out and "refreshes queued         3" in human.out


def test_reconcile_reports_a_failed_run(local_api, run_cli):
    _, answers = local_api
    answers.update({"status": 500, "body": {"function": "ReconciliationFunction", "errorType": "RuntimeError",
                                            "errorMessage": "DynamoDB is down"}})
    result = run_cli("reconcile")
    assert result.code == 1 and "DynamoDB is down" in result.err


def test_reconcile_of_one_subscription_queues_a_refresh_first(local_resources, local_api, run_cli):
    calls, _ = local_api
    result = run_cli("reconcile", "--subscription", SUBSCRIPTION, "--json")
    assert result.code == 0, result.err
    document = result.json()
    assert document["refresh"]["idempotency_key"].startswith(f"operator-refresh:{SUBSCRIPTION}:")
    assert calls == ["/__local/schedules/ReconciliationFunction"]
    sqs = local_resources.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=local_resources.queue_url("OperationsQueue"),
                                     AttributeNames=["All"])["Messages"]
    body = json.loads(message["Body"])
    assert (body["operation_type"], body["subscription_id"], body["suppress_domain_events"]) == (
        "refresh", SUBSCRIPTION, True)


def test_reconcile_says_when_the_local_stack_is_not_running(run_cli, monkeypatch):
    monkeypatch.setenv("BILLOPS_API_PORT", "9")
    result = run_cli("reconcile")
    assert result.code == 1 and "make run" in result.err
