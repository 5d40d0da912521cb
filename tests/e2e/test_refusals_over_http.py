"""End to end: what the local stack refuses over HTTP - a wrong or missing token on the webhook and postback URLs,
and an upgrade-page token signed with any key but the stack's own - and that a refusal stores and reveals nothing.

A source address outside the allowed ranges is seen on a second stack started with BILLOPS_LOCAL_ALLOW_LOOPBACK=false
(the local stack otherwise trusts 127.0.0.0/8, where the sandbox and curl post from).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

pytestmark = pytest.mark.e2e

SUBSCRIPTION_ID = f"0126{random.randrange(10**6):06d}02{random.randrange(10**7):07d}"


def test_webhooks_with_a_wrong_or_missing_token_are_refused_and_nothing_is_stored(local_stack):
    fields = sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION_ID, transactionId=SUBSCRIPTION_ID)
    body, content_type = encode_body(fields, "json")
    for token in ("not-the-token", "", local_stack.webhook_token.upper()):
        query = urlencode(webhook_query("NewSaleSuccess", fields, token or None))
        answer = requests.post(f"{local_stack.api_url}/webhooks/ccbill?{query}", data=body,
                               headers={"Content-Type": content_type}, timeout=10)
        assert answer.status_code == 403 and answer.json()["api_error_code"] == "api_authorization_failed"
        assert local_stack.webhook_token not in answer.text
    events = local_stack.boto3_client("dynamodb").scan(TableName="billops-local-EventsTable")["Items"]
    assert SUBSCRIPTION_ID not in json.dumps(events)


def test_upgrade_postbacks_with_a_wrong_or_missing_token_are_refused(local_stack):
    fields = {"originalClientAccnum": "900100", "originalClientSubacc": "0000",
              "originalSubscriptionId": SUBSCRIPTION_ID, "subscription_id": "0126999902000000001"}
    for query in ("?token=not-the-token", ""):
        answer = requests.post(f"{local_stack.api_url}/postbacks/ccbill/upgrade/approval{query}", data=fields,
                               timeout=10)
        assert answer.status_code == 403, answer.text
        assert answer.json()["api_error_code"] == "api_authorization_failed"


def test_an_upgrade_page_token_signed_with_another_key_is_refused(local_stack):
    from billops.upgrade_page.link_tokens import UpgradeLinkClaims, new_nonce, sign

    claims = UpgradeLinkClaims(SUBSCRIPTION_ID, "enc", datetime.now(UTC) + timedelta(minutes=30), new_nonce(), "gold")
    forged = sign(claims, b"a key that is not the stack's signing secret")
    page = requests.get(f"{local_stack.api_url}/upgrade/{forged}", timeout=10)
    assert page.status_code == 404
    assert "This link doesn’t work" in page.text
    assert "<form" not in page.text and "Traceback" not in page.text and SUBSCRIPTION_ID not in page.text


def test_a_webhook_from_outside_the_allowed_ranges_is_refused_even_with_the_right_token(start_local_stack):
    fields = sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION_ID, transactionId=SUBSCRIPTION_ID)
    body, content_type = encode_body(fields, "urlencoded")
    with start_local_stack({"BILLOPS_LOCAL_ALLOW_LOOPBACK": "false"}) as stack:
        query = urlencode(webhook_query("NewSaleSuccess", fields, stack.webhook_token))
        answer = requests.post(f"{stack.api_url}/webhooks/ccbill?{query}", data=body,
                               headers={"Content-Type": content_type}, timeout=10)
        assert answer.status_code == 403, answer.text
        assert answer.json()["api_error_code"] == "api_authorization_failed"
        postback = requests.post(f"{stack.api_url}/postbacks/ccbill/upgrade/approval?token={stack.webhook_token}",
                                 data={"originalSubscriptionId": SUBSCRIPTION_ID}, timeout=10)
        assert postback.status_code == 403, postback.text
        events = stack.boto3_client("dynamodb").scan(TableName="billops-local-EventsTable")["Items"]
        assert SUBSCRIPTION_ID not in json.dumps(events)
