"""``sam local invoke -e events/<function>/<file>.json`` without Docker: each function's handler run with a sample
event of events/, as SAM runs it.

As ``sam local invoke`` does, every invocation is a cold start of the one function (its handler module imported
afresh by tests/conftest.py's ``load_handler``) with the environment the template gives that function - resolved
against the template's resources created in moto - and nothing else of billops' in the environment. What `sam
local invoke --env-vars` would add points the CCBill client at a real CCBill sandbox (its URLs, subaccounts,
upgrade catalogue and upgrade key, BILLOPS_ENV=local so that plain-HTTP loopback URLs are accepted).

The samples name one subscription, ``SAMPLE_SUBSCRIPTION``: the first one the sandbox sells when its clock reads
the samples' day (15 January 2026); ``sale_at_ccbill()`` makes it. The subscription projector's sample
(events/subscription_projector/stream-batch.json) is its NewSaleSuccess and RenewalSuccess as the events table's
stream delivers them: invoking it puts the subscription in our table, as it would be before the other samples.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from billops_local.aws_environment import CreatedResources, aws_client, local_aws_environment
from billops_local.template_resources import LocalTemplate

EVENTS = Path(__file__).resolve().parents[3] / "events"
SAMPLE_SUBSCRIPTION = "0126015402000000001"
SAMPLE_UPGRADED_SUBSCRIPTION = "0126015402000000002"
"""What the sandbox sells next: the upgrade the approval sample (events/upgrade_postback/approval.json) names."""
SAMPLE_DAY = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
SAMPLE_WEBHOOK_TOKEN = "local-webhook-token"  # nosec B105 - the samples' documented local token
SAMPLE_SIGNING_KEY = "billops-sample-events-signing-key: a sample, not a secret"  # nosec B105
"""The upgrade link secret the upgrade page sample's token is signed with (events/README.md)."""
WEBHOOK_TOKEN_VARIABLE = "BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"  # nosec B105 - a variable's name
CREDENTIALS_VARIABLE = "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN"
SIGNING_SECRET_VARIABLE = "BILLOPS_UPGRADE_LINK_SECRET_ARN"  # nosec B105 - a variable's name


def sample(path: str) -> dict[str, Any]:
    """A sample event, exactly as the file has it (what ``-e`` passes)."""
    return json.loads((EVENTS / path).read_text(encoding="utf-8"))


def secrets_named_by(template: LocalTemplate, variable: str) -> set[str]:
    refs = (function.environment.get(variable) for function in template.functions.values())
    return {ref["Ref"] for ref in refs if isinstance(ref, dict) and ref.get("Ref") in template.secrets}


