"""The reports table: daily figures per subaccount, every delivery counted into them exactly once.

Key ``scope`` (S) + ``day`` (S). Items:

* **figures** - scope ``<client_accnum>#<client_subacc>``, day ``YYYY-MM-DD``: one Number attribute per figure
  (names from billops.reports.delivery_figures, e.g. ``sales_n``, ``chargebacks_n|VISA``), only ever moved by ADD;
* **counted** - same scope, day ``counted#<YYYY-MM-DD>#<second received>``: the string set ``keys`` of the delivery
  keys counted into that day's figures, by the second the deliveries were received (``2026-11-05T10:04:31``);
  ``expires_at`` (TTL) 35 days after the last write, beyond every redelivery: the stream keeps a record 24 hours,
  the dead-letter queue 14 days. Why the second: a write is billed for the whole item it rewrites, and a stream
  batch spans a second or two (the projector's batching window is one second), so the items a batch rewrites hold
  one second's deliveries of one subaccount whatever the day's volume: ~33 bytes a key, 1,000 deliveries a second
  make a 33 KB item (DynamoDB's limit, 400 KB, is ~12,000 a second). Keyed by the minute, as before, one minute
  of a rebill burst grew one item past 400 KB (the batch then failed for good) and every batch of that minute
  rewrote all of it (docs/scale.md, "Report figures under a burst");
* **directory** - scope ``directory``, day ``scopes``: the string set of every scope ever counted;
* **alert** - scope ``alert#<client_accnum>``, day ``<YYYY-MM>#<card type>#<level>``: a chargeback-ratio crossing
  claimed (its domain event, and ``published_at`` once it is on the bus).

``counted#...`` sorts after every date, so a Query for a range of days never reads it.

Exactly once: ``count`` adds a batch's figures with one TransactWriteItems: for each (scope, day) an ADD of the
summed figures and, in the same transaction, an ADD of the delivery keys to the counted items, each conditional on
none of its keys being there yet. A key already counted (a stream retry, a batch that failed half way, the
dead-letter replay) cancels the transaction; the counted items it names are read (one BatchGetItem), the keys found
dropped, and the rest written again. Order does not matter: the figures are sums.

Counted items of the layout before (``counted#<YYYY-MM-DD>#<minute received>``) are still honoured: a delivery
received before this code could have run (before the process started, plus MINUTE_ITEMS_MARGIN_SECONDS for the
older version's last invocations) may have been counted into one by the older version, so its minute item is read
first (one BatchGetItem per batch) and the keys found there are dropped. Deliveries received later skip the read:
no older version was running then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import from_dynamodb, to_dynamodb

DIRECTORY_SCOPE, DIRECTORY_DAY = "directory", "scopes"
COUNTED_PREFIX = "counted#"
ALERT_PREFIX = "alert#"
COUNTED_TTL_SECONDS = 35 * 86400
MINUTE_ITEMS_MARGIN_SECONDS = 30 * 60
"""How long after this process started an older version may still have counted a delivery (a stream batch's
invocation lasts at most 15 minutes, Lambda's limit, and it may have begun just before the deploy)."""
MAX_ACTIONS = 100  # TransactWriteItems' limit
MAX_KEYS_PER_ITEM_WRITE = 100  # keeps a condition expression far below DynamoDB's 4 KB
MAX_ATTEMPTS = 8
RETRIED_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}


@dataclass
class DayCount:
    """What a batch adds to one (scope, day): delivery key -> (the second it was received, ``YYYY-MM-DDTHH:MM:SS``
    or "unknown", and its figures)."""

    scope: str
    day: str
    entries: dict[str, tuple[str, Mapping[str, Decimal]]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.scope, self.day)


def counted_day(day: str, received: str) -> str:
    """The counted item of ``day`` holding the keys received in ``received`` (a second; a minute in the layout
    before)."""
    return f"{COUNTED_PREFIX}{day}#{received}"


def _minute(received_second: str) -> str | None:
    return received_second[:16] if len(received_second) >= 19 else None


