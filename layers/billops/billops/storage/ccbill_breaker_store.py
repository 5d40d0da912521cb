"""The CCBill circuit breaker's one item, shared by every worker (billops.ccbill.circuit_breaker decides; this stores).

It lives in the operations table, under a key no operation can have (``operation_id`` = ``ccbill#circuit_breaker``;
operation IDs are ``op_…``): every function that calls CCBill already reads and writes that table, and the item
carries none of the indexes' keys (``subscription_id``, ``waiting``, ``status``), so no index sees it.

Attributes: ``breaker_state`` (``closed`` | ``open``), ``consecutive_minus7`` (a counter moved by atomic ADD),
``last_minus7_at`` / ``last_minus7_action``, ``opened_at``, ``closed_at``, ``closed_by``, ``close_reason``,
``pending_event`` (the domain event of the last change, until it is on the bus: an outbox of one), ``updated_at``.
The item exists only once a -7 was seen: reading a missing item is "closed, nothing counted".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import from_dynamodb, to_dynamodb

BREAKER_KEY = "ccbill#circuit_breaker"
OPEN = "open"
CLOSED = "closed"


@dataclass
class BreakerItem:
    state: str = CLOSED
    consecutive_minus7: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.state == OPEN


def _item(raw: dict[str, Any] | None) -> BreakerItem:
    if not raw:
        return BreakerItem()
    plain = from_dynamodb(raw)
    return BreakerItem(str(plain.get("breaker_state") or CLOSED), int(plain.get("consecutive_minus7") or 0), plain)


class CCBillBreakerStore(DynamoDBTable):
    """Reads and conditional writes of the breaker item (``table_name`` is the operations table)."""

    _KEY = {"operation_id": {"S": BREAKER_KEY}}

    def read(self) -> BreakerItem:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.table_name, Key=self._KEY, ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        return _item(answer.get("Item"))

    def count_minus7(self, now: str, action: str) -> BreakerItem:
        """One more -7 (atomic ADD, so concurrent workers all count); the item as it is afterwards."""
        return self._update("ADD consecutive_minus7 :one SET last_minus7_at = :now, last_minus7_action = :action, "
                            "updated_at = :now",
                            {":one": 1, ":now": now, ":action": action}) or BreakerItem()

    def reset_count(self, now: str) -> None:
        """A documented answer other than -7: the run of -7s is over (written only when there was one)."""
        self._update("SET consecutive_minus7 = :zero, updated_at = :now", {":zero": 0, ":now": now},
                     condition="consecutive_minus7 > :zero")

    def open(self, now: str, event: dict[str, Any]) -> BreakerItem | None:
        """closed -> open with its domain event pending; None if it was open already (someone else opened it)."""
        return self._update("SET breaker_state = :open, opened_at = :now, updated_at = :now, pending_event = :event "
                            "REMOVE closed_at, closed_by, close_reason",
                            {":open": OPEN, ":now": now, ":event": event},
                            condition="attribute_not_exists(breaker_state) OR breaker_state <> :open")

    def close(self, now: str, by: str, reason: str, event: dict[str, Any]) -> BreakerItem | None:
        """open -> closed, the count reset, with its domain event pending; None if it was not open."""
        return self._update("SET breaker_state = :closed, consecutive_minus7 = :zero, closed_at = :now, "
                            "closed_by = :by, close_reason = :reason, updated_at = :now, pending_event = :event",
                            {":closed": CLOSED, ":zero": 0, ":now": now, ":by": by, ":reason": reason,
                             ":event": event, ":open": OPEN},
                            condition="breaker_state = :open")

    def clear_pending_event(self, event_id: str, now: str) -> None:
        self._update("REMOVE pending_event SET updated_at = :now", {":now": now, ":id": event_id},
                     condition="pending_event.event_id = :id")

    def _update(self, expression: str, values: dict[str, Any], *, condition: str | None = None
                ) -> BreakerItem | None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "TableName": self.table_name, "Key": self._KEY, "UpdateExpression": expression,
            "ExpressionAttributeValues": to_dynamodb(values), "ReturnValues": "ALL_NEW",
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            answer = self.client.update_item(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise StorageUnavailable(f"DynamoDB refused the write: {error.response.get('Error', {}).get('Code')}")\
                from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB write failed: {type(error).__name__}") from error
        return _item(answer.get("Attributes"))