class LambdaContext:
    """The context object of one invocation of a named function (what the Python runtime passes)."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = "5a5a5a5a-0000-4000-8000-000000000001"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/15/[$LATEST]sample"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@dataclass
class SamLocal:
    """The template's resources in moto, the CCBill sandbox, and ``invoke(function, event)``."""

    template: LocalTemplate
    created: CreatedResources
    sandbox: Any
    loader: Any
    monkeypatch: pytest.MonkeyPatch
    env_vars: dict[str, str]
    environments: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.created.endpoint_url

    def invoke(self, function_logical_id: str, event: dict[str, Any] | str) -> Any:
        """Run the function's handler on ``event`` (a dict, or a path under events/) in a fresh container."""
        if isinstance(event, str):
            event = sample(event)
        module = self.container(function_logical_id)
        return module.handler(event, self.context(function_logical_id))

    def context(self, function_logical_id: str) -> LambdaContext:
        handler_name = self.template.functions[function_logical_id].module_path.parent.name
        return LambdaContext(f"billops-dev-{handler_name.replace('_', '-')}")

    def container(self, function_logical_id: str) -> Any:
        """A fresh container of the function (its handler module, imported with the function's environment): call
        its ``handler`` several times to run it warm, as Lambda reuses a container."""
        from billops.privacy.field_encryption import reset_default_cipher
        from billops.upgrade_page.upgrade_links import reset_signing_keys
        from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

        for name in list(os.environ):
            if name.startswith("BILLOPS_"):
                self.monkeypatch.delenv(name)
        for name, value in {**self.environments[function_logical_id], **self.env_vars,
                            **local_aws_environment(self.endpoint)}.items():
            self.monkeypatch.setenv(name, value)
        reset_default_cipher()
        reset_signing_keys()
        reset_upgrade_configuration()
        handler_name = self.template.functions[function_logical_id].module_path.parent.name
        return self.loader(handler_name)

    # what the samples need to have happened before them ----------------------------------------------------------

    def sale_at_ccbill(self) -> str:
        """The samples' subscription at CCBill (the sandbox): $19.95 every 30 days, as the projector sample says."""
        subscription_id = self.sandbox.create_subscription(
            client_accnum="900100", client_subacc="0000", initial_price="19.95", initial_period=30,
            recurring_price="19.95", recurring_period=30, rebills=99, currency_code="840")
        assert subscription_id == SAMPLE_SUBSCRIPTION, "the sandbox's clock is not on the samples' day"
        return subscription_id

    def subscription_known(self) -> dict[str, Any]:
        """The projector's sample folded: the subscription is in our table (and its deliveries in the log)."""
        answer = self.invoke("SubscriptionProjectorFunction", "subscription_projector/stream-batch.json")
        assert answer == {"batchItemFailures": []}, answer
        record = self.subscription(SAMPLE_SUBSCRIPTION)
        assert record is not None
        return record

    def sqs_event(self, *messages: dict[str, Any]) -> dict[str, Any]:
        """An SQS batch shaped like events/operation_worker/sqs-batch.json, for operation messages of a test's."""
        template = sample("operation_worker/sqs-batch.json")["Records"][0]
        records = []
        for number, message in enumerate(messages, start=1):
            body = json.dumps(message)
            attributes = {**template["attributes"], "MessageGroupId": message["subscription_id"],
                          "MessageDeduplicationId": message["idempotency_key"],
                          "SequenceNumber": f"{int(template['attributes']['SequenceNumber']) + 100 + number}"}
            records.append({**template, "messageId": f"00000000-0000-4000-8000-{number:012d}", "body": body,
                            "attributes": attributes, "md5OfBody": _md5(body)})
        return {"Records": records}

    # reading what the functions stored -----------------------------------------------------------------------------

    def table(self, logical_id: str) -> str:
        return self.created.tables[logical_id].name

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        from billops.storage.subscriptions_table import SubscriptionsTable

        return SubscriptionsTable(self.table("SubscriptionsTable"), aws_client("dynamodb", self.endpoint),
                                  self.table("SubscriptionHistoryTable")).get(subscription_id)

    def operation(self, idempotency_key: str | None = None, *, operation_id: str | None = None) -> dict | None:
        """An operation record, by the idempotency key of its message or by its ID."""
        from billops.operations.operation_records import operation_id_for
        from billops.storage.operations_table import OperationsTable

        return OperationsTable(self.table("OperationsTable"), aws_client("dynamodb", self.endpoint)).get(
            operation_id or operation_id_for(str(idempotency_key)))

    def scan(self, logical_id: str) -> list[dict[str, Any]]:
        from billops.storage.events_table import from_dynamodb

        dynamodb = aws_client("dynamodb", self.endpoint)
        return [from_dynamodb(item) for page in dynamodb.get_paginator("scan").paginate(
            TableName=self.table(logical_id), ConsistentRead=True) for item in page["Items"]]

    def queued(self, logical_id: str = "OperationsQueue") -> list[dict[str, Any]]:
        """The message bodies waiting on a queue (received, then made visible again)."""
        sqs = aws_client("sqs", self.endpoint)
        url = self.created.queues[logical_id].url
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                       AttributeNames=["All"]).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
