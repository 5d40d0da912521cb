"""End to end (issue 11, part 5), over HTTP against a local stack that declares X-user_id clear and uses it as the
customer reference: the merchant's pass-through fields (X-..., referringUrl) are ciphertext in every table, a pii key
reads them back, and GET /v1/subscriptions?customer_reference=... answers "which subscriptions does my user have".
A stack whose customer reference is not declared clear refuses to start.

Every value sent here is registered with the session's log check (tests/e2e/conftest.py): none may reach a log.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest
import requests
from operations_driver import wait_for

from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "local-api-key"  # the local stack's seeded key: read, write and pii
RUN = f"{random.randrange(10**6):06d}"
USER = f"user-{RUN}"
OTHER_USER = f"user-{RUN}-other"
PRIVATE = {
    "X-email": f"passthrough.{RUN}@example.org",
    "X-customer_fname": f"Passfirst{RUN}",
    "referringUrl": f"https://members.example.org/join?user=passuser{RUN}",
}
SETTINGS = {"BILLOPS_PASSTHROUGH_CLEAR_FIELDS": "X-user_id", "BILLOPS_CUSTOMER_REFERENCE_FIELD": "X-user_id"}


def _id(number: int) -> str:
    return f"0126{RUN}04{number:07d}"


@pytest.fixture(scope="module")
def stack(start_local_stack, log_leak_scanner):
    for name, value in PRIVATE.items():
        log_leak_scanner.add(value, f"this run's pass-through data ({name})")
    with start_local_stack(SETTINGS) as running:
        yield running


def _post(stack, event_type: str, body_format: str, **overrides: str) -> None:
    fields = sample_fields(event_type, **overrides)
    body, content_type = encode_body(fields, body_format)
    query = urlencode(webhook_query(event_type, fields, stack.webhook_token))
    answer = requests.post(f"{stack.api_url}/webhooks/ccbill?{query}", data=body,
                           headers={"Content-Type": content_type}, timeout=10)
    assert answer.status_code == 200, answer.text


def _get(stack, path: str, **params: str) -> requests.Response:
    return requests.get(f"{stack.api_url}{path}", params=params, auth=(API_KEY, ""), timeout=30)


@pytest.fixture(scope="module")
def sent(stack):
    """Two sales of USER (JSON and form-encoded), one of another user, all with pass-through data; folded."""
    for number, user, body_format, timestamp in ((1, USER, "json", "2026-05-01 09:00:00"),
                                                 (2, OTHER_USER, "urlencoded", "2026-05-02 09:00:00"),
                                                 (3, USER, "urlencoded", "2026-05-03 09:00:00")):
        _post(stack, "NewSaleSuccess", body_format, subscriptionId=_id(number), transactionId=_id(number),
              timestamp=timestamp, **{"X-user_id": user, **PRIVATE})
    for number in (1, 2, 3):
        wait_for(f"subscription {number} folded", lambda: _get(stack, f"/v1/subscriptions/{_id(number)}").ok)


def _every_form(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


def test_pass_through_values_are_ciphertext_in_every_table(stack, sent):
    dynamodb = stack.boto3_client("dynamodb")
    dumped = {}
    for table in dynamodb.list_tables()["TableNames"]:
        items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
        dumped[table] = json.dumps(items)
    assert USER in dumped["billops-local-EventsTable"]  # declared clear: kept as sent
    assert USER in dumped["billops-local-SubscriptionsTable"]  # the customer reference
    found = [(table, name) for table, text in dumped.items() for name, value in PRIVATE.items()
             for form in _every_form(value) if form in text]
    assert found == [], f"pass-through data in clear: {found}"


def test_a_pii_key_decrypts_them_and_the_default_view_masks_them(stack, sent):
    masked = _get(stack, f"/v1/subscriptions/{_id(1)}").json()["subscription"]
    assert masked["customer"]["X-email"] == "***" and masked["customer"]["referring_url"] == "***"
    assert masked["customer_reference"] == USER
    revealed = _get(stack, f"/v1/subscriptions/{_id(1)}", include="customer")
    assert revealed.status_code == 200, revealed.text
    customer = revealed.json()["subscription"]["customer"]
    assert customer["X-email"] == PRIVATE["X-email"]
    assert customer["X-customer_fname"] == PRIVATE["X-customer_fname"]
    assert customer["referring_url"] == PRIVATE["referringUrl"]


def test_a_customer_reference_query_returns_that_users_subscriptions(stack, sent):
    answer = _get(stack, "/v1/subscriptions", customer_reference=USER)
    assert answer.status_code == 200, answer.text
    assert [item["subscription"]["id"] for item in answer.json()["list"]] == [_id(3), _id(1)]  # newest first
    assert {item["subscription"]["customer_reference"] for item in answer.json()["list"]} == {USER}
    other = _get(stack, "/v1/subscriptions", customer_reference=OTHER_USER).json()["list"]
    assert [item["subscription"]["id"] for item in other] == [_id(2)]
    assert _get(stack, "/v1/subscriptions", customer_reference=f"nobody-{RUN}").json() == {"list": []}
    refused = _get(stack, "/v1/subscriptions", customer_reference="a\u0007b")
    assert refused.status_code == 400 and refused.json()["param"] == "customer_reference"


def test_a_customer_reference_not_declared_clear_refuses_to_start(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "BILLOPS_"))}
    env.update({"BILLOPS_AWS_PORT": "0", "BILLOPS_API_PORT": "0", "BILLOPS_SANDBOX_PORT": "0",
                "BILLOPS_CUSTOMER_REFERENCE_FIELD": "X-user_id", "BILLOPS_PASSTHROUGH_CLEAR_FIELDS": "X-plan"})
    finished = subprocess.run([sys.executable, "-m", "billops_local"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output
    assert "could not start" in output and "BILLOPS_CUSTOMER_REFERENCE_FIELD" in output
    assert "BILLOPS_PASSTHROUGH_CLEAR_FIELDS" in output and "ready" not in output.splitlines()[-1]
