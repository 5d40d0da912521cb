"""The subscriptions table: one item per subscription, written only with optimistic locking on `revision`."""

from __future__ import annotations

from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import RevisionConflict, StorageUnavailable
from billops.storage.events_table import from_dynamodb, to_dynamodb


class SubscriptionsTable(DynamoDBTable):
    def get(self, subscription_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(
                TableName=self.table_name, Key={"subscription_id": {"S": subscription_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        return from_dynamodb(item) if item else None

    def put(self, item: dict[str, Any], expected_revision: int | None) -> None:
        """Write the item if nobody else changed it since `expected_revision` (None: it must not exist yet)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if expected_revision is None:
            condition = {"ConditionExpression": "attribute_not_exists(subscription_id)"}
        else:
            condition = {
                "ConditionExpression": "#revision = :expected",
                "ExpressionAttributeNames": {"#revision": "revision"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected_revision)}},
            }
        try:
            self.client.put_item(TableName=self.table_name, Item=to_dynamodb(item), **condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise RevisionConflict(item["subscription_id"]) from error
            raise StorageUnavailable(f"DynamoDB refused the write: {error.response.get('Error', {}).get('Code')}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error
