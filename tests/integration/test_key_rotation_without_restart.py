"""Keys change under a running container, and nothing is restarted.

1. The personal-data key: the webhook receiver's data key reaches the end of its lifetime (its count of field
   encryptions, then its age) and a new one is generated; every item sealed under an older one still decrypts in a
   container that never saw it (as the merchant API would).
2. The CCBill DataLink password: rotated at CCBill and in Secrets Manager while the worker's client has the old one
   cached; the refused login is never resent, and the next call reads the secret again and succeeds.

Against moto's server (KMS, DynamoDB, Secrets Manager) and the CCBill sandbox on loopback.
"""

from __future__ import annotations

import dataclasses
import json
import time
from urllib.parse import urlencode

import pytest
from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

TOKEN = "rotation-test-token"


@pytest.fixture
def receiver(aws_tables, monkeypatch, lambda_context, handler_loader):
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("BILLOPS_PII_DATA_KEY_MAX_MESSAGES", "25")  # two or so deliveries' worth of fields
    monkeypatch.setenv("BILLOPS_PII_DATA_KEY_MAX_AGE", "2")
    from billops.privacy.field_encryption import reset_default_cipher

    reset_default_cipher()
    module = handler_loader("webhook_receiver")

    def post(fields: dict) -> int:
        body, content_type = encode_body(fields, "json")
        event = http_api_event("POST", "/webhooks/ccbill", urlencode(webhook_query("CustomerDataUpdate", fields,
                                                                                   TOKEN)),
                               {"content-type": content_type}, body, "64.38.212.20")
        return module.handler(event, lambda_context)["statusCode"]

    return post


def test_a_data_key_past_its_count_or_age_is_replaced_and_old_items_still_decrypt(receiver, aws_tables):
    from billops.privacy.field_encryption import FieldCipher, data_key_references, default_cipher
    from billops.storage.aws_clients import aws_client

    sent = {}
    for number in range(6):
        fields = sample_fields("CustomerDataUpdate", transactionId=f"01260154010000{number:05d}",
                               email=f"rotation{number}@example.com")
        assert receiver(fields) == 200
        sent[f"CustomerDataUpdate#txn#{fields['transactionId']}"] = fields
    by_count = default_cipher().kms_requests
    assert by_count >= 3  # a new data key every couple of deliveries: the count bound, without a restart

    time.sleep(2.1)  # the age bound
    late = sample_fields("CustomerDataUpdate", transactionId="0126015401000099999", email="late@example.com")
    assert receiver(late) == 200
    sent[f"CustomerDataUpdate#txn#{late['transactionId']}"] = late
    assert default_cipher().kms_requests == by_count + 1

    items = {item["pk"]: item for item in aws_tables.scan_events()}
    assert set(items) == set(sent)
    references = set().union(*(data_key_references(item["subscriber"].values()) for item in items.values()))
    assert len(references) == by_count + 1  # every data key used is named by the items it sealed
    another_container = FieldCipher(None, lambda: aws_client("kms"))
    for key, item in items.items():
        clear = another_container.decrypt_fields(item["subscriber"], item["subscriber_keys"])
        assert clear["email"] == sent[key]["email"] and clear["firstName"] == sent[key]["firstName"]
        assert sent[key]["email"] not in json.dumps(item, default=str)


def test_datalink_credentials_rotated_in_secrets_manager_are_used_without_a_restart(aws_tables):
    from billops.ccbill.client import CCBillClient
    from billops.ccbill.client_settings import CCBillClientSettings
    from billops.ccbill.credentials import SecretsManagerCredentials
    from billops_local.aws_environment import aws_client
    from billops_local.ccbill_sandbox import (
        DEFAULT_ACCOUNTS,
        DEFAULT_DATALINK_PASSWORD,
        DEFAULT_DATALINK_USERNAME,
        client_subaccounts_setting,
        start_sandbox,
    )
    from billops_local.ccbill_sandbox.accounts import DataLinkUser

    secrets = aws_client("secretsmanager", aws_tables.endpoint_url)
    login = {"client_accnum": "900100", "username": DEFAULT_DATALINK_USERNAME, "password": DEFAULT_DATALINK_PASSWORD}
    secret_arn = secrets.create_secret(Name="rotation-datalink", SecretString=json.dumps(login))["ARN"]
    sandbox = start_sandbox("127.0.0.1", 0, None, "json", DEFAULT_ACCOUNTS)
    try:
        subscription_id = sandbox.create_subscription(
            client_accnum="900100", client_subacc="0000", initial_price="19.95", initial_period=30,
            recurring_price="19.95", recurring_period=30, rebills=99, currency_code="840")
        client = CCBillClient(
            CCBillClientSettings(environment="local", sms_url=sandbox.sms_url, billing_api_url=sandbox.billing_api_url,
                                 upgrade_url=sandbox.upgrade_url, read_timeout=2.0, connect_timeout=2.0,
                                 subaccounts=client_subaccounts_setting(DEFAULT_ACCOUNTS)),
            SecretsManagerCredentials(secret_arn),  # cached for 5 minutes, as in a Lambda container
            sleep=lambda seconds: None,
        )
        assert client.view_subscription_status(subscription_id).succeeded  # the old password, now cached

        # The operator rotates the DataLink password at CCBill, then in Secrets Manager.
        new_password = "rotated-datalink-password-2"
        state = sandbox.sandbox.state
        account = state.accounts["900100"]
        state.accounts["900100"] = dataclasses.replace(
            account, datalink_users=(DataLinkUser(DEFAULT_DATALINK_USERNAME, new_password),))
        secrets.put_secret_value(SecretId=secret_arn, SecretString=json.dumps({**login, "password": new_password}))

        stale = client.view_subscription_status(subscription_id)
        # CCBill answers a wrong password with -7, which may also mean "applied": never resent...
        assert stale.code == -7 and stale.attempts == 1
        # ... but the next call reads the secret afresh: the rotated password, no restart, no redeploy.
        fresh = client.view_subscription_status(subscription_id)
        assert fresh.succeeded, fresh
        assert len(state.failed_logins.get("900100", [])) == 1  # one refused login: far from CCBill's lockout
    finally:
        sandbox.stop()
