"""moto's server on a free loopback port, with the template's resources created fresh for every test."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from billops_local.aws_environment import MotoServer, aws_client, create_resources
from billops_local.stream_poller import lambda_record
from billops_local.template_resources import load_template


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer("127.0.0.1", _free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class AwsTables:
    endpoint_url: str
    events_table: str
    subscriptions_table: str
    events_stream_arn: str | None
    _iterators: dict[str, str]

    @property
    def dynamodb(self) -> Any:
        return aws_client("dynamodb", self.endpoint_url)

    def scan_events(self) -> list[dict[str, Any]]:
        from billops.storage.events_table import from_dynamodb

        return [from_dynamodb(item) for item in self.dynamodb.scan(TableName=self.events_table)["Items"]]

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        from billops.storage.subscriptions_table import SubscriptionsTable

        return SubscriptionsTable(self.subscriptions_table, self.dynamodb).get(subscription_id)

    def drop_events_table(self) -> None:
        self.dynamodb.delete_table(TableName=self.events_table)

    def new_stream_records(self) -> list[dict[str, Any]]:
        """Every record written to the events table's stream since the last call, in Lambda's shape."""
        streams = aws_client("dynamodbstreams", self.endpoint_url)
        records: list[dict[str, Any]] = []
        shards = streams.describe_stream(StreamArn=self.events_stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = self._iterators.get(shard_id) or streams.get_shard_iterator(
                StreamArn=self.events_stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            answer = streams.get_records(ShardIterator=iterator)
            records.extend(lambda_record(record, self.events_stream_arn) for record in answer["Records"])
            self._iterators[shard_id] = answer["NextShardIterator"]
        return records


@pytest.fixture
def aws_tables(moto_server, aws_credentials, monkeypatch) -> AwsTables:
    requests.post(f"{moto_server.endpoint_url}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    created = create_resources(load_template(), moto_server.endpoint_url)
    events, subscriptions = created.tables["EventsTable"], created.tables["SubscriptionsTable"]
    monkeypatch.setenv("BILLOPS_EVENTS_TABLE", events.name)
    monkeypatch.setenv("BILLOPS_SUBSCRIPTIONS_TABLE", subscriptions.name)
    monkeypatch.setenv("BILLOPS_DELIVERY_LOG_TABLE", created.tables["DeliveryLogTable"].name)
    # Personal data is encrypted under the template's key; a fresh cipher, since moto forgot the last test's keys.
    from billops.privacy.field_encryption import reset_default_cipher

    monkeypatch.setenv("BILLOPS_PII_KEY_ID", created.kms_keys["BillopsKey"].key_id)
    # Hash-keyed deliveries are keyed with the template's secret, read from Secrets Manager as in AWS.
    monkeypatch.setenv("BILLOPS_DELIVERY_KEY_SECRET_ARN", created.secrets["DeliveryKeySecret"].arn)
    reset_default_cipher()
    return AwsTables(moto_server.endpoint_url, events.name, subscriptions.name, events.stream_arn, {})
