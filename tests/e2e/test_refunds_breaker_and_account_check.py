"""End to end, through a local stack of its own (``python -m billops_local`` in a subprocess): refunds and voids
requested on the merchant API and carried out by the worker against the sandbox; the -7 circuit breaker with the
sandbox's ``code:-7`` fault (calls bounded, nothing failed, nothing lost, nothing twice, resumed by the CLI); and
``billops ccbill check`` (the CLI as an operator runs it) passing and failing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlparse, urlsplit

import pytest
import requests
from billops_local.ccbill_sandbox.local_service import TEMPLATE_CREDENTIALS_SECRET
from support.waiting import eventually as wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS_TABLE = "billops-local-OperationsTable"
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
# The local stack creates its resources from template.yaml: the DataLink login is the template's secret.
CREDENTIALS_SECRET = TEMPLATE_CREDENTIALS_SECRET
API_AUTH = ("local-api-key", "")
THRESHOLD = 3
WORKER_CONCURRENCY = 2  # the template's WorkerConcurrency default: the local queue poller's cap
STACK_ENV = {"BILLOPS_CCBILL_BREAKER_THRESHOLD": str(THRESHOLD), "BILLOPS_OPERATION_PAUSED_RECHECK_SECONDS": "1",
             "BILLOPS_RECONCILE_REFRESH_LIMIT": "0"}


@pytest.fixture(scope="module")
def stack(start_local_stack):
    with start_local_stack(STACK_ENV) as running:
        yield running


def eventually(what: str, check, timeout: float = 90.0):
    """The shared wait (support.waiting), with this file's argument order."""
    return wait_until(check, timeout, what=what)


