"""The keys table: the merchant API's keys (key ``key_hash``; GSI ``by_key_id``), and beside them, under their own
prefixes with a TTL (``expires_at``), the failed-authentication counters and the kept answers of idempotent POSTs.

What a key is, and why its hash is the table's key: billops.merchant_api.api_keys. The counters:
failed_auth_limits.py; the kept answers: idempotent_responses.py. This module is the table's only door.
"""

from __future__ import annotations

from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import from_dynamodb, to_dynamodb
from billops.storage.paging import every_item

BY_KEY_ID = "by_key_id"


def _refused(error: Any) -> StorageUnavailable:
    return StorageUnavailable(f"DynamoDB refused the write: {error.response.get('Error', {}).get('Code')}")


def _condition_failed(error: Any) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ApiKeysTable(DynamoDBTable):
    """The keys table (key ``key_hash``; GSI ``by_key_id``; TTL ``expires_at`` for the counters and kept answers)."""

    def get(self, key_hash: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.table_name:  # BILLOPS_API_KEYS_TABLE missing in AWS: no key can be valid
            raise StorageUnavailable("no API keys table is configured")
        try:
            answer = self.client.get_item(TableName=self.table_name, Key={"key_hash": {"S": key_hash}})
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        return from_dynamodb(item) if item else None

    def put(self, item: dict[str, Any], *, only_new: bool) -> bool:
        """Write ``item``; with ``only_new``, only if no item has its key_hash (False when one has)."""
        condition = {"ConditionExpression": "attribute_not_exists(key_hash)"} if only_new else {}
        return self._put(item, **condition)

    def put_unless_current(self, item: dict[str, Any], now: int) -> bool:
        """Write ``item`` unless an item with its key_hash exists that has not expired (``expires_at`` > now)."""
        return self._put(item, ConditionExpression="attribute_not_exists(key_hash) OR expires_at <= :now",
                         ExpressionAttributeValues={":now": {"N": str(int(now))}})

    def _put(self, item: dict[str, Any], **condition: Any) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(TableName=self.table_name, Item=to_dynamodb(item), **condition)
            return True
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise _refused(error) from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error

    def hash_of(self, key_id: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.query(TableName=self.table_name, IndexName=BY_KEY_ID,
                                       KeyConditionExpression="key_id = :id",
                                       ExpressionAttributeValues={":id": {"S": key_id}})
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB query failed: {type(error).__name__}") from error
        items = answer.get("Items") or []
        return items[0]["key_hash"]["S"] if items else None

    def mark_revoked(self, key_hash: str, at: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.update_item(
                TableName=self.table_name, Key={"key_hash": {"S": key_hash}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(key_id)",
                ExpressionAttributeValues={":at": {"S": at}}, ReturnValues="ALL_NEW")
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise _refused(error) from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error
        return from_dynamodb(answer["Attributes"])

    def key_items(self) -> list[dict[str, Any]]:
        """Every key item (not the counters, not the kept answers: they have no key_id)."""
        return list(every_item(self.client.scan, {"TableName": self.table_name,
                                                  "FilterExpression": "attribute_exists(key_id)"},
                               failure="DynamoDB scan failed"))

    def count(self, key: str, *, expires_at: int) -> int:
        """Add one to the counter item ``key`` (created with ``expires_at``); its new value. Raises
        StorageUnavailable when DynamoDB did not count it."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: Any = self.client.update_item(
                TableName=self.table_name,
                Key={"key_hash": {"S": key}},
                UpdateExpression="ADD failures :one SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(expires_at)}},
                ReturnValues="UPDATED_NEW",
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB did not count: {type(error).__name__}") from error
        return int(answer["Attributes"]["failures"]["N"])
