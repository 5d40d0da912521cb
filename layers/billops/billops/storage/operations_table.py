"""The operations table: one record per operation, whose status only ever moves by a conditional write.

Key ``operation_id``. Indexes (docs/architecture.md, "Operations"): ``by_subscription`` (subscription_id,
created_at), ``by_due`` (waiting, due_at; sparse: ``waiting`` = "1" only while a record waits for a time) and
``by_status`` (status, updated_at).

Every status change goes through ``transition``: an UpdateItem whose condition names the status(es) the record must
still be in (and, for a worker's writes, the attempt it claimed). When the condition fails someone else moved the
record first, and the caller re-reads instead of overwriting: this is what keeps two workers, a late webhook and the
reconciliation job from undoing each other's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from billops import operation_states as states
from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import from_dynamodb, to_dynamodb

_serializer = TypeSerializer()

BY_SUBSCRIPTION = "by_subscription"
BY_DUE = "by_due"
BY_STATUS = "by_status"
# Named filters for with_status(only=...): (FilterExpression, names, values) on the by_status index (projects ALL).
ONLY_FILTERS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    # records whose domain events EventBridge has not taken yet (the writer removes the attribute once empty)
    "pending_events": ("attribute_exists(pending_events)", {}, {}),
    # upgrades asking for cancel_original whose cancellation is not noted yet
    "cancel_original_due": ("#parameters.cancel_original = :yes AND attribute_not_exists(cancel_original_operation_id)",
                            {"#parameters": "parameters"}, {":yes": {"BOOL": True}}),
}


@dataclass
class Condition:
    """Extra conditions of a transition, beyond the expected status."""

    equals: dict[str, Any] = field(default_factory=dict)
    """attribute -> value it must have (e.g. {"attempt": 3})."""
    due_by: str | None = None
    """For scheduled / retry_wait sources: due_at must be <= this time (queued needs no due time)."""
    lease_expired_by: str | None = None
    """lease_expires_at must be < this time (or absent)."""


class OperationsTable(DynamoDBTable):
    # --- reads ----------------------------------------------------------------------------------------------------

    def get(self, operation_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.table_name, Key={"operation_id": {"S": operation_id}},
                                          ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        return from_dynamodb(item) if item else None

    def by_subscription(self, subscription_id: str) -> list[dict[str, Any]]:
        """Every operation of a subscription, oldest first (the index projects all attributes)."""
        return list(self._query(BY_SUBSCRIPTION, "subscription_id = :key", {":key": {"S": subscription_id}}))

    def due(self, now: str, limit: int = 100) -> list[dict[str, Any]]:
        """Records waiting for a time that has come (scheduled run_at, retry backoff), earliest first."""
        items = self._query(BY_DUE, "waiting = :one AND due_at <= :now",
                            {":one": {"S": "1"}, ":now": {"S": now}})
        return _take(items, limit)

    def with_status(self, status: str, *, updated_before: str | None = None, updated_after: str | None = None,
                    limit: int = 100, only: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` records in ``status``, oldest update first. ``only`` narrows them on the index itself
        (a filter of ONLY_FILTERS), so that ``limit`` bounds the records wanted, not every record in the status:
        without it, a day with more than ``limit`` succeeded operations hid the newer ones from the job."""
        condition = "#status = :status"
        values: dict[str, Any] = {":status": {"S": status}}
        if updated_before and updated_after:
            condition += " AND updated_at BETWEEN :after AND :before"
            values.update({":after": {"S": updated_after}, ":before": {"S": updated_before}})
        elif updated_before:
            condition += " AND updated_at <= :before"
            values[":before"] = {"S": updated_before}
        elif updated_after:
            condition += " AND updated_at >= :after"
            values[":after"] = {"S": updated_after}
        names = {"#status": "status"}
        query_filter = None
        if only is not None:
            query_filter, filter_names, filter_values = ONLY_FILTERS[only]
            names.update(filter_names)
            values.update(filter_values)
        return _take(self._query(BY_STATUS, condition, values, names=names, query_filter=query_filter), limit)

    def _query(self, index: str, condition: str, values: dict[str, Any],
               names: dict[str, str] | None = None, query_filter: str | None = None) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if query_filter:
            kwargs["FilterExpression"] = query_filter
        while True:
            try:
                answer = self.client.query(**kwargs)
            except (ClientError, BotoCoreError) as error:
                raise StorageUnavailable(f"DynamoDB query of {index} failed: {type(error).__name__}") from error
            for item in answer.get("Items", []):
                yield from_dynamodb(item)
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # --- writes ---------------------------------------------------------------------------------------------------

    def create(self, item: dict[str, Any]) -> bool:
        """Store a new record unless one with its ID exists. True if created now, False if it was there."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(TableName=self.table_name, Item=to_dynamodb(item),
                                 ConditionExpression="attribute_not_exists(operation_id)")
            return True
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise StorageUnavailable(f"DynamoDB refused the write: {_code(error)}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error

    def put_unless_changed(self, item: dict[str, Any], *, expected: Mapping[str, Any] | None) -> bool:
        """Write ``item`` whole if no item has its key (``expected`` None) or the stored one still has every
        attribute -> value of ``expected``. False when someone changed it first (re-read and decide again)."""
        from botocore.exceptions import BotoCoreError, ClientError

        builder = _Expression()
        if expected is None:
            condition = "attribute_not_exists(operation_id)"
        else:
            condition = " AND ".join(f"{builder.name(name)} = {builder.value(value)}"
                                     for name, value in expected.items())
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": to_dynamodb(item),
                                  "ConditionExpression": condition}
        if builder.names:
            kwargs.update(ExpressionAttributeNames=builder.names, ExpressionAttributeValues=builder.values)
        try:
            self.client.put_item(**kwargs)
            return True
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise StorageUnavailable(f"DynamoDB refused the write: {_code(error)}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error

    def transition(
        self,
        operation_id: str,
        *,
        sources: Iterable[str],
        target: str,
        values: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        append: Mapping[str, list[Any]] | None = None,
        condition: Condition | None = None,
        now: str,
    ) -> dict[str, Any] | None:
        """Move the record from one of ``sources`` to ``target``, setting ``values`` and removing ``remove``.

        Returns the record as written, or None when the condition failed (someone moved it first; re-read).
        ``updated_at`` is always set to ``now``; ``append`` adds to list attributes (created when absent).
        """
        sources = tuple(dict.fromkeys(sources))
        states.check_transition(sources, target)
        builder = _Expression()
        sets = [f"{builder.name('status')} = {builder.value(target)}",
                f"{builder.name('updated_at')} = {builder.value(now)}"]
        for name, value in (values or {}).items():
            if name in ("status", "updated_at", "operation_id"):
                raise ValueError(f"{name} is set by transition itself")
            if value is None:
                remove = (*remove, name)
                continue
            sets.append(f"{builder.name(name)} = {builder.value(value)}")
        for name, items in (append or {}).items():
            attribute = builder.name(name)
            sets.append(f"{attribute} = list_append(if_not_exists({attribute}, {builder.value([])}), "
                        f"{builder.value(list(items))})")
        removals = [builder.name(name) for name in dict.fromkeys(remove)]
        expression = "SET " + ", ".join(sets)
        if removals:
            expression += " REMOVE " + ", ".join(removals)

        condition = condition or Condition()
        status_name = builder.name("status")
        timed = [source for source in sources if source in states.WAITING_FOR_TIME and condition.due_by]
        plain = [source for source in sources if source not in timed]
        alternatives = []
        if plain:
            alternatives.append(f"{status_name} IN ({', '.join(builder.value(s) for s in plain)})")
        if timed:
            alternatives.append(f"({status_name} IN ({', '.join(builder.value(s) for s in timed)}) AND "
                                f"{builder.name('due_at')} <= {builder.value(condition.due_by)})")
        # DynamoDB refuses "redundant parentheses": wrap the alternatives only when there are several.
        status_clause = alternatives[0] if len(alternatives) == 1 else "(" + " OR ".join(alternatives) + ")"
        clauses = ["attribute_exists(operation_id)", status_clause]
        for name, value in condition.equals.items():
            clauses.append(f"{builder.name(name)} = {builder.value(value)}")
        if condition.lease_expired_by:
            lease = builder.name("lease_expires_at")
            # No lease at all counts as expired: such a record could otherwise never be looked at again.
            clauses.append(f"(attribute_not_exists({lease}) OR {lease} < {builder.value(condition.lease_expired_by)})")
        return self._update(operation_id, expression, " AND ".join(clauses), builder)

    def update_fields(self, operation_id: str, *, values: Mapping[str, Any], expect: Mapping[str, Any],
                      now: str, append: Mapping[str, list[Any]] | None = None) -> dict[str, Any] | None:
        """Set attributes without moving the status, if ``expect`` (attribute -> value) still holds."""
        builder = _Expression()
        sets = [f"{builder.name('updated_at')} = {builder.value(now)}"]
        removals = []
        for name, value in values.items():
            if name in ("status", "operation_id"):
                raise ValueError("use transition() to move the status")
            if value is None:
                removals.append(builder.name(name))
            else:
                sets.append(f"{builder.name(name)} = {builder.value(value)}")
        for name, items in (append or {}).items():
            attribute = builder.name(name)
            sets.append(f"{attribute} = list_append(if_not_exists({attribute}, {builder.value([])}), "
                        f"{builder.value(list(items))})")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removals) if removals else "")
        clauses = ["attribute_exists(operation_id)"]
        for name, value in expect.items():
            if value is None:
                clauses.append(f"attribute_not_exists({builder.name(name)})")
            else:
                clauses.append(f"{builder.name(name)} = {builder.value(value)}")
        return self._update(operation_id, expression, " AND ".join(clauses), builder)

    def _update(self, operation_id: str, expression: str, condition: str,
                builder: _Expression) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"operation_id": {"S": operation_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=builder.names,
                ExpressionAttributeValues=builder.values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return None
            raise StorageUnavailable(f"DynamoDB refused the write: {_code(error)}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error
        return from_dynamodb(answer["Attributes"])


class _Expression:
    """Placeholders for names and values, so no attribute name ever collides with a reserved word."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._by_name: dict[str, str] = {}

    def name(self, attribute: str) -> str:
        if attribute not in self._by_name:
            placeholder = f"#n{len(self._by_name)}"
            self._by_name[attribute] = placeholder
            self.names[placeholder] = attribute
        return self._by_name[attribute]

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _serializer.serialize(value)
        return placeholder


def _take(items: Iterator[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    taken = []
    for item in items:
        taken.append(item)
        if len(taken) >= limit:
            break
    return taken


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code"))