def _utc_text(epoch_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_seconds))


def _code(error: Any) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code"))


class ReportsTable(DynamoDBTable):
    def __init__(self, table_name: str, client: Any = None, *, minute_items_until: str | None = None) -> None:
        super().__init__(table_name, client)
        self.minute_items_until = minute_items_until or _utc_text(time.time() + MINUTE_ITEMS_MARGIN_SECONDS)
        """Deliveries received before this second (UTC) may sit in a counted item of the layout before."""

    # --- counting ---------------------------------------------------------------------------------------------

    def count(self, counts: Iterable[DayCount], *, now: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep) -> dict[tuple[str, str], set[str]]:
        """Add each DayCount's entries not counted before; returns (scope, day) -> the delivery keys added now.

        Raises StorageUnavailable when DynamoDB did not take them (the caller fails the batch; the stream retries).
        """
        pending = {count.key: dict(count.entries) for count in counts if count.entries}
        self._drop_counted_in_minute_items(pending)
        added: dict[tuple[str, str], set[str]] = {}
        attempts = 0
        while pending:
            chunk, actions = self._next_chunk(pending, int(now()) + COUNTED_TTL_SECONDS)
            outcome = self._transact(actions)
            if outcome is None:
                for key, keys in chunk.items():
                    added.setdefault(key, set()).update(keys)
                    for delivery_key in keys:
                        pending[key].pop(delivery_key, None)
                    if not pending[key]:
                        del pending[key]
                continue
            attempts += 1
            if attempts >= MAX_ATTEMPTS:
                raise StorageUnavailable(f"the report figures could not be written after {attempts} attempts "
                                         f"({', '.join(sorted(outcome))})")
            if "ConditionalCheckFailed" in outcome:
                self._drop_counted(pending, chunk)
            else:
                sleep(min(1.0, 0.05 * 2 ** attempts))
        return added

    def _next_chunk(self, pending: Mapping[tuple[str, str], Mapping[str, tuple[str, Mapping[str, Decimal]]]],
                    expires_at: int) -> tuple[dict[tuple[str, str], set[str]], list[dict[str, Any]]]:
        """As many (scope, day)s as fit in one transaction: their keys (at most MAX_KEYS_PER_ITEM_WRITE of each
        counted item) and the actions adding them."""
        chunk: dict[tuple[str, str], set[str]] = {}
        actions: list[dict[str, Any]] = []
        for (scope, day), entries in pending.items():
            by_second: dict[str, list[str]] = {}
            for delivery_key, (second, _) in sorted(entries.items()):
                keys = by_second.setdefault(second, [])
                if len(keys) < MAX_KEYS_PER_ITEM_WRITE:
                    keys.append(delivery_key)
            seconds = sorted(by_second.items())[: MAX_ACTIONS - 1]
            if actions and len(actions) + len(seconds) + 1 > MAX_ACTIONS:
                break
            taken = {key for _, keys in seconds for key in keys}
            chunk[(scope, day)] = taken
            totals: dict[str, Decimal] = {}
            for delivery_key in taken:
                for name, value in entries[delivery_key][1].items():
                    totals[name] = totals.get(name, Decimal(0)) + Decimal(value)
            figures = self._figures_action(scope, day, totals)
            if figures is not None:
                actions.append(figures)
            for second, keys in seconds:
                actions.append(self._counted_action(scope, counted_day(day, second), keys, expires_at))
        return chunk, actions

    def _figures_action(self, scope: str, day: str, totals: Mapping[str, Decimal]) -> dict[str, Any] | None:
        moved = sorted((name, value) for name, value in totals.items() if value)
        if not moved:
            return None
        names = {f"#f{index}": name for index, (name, _) in enumerate(moved)}
        values = {f":f{index}": {"N": str(value)} for index, (_, value) in enumerate(moved)}
        return {"Update": {
            "TableName": self.table_name, "Key": {"scope": {"S": scope}, "day": {"S": day}},
            "UpdateExpression": "ADD " + ", ".join(f"#f{index} :f{index}" for index in range(len(moved))),
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}

    def _counted_action(self, scope: str, day: str, keys: list[str], expires_at: int) -> dict[str, Any]:
        values: dict[str, Any] = {f":k{index}": {"S": key} for index, key in enumerate(keys)}
        values[":keys"] = {"SS": list(keys)}
        values[":expires"] = {"N": str(expires_at)}
        return {"Update": {
            "TableName": self.table_name, "Key": {"scope": {"S": scope}, "day": {"S": day}},
            "UpdateExpression": "ADD #keys :keys SET #expires = :expires",
            "ConditionExpression": " AND ".join(f"NOT contains(#keys, :k{index})" for index in range(len(keys))),
            "ExpressionAttributeNames": {"#keys": "keys", "#expires": "expires_at"},
            "ExpressionAttributeValues": values}}

    def _transact(self, actions: list[dict[str, Any]]) -> set[str] | None:
        """None when written; else the cancellation reasons (or the error code) that stopped it."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            code = _code(error)
            if code == "TransactionCanceledException":
                reasons = {str(reason.get("Code")) for reason in error.response.get("CancellationReasons") or []}
                reasons.discard("None")
                unexpected = reasons - RETRIED_REASONS - {"ConditionalCheckFailed"}
                if unexpected:
                    raise StorageUnavailable(f"DynamoDB refused the report figures: {sorted(unexpected)}") from error
                return reasons or {code}
            if code in RETRIED_REASONS or code in ("ProvisionedThroughputExceededException",
                                                    "TransactionInProgressException", "InternalServerError"):
                return {code}
            raise StorageUnavailable(f"DynamoDB refused the report figures: {code}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error
        return None

    def _drop_counted(self, pending: dict[tuple[str, str], dict[str, tuple[str, Mapping[str, Decimal]]]],
                      chunk: Mapping[tuple[str, str], set[str]]) -> None:
        """Read the counted items the chunk wrote to (one BatchGetItem) and forget the keys already in them."""
        self._drop_found(pending, {(scope, day): {key: counted_day(day, pending[(scope, day)][key][0])
                                                  for key in keys} for (scope, day), keys in chunk.items()})

    def _drop_counted_in_minute_items(
            self, pending: dict[tuple[str, str], dict[str, tuple[str, Mapping[str, Decimal]]]]) -> None:
        """Forget the keys an older version counted into the minute items of the layout before (see the module's
        docstring); only deliveries received before ``minute_items_until`` can be there."""
        where: dict[tuple[str, str], dict[str, str]] = {}
        for (scope, day), entries in pending.items():
            for key, (second, _) in entries.items():
                minute = _minute(second)
                if minute is not None and second < self.minute_items_until:
                    where.setdefault((scope, day), {})[key] = counted_day(day, minute)
        if where:
            self._drop_found(pending, where)

    def _drop_found(self, pending: dict[tuple[str, str], dict[str, tuple[str, Mapping[str, Decimal]]]],
                    where: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        """``where``: (scope, day) -> delivery key -> the counted item that would hold it. Reads those items (one
        BatchGetItem) and drops the keys they hold from ``pending``."""
        from billops.storage.batch_reads import get_all

        wanted = sorted({(scope, item_day) for (scope, _), keys in where.items() for item_day in keys.values()})
        options = {self.table_name: {"ConsistentRead": True, "ProjectionExpression": "#scope, #day, #keys",
                                     "ExpressionAttributeNames": {"#scope": "scope", "#day": "day", "#keys": "keys"}}}
        found = get_all(self.client, [(self.table_name, {"scope": {"S": scope}, "day": {"S": day}})
                                      for scope, day in wanted], options=options, what="counted deliveries")
        known: dict[tuple[str, str], set[str]] = {}
        for item in found.get(self.table_name, []):
            known[(item["scope"], item["day"])] = set(item.get("keys") or ())
        for (scope, day), keys in where.items():
            for key, item_day in keys.items():
                if key in known.get((scope, item_day), set()):
                    pending[(scope, day)].pop(key, None)
            if not pending[(scope, day)]:
                del pending[(scope, day)]

    # --- the directory of scopes ------------------------------------------------------------------------------

    def remember_scopes(self, scopes: Iterable[str]) -> None:
        values = sorted(set(scopes))
        if values:
            self._update({"scope": {"S": DIRECTORY_SCOPE}, "day": {"S": DIRECTORY_DAY}}, "ADD #scopes :scopes",
                         {"#scopes": "scopes"}, {":scopes": {"SS": values}})

    def scopes(self) -> list[str]:
        item = self._get(DIRECTORY_SCOPE, DIRECTORY_DAY)
        return sorted((item or {}).get("scopes") or ())

    # --- figures --------------------------------------------------------------------------------------------

    def figures(self, scope: str, *, until: str, since: str | None = None,
                names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The figures items of ``scope`` from ``since`` (or the first) to ``until`` (days, inclusive), oldest
        first; ``names``: only those attributes (and ``day``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"TableName": self.table_name, "ExpressionAttributeNames": {"#s": "scope",
                                                                                              "#d": "day"}}
        values: dict[str, Any] = {":s": {"S": scope}, ":until": {"S": until}}
        if since:
            kwargs["KeyConditionExpression"] = "#s = :s AND #d BETWEEN :since AND :until"
            values[":since"] = {"S": since}
        else:
            kwargs["KeyConditionExpression"] = "#s = :s AND #d <= :until"
        kwargs["ExpressionAttributeValues"] = values
        if names is not None:
            wanted = {f"#n{index}": name for index, name in enumerate(sorted(set(names)))}
            kwargs["ExpressionAttributeNames"].update(wanted)
            kwargs["ProjectionExpression"] = ", ".join(["#d", *wanted])
        items: list[dict[str, Any]] = []
        while True:
            try:
                answer = self.client.query(**kwargs)
            except (ClientError, BotoCoreError) as error:
                raise StorageUnavailable(f"the report figures could not be read: {type(error).__name__}") from error
            items.extend(from_dynamodb(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return items
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # --- alerts ---------------------------------------------------------------------------------------------

    def claim_alert(self, account: str, alert_key: str, event: Mapping[str, Any], now: str) -> dict[str, Any]:
        """The alert item: created now with ``event`` (``{"claimed": True}``), or as it was (published or not)."""
        from botocore.exceptions import BotoCoreError, ClientError

        item = {"scope": ALERT_PREFIX + account, "day": alert_key, "event": dict(event), "claimed_at": now}
        try:
            self.client.put_item(TableName=self.table_name, Item=to_dynamodb(item),
                                 ConditionExpression="attribute_not_exists(#s)", ExpressionAttributeNames={"#s": "scope"})
            return {**item, "claimed": True}
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise StorageUnavailable(f"DynamoDB refused the alert: {_code(error)}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB could not be reached: {type(error).__name__}") from error
        return {**(self._get(ALERT_PREFIX + account, alert_key) or item), "claimed": False}

    def alert_published(self, account: str, alert_key: str, now: str) -> None:
        self._update({"scope": {"S": ALERT_PREFIX + account}, "day": {"S": alert_key}}, "SET #p = :now",
                     {"#p": "published_at"}, {":now": {"S": now}})

    # --- plumbing -------------------------------------------------------------------------------------------

    def _get(self, scope: str, day: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_item(TableName=self.table_name,
                                          Key={"scope": {"S": scope}, "day": {"S": day}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB read failed: {type(error).__name__}") from error
        item = answer.get("Item")
        return from_dynamodb(item) if item else None

    def _update(self, key: dict[str, Any], expression: str, names: dict[str, str], values: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.update_item(TableName=self.table_name, Key=key, UpdateExpression=expression,
                                    ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"DynamoDB refused the write: {_code(error)}") from error
