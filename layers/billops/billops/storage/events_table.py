"""The events table: every webhook delivery stored once, and quarantined bodies with their reasons.

One conditional PutItem per new delivery (and per duplicate) is the whole cost of the hot path: the condition
`attribute_not_exists(pk)` makes DynamoDB itself the arbiter of "exactly once", with no read before the write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import StorageUnavailable

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items() if value is not None}


def from_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def new_images(stream_records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stored items of a stream batch's inserts and changes, deserialized (removals carry none)."""
    return [from_dynamodb(record["dynamodb"]["NewImage"]) for record in stream_records
            if record.get("eventName") in ("INSERT", "MODIFY") and (record.get("dynamodb") or {}).get("NewImage")]


class EventsTable(DynamoDBTable):
    def put_once(self, item: dict[str, Any]) -> bool:
        """Store the item unless one with its key exists. True if stored now, False if it was already there.

        Raises StorageUnavailable when DynamoDB did not confirm either way.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_dynamodb(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StorageUnavailable(f"DynamoDB refused the write: {error.response.get('Error', {}).get('Code')}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error

    def put_once_or_existing(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Store the item unless one with its key exists: None if stored now, else the item already there.

        Still one request: DynamoDB returns the existing item with the failed condition
        (ReturnValuesOnConditionCheckFailure), so telling a re-send from another delivery costs no read.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_dynamodb(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return from_dynamodb(error.response.get("Item") or {})
            raise StorageUnavailable(f"DynamoDB refused the write: {error.response.get('Error', {}).get('Code')}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error

    def exists(self, key: str) -> bool:
        """Whether an item has this key (an eventually consistent read of the key only: half a read unit)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": key}},
                                          ProjectionExpression="pk")
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        return "Item" in answer

    def get(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": key}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        return from_dynamodb(item) if item else None