def cli(stack, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "BILLOPS_"))}
    env.update({"BILLOPS_AWS_PORT": str(urlparse(stack.aws_endpoint).port),
                "BILLOPS_API_PORT": str(urlparse(stack.api_url).port), "PYTHONUNBUFFERED": "1"})
    return subprocess.run([sys.executable, "-m", "billops_cli", *argv, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def new_subscription(stack) -> str:
    answer = requests.post(f"{stack.sandbox_url}/sandbox/subscriptions", json={
        "client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95", "initial_period": 30,
        "recurring_price": "19.95", "recurring_period": 30, "rebills": 99, "currency_code": "840"}, timeout=10)
    assert answer.status_code == 201, answer.text
    subscription_id = answer.json()["subscription_id"]
    eventually(f"{subscription_id} known to billops", lambda: api(stack, "GET", f"/v1/subscriptions/"
                                                                               f"{subscription_id}").status_code == 200)
    return subscription_id


def api(stack, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{stack.api_url}{path}", auth=API_AUTH, timeout=30, **kwargs)


def sandbox(stack, path: str) -> list | dict:
    return requests.get(f"{stack.sandbox_url}{path}", timeout=10).json()


def operation_status(stack, operation_id: str) -> str:
    return api(stack, "GET", f"/v1/operations/{operation_id}").json()["operation"]["status"]


def breaker_item(stack) -> dict:
    from billops.storage.ccbill_breaker_store import BREAKER_KEY
    from billops.storage.events_table import from_dynamodb

    item = stack.boto3_client("dynamodb").get_item(TableName=OPERATIONS_TABLE,
                                                   Key={"operation_id": {"S": BREAKER_KEY}}).get("Item")
    return from_dynamodb(item) if item else {}


def calls_since(stack, first_seq: int) -> list[dict]:
    return [call for call in sandbox(stack, "/sandbox/calls") if call["seq"] > first_seq]


def last_seq(stack) -> int:
    calls = sandbox(stack, "/sandbox/calls")
    return calls[-1]["seq"] if calls else 0


# --- refunds and voids ------------------------------------------------------------------------------------------


def test_a_partial_refund_and_a_void_requested_on_the_api(stack):
    refunded, voided = new_subscription(stack), new_subscription(stack)
    refund = api(stack, "POST", f"/v1/subscriptions/{refunded}/refund", data={"amount": "5.00"},
                 headers={"Idempotency-Key": "e2e-refund-1"})
    assert refund.status_code == 202, refund.text
    void = api(stack, "POST", f"/v1/subscriptions/{voided}/void", headers={"Idempotency-Key": "e2e-void-1"})
    assert void.status_code == 202, void.text
    for answer in (refund, void):
        eventually("the operation to succeed",
                   lambda answer=answer: operation_status(stack, answer.json()["operation"]["id"]) == "succeeded")
    ledger = sandbox(stack, "/sandbox/ledger")
    assert [(e["subscription_id"], e["amount"]) for e in ledger if e["kind"] == "refund"] == [(refunded, "-5.00")]
    assert [(e["subscription_id"], e["amount"]) for e in ledger if e["kind"] == "void"] == [(voided, "-19.95")]
    # CCBill's webhooks (Refund / Void, then Cancellation and Expiration) reach billops' record of each.
    for subscription_id in (refunded, voided):
        eventually(f"{subscription_id} expired", lambda s=subscription_id: api(
            stack, "GET", f"/v1/subscriptions/{s}").json()["subscription"]["status"] == "expired")
    again = api(stack, "POST", f"/v1/subscriptions/{refunded}/refund", data={"amount": "5.00"},
                headers={"Idempotency-Key": "e2e-refund-1"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert len([e for e in sandbox(stack, "/sandbox/ledger") if e["kind"] == "refund"]) == 1


def test_a_refund_answered_with_a_redirect_is_applied_once_and_settled(stack):
    subscription_id = new_subscription(stack)
    requests.post(f"{stack.sandbox_url}/sandbox/faults", json={"action": "refundTransaction", "mode": "http_302"},
                  timeout=10)
    answer = api(stack, "POST", f"/v1/subscriptions/{subscription_id}/refund",
                 headers={"Idempotency-Key": "e2e-refund-302"})
    operation_id = answer.json()["operation"]["id"]
    eventually("the refund settled", lambda: operation_status(stack, operation_id) == "succeeded")
    shown = api(stack, "GET", f"/v1/operations/{operation_id}").json()["operation"]
    assert shown["ccbill_result"]["status"] == "unknown"  # the redirect proved nothing; looking did
    refunds = [c for c in sandbox(stack, "/sandbox/calls") if c["action"] == "refundTransaction"
               and c["params"]["subscriptionId"] == subscription_id]
    assert len(refunds) == 1 and refunds[0]["answer"]["http_status"] == 302


# --- the -7 circuit breaker -------------------------------------------------------------------------------------


def test_a_run_of_minus_7_pauses_ccbill_calls_until_the_cli_resumes_them(stack):
    subscriptions = [new_subscription(stack) for _ in range(5)]
    requests.delete(f"{stack.sandbox_url}/sandbox/faults", timeout=10)
    stack.domain_events()  # forget what earlier tests published
    start = last_seq(stack)
    requests.post(f"{stack.sandbox_url}/sandbox/faults", json={"action": "*", "mode": "code:-7", "count": 1000},
                  timeout=10)
    operations = []
    for number, subscription_id in enumerate(subscriptions):
        answer = api(stack, "POST", f"/v1/subscriptions/{subscription_id}/cancel",
                     headers={"Idempotency-Key": f"e2e-breaker-cancel-{number}"})
        assert answer.status_code == 202, answer.text
        operations.append(answer.json()["operation"]["id"])

    eventually("the breaker to open", lambda: breaker_item(stack).get("breaker_state") == "open")
    paused_events = eventually("CCBillCallsPaused", lambda: [e for e in stack.domain_events(wait_seconds=1)
                                                             if e["detail-type"] == "CCBillCallsPaused"])
    assert paused_events[0]["detail"]["threshold"] == THRESHOLD
    time.sleep(6)  # the scheduler re-sends the waiting operations every second: none may reach CCBill now
    reached = calls_since(stack, start)
    assert len(reached) <= THRESHOLD + WORKER_CONCURRENCY - 1, reached
    assert all(call["fault"] == "code:-7" and not call["applied"] for call in reached)
    statuses = {operation_status(stack, operation_id) for operation_id in operations}
    assert statuses <= {"queued", "unknown", "in_progress"}, statuses  # none failed, none lost

    requests.delete(f"{stack.sandbox_url}/sandbox/faults", timeout=10)  # the login is fixed
    resumed = cli(stack, "ccbill", "resume", "--reason", "e2e: login fixed")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed"] is True
    for operation_id in operations:
        eventually("every cancellation to succeed", lambda o=operation_id: operation_status(stack, o) == "succeeded",
                   timeout=120)
    for subscription_id in subscriptions:
        assert sandbox(stack, f"/sandbox/subscriptions/{subscription_id}")["status"] == "cancelled"
        applied = [c for c in calls_since(stack, start) if c["action"] == "cancelSubscription" and c["applied"]
                   and c["params"]["subscriptionId"] == subscription_id]
        assert len(applied) == 1
    assert any(e["detail-type"] == "CCBillCallsResumed" for e in stack.domain_events(wait_seconds=1))
    again = cli(stack, "ccbill", "resume")
    assert again.returncode == 0 and json.loads(again.stdout)["resumed"] is False


# --- billops ccbill check ---------------------------------------------------------------------------------------


def _checks(answer: dict) -> dict[str, dict]:
    return {check["name"]: check for check in answer["checks"]}


def test_ccbill_check_passes_on_a_good_account_and_prints_a_working_link(stack):
    subscription_id = new_subscription(stack)
    result = cli(stack, "ccbill", "check", "--subscription", subscription_id)
    assert result.returncode == 3, result.stdout + result.stderr  # the link's proof needs a browser: "cannot tell" overall
    answer = json.loads(result.stdout)
    checks = _checks(answer)
    for name in ("datalink_login", "egress_ip", "subscription", "subaccounts", "upgrade_key", "circuit_breaker"):
        assert checks[name]["verdict"] == "pass", (name, checks[name])
    assert checks["upgrade_link"]["verdict"] == "cannot tell" and "permanent credential" in checks["upgrade_link"]["why"]
    link = checks["upgrade_link"]["details"]["link"]
    parts = urlsplit(link)
    assert parts.path == "/jpost/upgradeSubscription.cgi" and link.startswith(stack.sandbox_url)
    fields = dict(parse_qsl(parts.query))
    assert fields["clientAccnum"] == "900100" and fields["clientSubacc"] == "0000"
    # The enc the link carries opens the subscription with the stack's key and recipe (what CCBill's form would do).
    from billops.ccbill.upgrade_encryption import EncRecipe, decrypt, derive_key
    from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY

    assert subscription_id in decrypt(derive_key(LOCAL_UPGRADE_KEY), fields["enc"], EncRecipe())
    views = [c for c in sandbox(stack, "/sandbox/calls") if c["action"] == "viewSubscriptionStatus"
             and c["params"]["subscriptionId"] == subscription_id]
    assert len(views) == 1 and views[0]["params"]["usingSubacc"] == "0000"  # one read, in its subaccount's scope


def test_ccbill_check_fails_for_an_unknown_subscription(stack):
    result = cli(stack, "ccbill", "check", "--subscription", "0126000000000000999")
    assert result.returncode == 1, result.stderr
    checks = _checks(json.loads(result.stdout))
    assert checks["datalink_login"]["verdict"] == "pass"
    assert checks["subscription"]["verdict"] == "fail" and "-3" in checks["subscription"]["why"]
    bad = cli(stack, "ccbill", "check", "--subscription", "not-a-subscription")
    assert bad.returncode == 2 and "subscription_id" in bad.stderr


def test_ccbill_check_fails_on_wrong_credentials_and_a_passing_check_resumes_calls(stack):
    subscription_id = new_subscription(stack)
    secrets = stack.boto3_client("secretsmanager")
    good = secrets.get_secret_value(SecretId=CREDENTIALS_SECRET)["SecretString"]
    wrong = json.dumps({**json.loads(good), "password": "not-the-datalink-password"})
    secrets.put_secret_value(SecretId=CREDENTIALS_SECRET, SecretString=wrong)
    try:
        result = cli(stack, "ccbill", "check", "--subscription", subscription_id)
        assert result.returncode == 1, result.stderr
        checks = _checks(json.loads(result.stdout))
        assert checks["datalink_login"]["verdict"] == "fail" and "-7" in checks["datalink_login"]["why"]
        assert checks["subscription"]["verdict"] == "cannot tell"
        assert breaker_item(stack).get("consecutive_minus7") == 1  # the check's -7 counts like any other
    finally:
        secrets.put_secret_value(SecretId=CREDENTIALS_SECRET, SecretString=good)

    # Open the breaker (three -7 through the worker), then a passing check is the call that resumes.
    requests.post(f"{stack.sandbox_url}/sandbox/faults", json={"action": "*", "mode": "code:-7", "count": 10},
                  timeout=10)
    for number in range(3):
        api(stack, "POST", f"/v1/subscriptions/{subscription_id}/extend", data={"days": "1"},
            headers={"Idempotency-Key": f"e2e-check-extend-{number}"})
    eventually("the breaker to open", lambda: breaker_item(stack).get("breaker_state") == "open")
    requests.delete(f"{stack.sandbox_url}/sandbox/faults", timeout=10)
    result = cli(stack, "ccbill", "check", "--subscription", subscription_id)
    checks = _checks(json.loads(result.stdout))
    assert checks["datalink_login"]["verdict"] == "pass"
    assert checks["circuit_breaker"]["verdict"] == "pass" and checks["circuit_breaker"]["details"]["was_open"]
    assert breaker_item(stack)["breaker_state"] == "closed"
