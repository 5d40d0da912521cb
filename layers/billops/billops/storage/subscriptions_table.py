"""The subscriptions table (one bounded state item per subscription) and its history table.

A subscription is stored as three kinds of item, so that a fold writes only what changed and no item grows with the
subscription's age:

* the **state** (SubscriptionsTable, key ``subscription_id``): what the fold derives (billops.subscriptions.
  state_rules), the facts operations add (``ccbill_view``, ``operation_facts``...), and the fold's bookkeeping
  (``event_count``, ``fold``: the newest entry folded). A few hundred bytes to ~1 KB whatever the history's length;
  written only with optimistic locking on ``revision``;
* one **history entry** per delivery (SubscriptionHistoryTable, key ``subscription_id`` + ``position``
  ``e#<moment>|<precedence>|<delivery key>``): the delivery's non-personal fields, written once (the same item
  whenever it is written, so a retry rewrites it unchanged) and never updated;
* the **personal data** item (same table, ``position`` ``subscriber``): the subscriber's encrypted fields, the data
  keys they need and, per field, the place of the delivery it came from (``subscriber_as_of``). Written only when a
  delivery brings a newer value (a renewal carries none), optimistically on its own ``revision``.

``get`` assembles the record readers know (state + ``history`` + ``subscriber``/``subscriber_keys``/
``subscriber_as_of``: a GetItem and a Query); ``get_state`` reads the state alone (the fold's and operations'
read). Records written before this layout carry their history and personal data inline: they read as they are,
and the projector converts each on its next fold (billops.subscriptions.projection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import RevisionConflict, StorageUnavailable
from billops.storage.events_table import from_dynamodb, to_dynamodb
from billops.storage.paging import every_item

ENTRY_PREFIX = "e#"
PERSONAL_POSITION = "subscriber"
PERSONAL_ATTRIBUTES = ("subscriber", "subscriber_keys", "subscriber_as_of")
VIEW_ONLY_ATTRIBUTES = ("history", *PERSONAL_ATTRIBUTES)
"""Attributes of the assembled record that live in the history table, never on a state item of this layout."""
FOLD_ATTRIBUTE = "fold"
"""The state item's bookkeeping of the layout: ``<received_at of the newest delivery>|<place of the last entry>``
(billops.subscriptions.state_rules.place_text). Its presence marks a record of this layout."""


def is_bounded(item: Mapping[str, Any] | None) -> bool:
    """Whether a state item is of this layout (history and personal data in the history table)."""
    return bool(item) and FOLD_ATTRIBUTE in item and "history" not in item


def entry_position(entry: Mapping[str, Any]) -> str:
    """A history entry's sort key: its moment (UTC, microseconds), the lifecycle precedence, its delivery key: the
    entries read in (nearly) fold order, and the same delivery always makes the same item."""
    from billops.subscriptions.state_rules import sort_position

    return ENTRY_PREFIX + sort_position(entry)


def _error_code(error: Any) -> str | None:
    return getattr(error, "response", {}).get("Error", {}).get("Code")


class SubscriptionsTable(DynamoDBTable):
    def __init__(self, table_name: str, client: Any = None, history_table: str | None = None) -> None:
        super().__init__(table_name, client)
        self._history_table = history_table

    @property
    def history_table(self) -> str:
        """BILLOPS_SUBSCRIPTION_HISTORY_TABLE unless given (the template names it beside the subscriptions table)."""
        if self._history_table is None:
            from billops.settings import get_settings

            self._history_table = get_settings().subscription_history_table
        return self._history_table

    # --- reading ----------------------------------------------------------------------------------------------

    def get_state(self, subscription_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        """The state item alone (a record of the older layout: whole, with its inline history)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.table_name, Key={"subscription_id": {"S": subscription_id}},
                                          ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        return from_dynamodb(item) if item else None

    def get_states(self, subscription_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The state items of ``subscription_ids`` that exist, by ID: eventually consistent, 100 per BatchGetItem
        (the projector reads a stream batch's subscriptions at once)."""
        from billops.storage.batch_reads import get_all

        keys = [(self.table_name, {"subscription_id": {"S": key}}) for key in dict.fromkeys(subscription_ids)]
        found = get_all(self.client, keys, what="subscription states") if keys else {}
        return {str(item["subscription_id"]): item for item in found.get(self.table_name, [])}

    def get(self, subscription_id: str) -> dict[str, Any] | None:
        """The subscription as readers know it: its state, ``history`` (fold order) and personal data. To change
        the state item (read, change, `put`), read it with `get_state`."""
        state = self.get_state(subscription_id)
        if state is None or not is_bounded(state):
            return state
        entries, personal = self.history(subscription_id)
        if len(entries) != int(state.get("event_count") or 0):
            # A delivery's entry is written before its fold (so that a concurrent history replay cannot miss it);
            # until the fold writes the state, readers get the state that fold will write (derive_state is the
            # fold), so a record never shows an entry its state does not include. Never written back (`put`).
            from billops.subscriptions.state_rules import derive_state

            return assembled(state, entries, personal,
                             {**derive_state(subscription_id, entries), "event_count": len(entries)})
        return assembled(state, entries, personal)

    def with_history(self, item: dict[str, Any]) -> dict[str, Any]:
        """A state item read another way (an index's Query) as `get` gives it: history and personal data added."""
        if not is_bounded(item):
            return item
        entries, personal = self.history(str(item["subscription_id"]))
        return assembled(item, entries, personal)

    def history(self, subscription_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Every history entry of the subscription (fold order) and its personal-data item: one Query, paged."""
        from billops.subscriptions.state_rules import ordered

        request = {
            "TableName": self.history_table, "KeyConditionExpression": "subscription_id = :id",
            "ExpressionAttributeValues": {":id": {"S": subscription_id}}, "ConsistentRead": True,
        }
        entries: list[dict[str, Any]] = []
        personal = None
        for item in every_item(self.client.query, request, failure="DynamoDB query of the history failed"):
            position = str(item.pop("position", ""))
            item.pop("subscription_id", None)
            if position == PERSONAL_POSITION:
                personal = item
            elif position.startswith(ENTRY_PREFIX):
                entries.append(item)
        return [dict(entry) for entry in ordered(entries)], personal

    def get_personal(self, subscription_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.history_table, ConsistentRead=True, Key={
                "subscription_id": {"S": subscription_id}, "position": {"S": PERSONAL_POSITION}})
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        if not item:
            return None
        personal = from_dynamodb(item)
        personal.pop("position", None)
        personal.pop("subscription_id", None)
        return personal

    # --- writing ----------------------------------------------------------------------------------------------

    def put(self, item: dict[str, Any], expected_revision: int | None) -> None:
        """Write the state item if nobody else changed it since `expected_revision` (None: it must not exist yet).

        An assembled record of this layout may be given (read with ``get``, changed, written back): the state item
        it was read from is written, with the record's changes to what the fold does not derive."""
        if isinstance(item, AssembledRecord):
            item = item.state_item()
        elif FOLD_ATTRIBUTE in item:
            item = {name: value for name, value in item.items() if name not in VIEW_ONLY_ATTRIBUTES}
        self._conditional_put(self.table_name, "subscription_id", item, expected_revision,
                              item["subscription_id"])

    def put_personal(self, subscription_id: str, personal: Mapping[str, Any], expected_revision: int | None) -> None:
        """The personal-data item, optimistically on its own ``revision`` (None: it must not exist yet)."""
        item = {**personal, "subscription_id": subscription_id, "position": PERSONAL_POSITION}
        self._conditional_put(self.history_table, "position", item, expected_revision, subscription_id)

    def entry_item(self, subscription_id: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        """A history entry as its item (DynamoDB JSON), for `put_entries` or a shared batch write."""
        return to_dynamodb({**entry, "subscription_id": subscription_id, "position": entry_position(entry)})

    def put_entries(self, subscription_id: str, entries: Iterable[Mapping[str, Any]]) -> None:
        """Write history entries (unconditionally: an entry is the same item whenever it is written)."""
        from billops.storage.batch_writes import put_all

        put_all(self.client, [(self.history_table, self.entry_item(subscription_id, entry)) for entry in entries])

    def _conditional_put(self, table: str, key_attribute: str, item: Mapping[str, Any],
                         expected_revision: int | None, subscription_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if expected_revision is None:
            condition = {"ConditionExpression": "attribute_not_exists(#key)",
                         "ExpressionAttributeNames": {"#key": key_attribute}}  # "position" is a reserved word
        else:
            condition = {
                "ConditionExpression": "#revision = :expected",
                "ExpressionAttributeNames": {"#revision": "revision"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected_revision)}},
            }
        try:
            self.client.put_item(TableName=table, Item=to_dynamodb(dict(item)), **condition)
        except ClientError as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                raise RevisionConflict(subscription_id) from error
            raise StorageUnavailable(f"DynamoDB refused the write: {_error_code(error)}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error


class AssembledRecord(dict):
    """A record as readers get it (`assembled`). It remembers the state item it was read from, so that `put` of it
    (read, change a carried fact, write back) writes that state item with the change: never the view's history or
    personal data, nor a state derived at read time that its fold has not written (the fold would then apply its
    pending entry on top of it a second time)."""

    def __init__(self, values: Mapping[str, Any], stored: Mapping[str, Any], derived: bool) -> None:
        super().__init__(values)
        self.stored = dict(stored)
        self.derived = derived

    def state_item(self) -> dict[str, Any]:
        from billops.subscriptions.state_rules import STATE_FIELDS

        kept = {FOLD_ATTRIBUTE, *((STATE_FIELDS | {"event_count"}) if self.derived else ())}
        item = {name: value for name, value in self.items() if name not in VIEW_ONLY_ATTRIBUTES and name not in kept}
        item.update({name: self.stored[name] for name in kept if name in self.stored})
        return item


def assembled(state: Mapping[str, Any], entries: list[dict[str, Any]], personal: Mapping[str, Any] | None,
              derived: Mapping[str, Any] | None = None) -> AssembledRecord:
    """The record readers know, from its three kinds of item (``derived``: the state its pending fold will write,
    read in place of the stored one's). The fold's bookkeeping (``fold``) is not part of it."""
    record = {name: value for name, value in {**state, **(derived or {})}.items() if name != FOLD_ATTRIBUTE}
    record["history"] = entries
    for name in PERSONAL_ATTRIBUTES:
        record[name] = dict((personal or {}).get(name) or {})
    return AssembledRecord(record, state, derived is not None)
