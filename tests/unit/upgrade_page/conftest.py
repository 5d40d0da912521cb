"""Moto-backed settings for upgrade links: the signing secret, a KMS-held upgrade key, the catalogue, a FIFO queue
and the operations table (an allowUpgrade link's operation is recorded there before it is queued)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from upgrade_page_unit_fixtures import BASE_URL, GOLD, SIGNING_SECRET, UPGRADE_KEY, subscription_record

OPERATIONS_TABLE = "operations"
SUBSCRIPTIONS_TABLE = "subscriptions"


@dataclass
class UpgradeEnvironment:
    secret_arn: str
    kms_key_id: str
    queue_url: str
    monkeypatch: Any

    def catalogue(self, *upgrades: dict[str, Any]) -> None:
        from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

        self.monkeypatch.setenv("BILLOPS_UPGRADE_CATALOGUE", json.dumps({"upgrades": list(upgrades)}))
        reset_upgrade_configuration()

    def set(self, name: str, value: str | None) -> None:
        from billops.upgrade_page.upgrade_links import reset_signing_keys
        from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

        if value is None:
            self.monkeypatch.delenv(name, raising=False)
        else:
            self.monkeypatch.setenv(name, value)
        reset_upgrade_configuration()
        reset_signing_keys()

    def subscription(self) -> dict[str, Any]:
        from billops.storage.subscriptions_table import SubscriptionsTable

        return SubscriptionsTable(SUBSCRIPTIONS_TABLE).get(subscription_record()["subscription_id"])

    def messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        answer = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
        return [{"body": json.loads(m["Body"]), "attributes": m["Attributes"]} for m in answer.get("Messages", [])]

    def operation(self, operation_id: str) -> dict[str, Any] | None:
        from billops.storage.operations_table import OperationsTable

        return OperationsTable(OPERATIONS_TABLE, boto3.client("dynamodb")).get(operation_id)


@pytest.fixture
def upgrade_env(aws_credentials, monkeypatch):
    from billops.ccbill.upgrade_encryption import encrypt_key_for_configuration
    from billops.storage.aws_clients import reset_clients
    from billops.upgrade_page.upgrade_links import reset_signing_keys
    from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

    for name in ("BILLOPS_UPGRADE_KEY_SECRET_ARN", "BILLOPS_UPGRADE_LINK_TTL_SECONDS", "BILLOPS_API_PORT",
                 "BILLOPS_PUBLIC_BASE_URL_PARAMETER", "BILLOPS_UPGRADE_WINDOW_SECONDS", "BILLOPS_CCBILL_UPGRADE_URL",
                 "BILLOPS_SANDBOX_PORT", "BILLOPS_FIXED_EGRESS_IP"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        reset_clients()
        secret_arn = boto3.client("secretsmanager").create_secret(Name="upgrade-link-signing",
                                                                  SecretString=SIGNING_SECRET)["ARN"]
        kms = boto3.client("kms")
        key_id = kms.create_key(Description="upgrade key")["KeyMetadata"]["KeyId"]
        queue_url = boto3.client("sqs").create_queue(
            QueueName="operations.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        boto3.client("dynamodb").create_table(
            TableName=OPERATIONS_TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "operation_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "operation_id", "AttributeType": "S"}])
        # An enc link notes its offer on the subscription's record (operation_facts.upgrade_offers).
        boto3.client("dynamodb").create_table(
            TableName=SUBSCRIPTIONS_TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "subscription_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "subscription_id", "AttributeType": "S"}])
        from billops.storage.subscriptions_table import SubscriptionsTable

        SubscriptionsTable(SUBSCRIPTIONS_TABLE).put({**subscription_record(), "revision": 1}, expected_revision=None)
        for name, value in {
            "BILLOPS_ENV": "local",
            "BILLOPS_UPGRADE_LINK_SECRET_ARN": secret_arn,
            "BILLOPS_UPGRADE_KEY_CIPHERTEXT": encrypt_key_for_configuration(kms, key_id, UPGRADE_KEY),
            "BILLOPS_PUBLIC_BASE_URL": BASE_URL,
            "BILLOPS_OPERATIONS_QUEUE_URL": queue_url,
            "BILLOPS_OPERATIONS_TABLE": OPERATIONS_TABLE,
            "BILLOPS_SUBSCRIPTIONS_TABLE": SUBSCRIPTIONS_TABLE,
            "BILLOPS_UPGRADE_CATALOGUE": json.dumps({"upgrades": [GOLD]}),
            "BILLOPS_UPGRADE_SECURITY": "encryption",  # allow_upgrade tests switch to backend_post
        }.items():
            monkeypatch.setenv(name, value)
        from billops.settings import get_settings

        get_settings.cache_clear()
        reset_upgrade_configuration()
        reset_signing_keys()
        yield UpgradeEnvironment(secret_arn, key_id, queue_url, monkeypatch)
        reset_upgrade_configuration()
        reset_signing_keys()
        get_settings.cache_clear()
        reset_clients()
