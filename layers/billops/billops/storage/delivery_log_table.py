"""The delivery log: one small item per webhook delivery the events table received, by day, for "recent deliveries".

Why a table of its own rather than an index on the events table: an index would put a second write on the webhook
intake path (the receiver's one conditional PutItem would cost an index write too) and a GSI that falls behind
throttles the base table's writes, i.e. the intake itself. The subscription projector reads every insert of the
events table's stream anyway, so it writes these items, with BatchWriteItem, before it folds the batch: a batch that
then fails to fold is still logged, which is what the projector dead-letter replay relies on once the stream (24 h)
no longer holds the batch.

Key: ``received_day`` (YYYY-MM-DD) and ``received_key`` (received_at#delivery_key), so a day reads in arrival order
and the same delivery always makes the same item (a retried batch rewrites it, unchanged). The item is the
delivery's envelope only - never the body or personal data - and expires after RETENTION_DAYS (TTL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.errors import StorageUnavailable
from billops.storage.paging import every_item

RETENTION_DAYS = 90
BATCH_WRITE_SIZE = 25  # DynamoDB's BatchWriteItem limit
MAX_WRITE_ATTEMPTS = 6
ENVELOPE_ATTRIBUTES = ("event_type", "known_type", "subscription_id", "transaction_id", "client_accnum",
                       "client_subacc", "occurred_at", "received_at", "body_format", "reason", "param")
STORED, QUARANTINED, UNKNOWN_TYPE = "stored", "quarantined", "unknown_type"


def _outcome(image: Mapping[str, Any]) -> str | None:
    record_type = (image.get("record_type") or {}).get("S")
    if record_type == "quarantine":
        return QUARANTINED
    if record_type == "delivery":
        return STORED if (image.get("known_type") or {}).get("BOOL", True) else UNKNOWN_TYPE
    return None


def log_entry(image: Mapping[str, Any]) -> dict[str, Any] | None:
    """The log item (DynamoDB JSON) for an events-table item as its stream carries it; None if it is no delivery."""
    outcome = _outcome(image)
    key = (image.get("pk") or {}).get("S")
    received_at = (image.get("received_at") or {}).get("S")
    if outcome is None or not key or not received_at:
        return None
    try:
        moment = datetime.fromisoformat(received_at)
    except ValueError:
        return None
    expires = int((moment + timedelta(days=RETENTION_DAYS)).timestamp())
    entry = {name: image[name] for name in ENVELOPE_ATTRIBUTES if name in image and "NULL" not in image[name]}
    entry.update({
        "received_day": {"S": received_at[:10]},
        "received_key": {"S": f"{received_at}#{key}"},
        "delivery_key": {"S": key},
        "outcome": {"S": outcome},
        "expires_at": {"N": str(expires)},
    })
    return entry


def entries_from_stream(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The log items of a stream batch's inserts (a MODIFY is a later change to a logged delivery, not an arrival)."""
    entries: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        entry = log_entry((record.get("dynamodb") or {}).get("NewImage") or {})
        if entry is not None:
            entries[entry["received_key"]["S"]] = entry  # one put per key: BatchWriteItem refuses duplicates
    return list(entries.values())


def envelope(item: Mapping[str, Any]) -> dict[str, Any]:
    """A log item (deserialized) in the events table's envelope shape: ``pk`` and ``record_type`` as stored there."""
    view = {name: value for name, value in item.items()
            if name not in ("received_day", "received_key", "delivery_key", "outcome", "expires_at")}
    view["pk"] = item.get("delivery_key")
    view["record_type"] = "quarantine" if item.get("outcome") == QUARANTINED else "delivery"
    return view


class DeliveryLogTable(DynamoDBTable):
    def record(self, entries: list[dict[str, Any]], *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Write the entries, 25 per BatchWriteItem, unprocessed ones retried with backoff.

        Raises StorageUnavailable if DynamoDB did not take them all (the caller fails the batch: the stream retries).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(entries), BATCH_WRITE_SIZE):
            pending = [{"PutRequest": {"Item": entry}} for entry in entries[start:start + BATCH_WRITE_SIZE]]
            for attempt in range(MAX_WRITE_ATTEMPTS):
                try:
                    answer = self.client.batch_write_item(RequestItems={self.table_name: pending})
                except (ClientError, BotoCoreError) as error:
                    raise StorageUnavailable(f"The delivery log could not be written: {type(error).__name__}"
                                             ) from error
                pending = (answer.get("UnprocessedItems") or {}).get(self.table_name) or []
                if not pending:
                    break
                sleep(min(1.0, 0.05 * 2 ** attempt))
            if pending:
                raise StorageUnavailable(f"DynamoDB left {len(pending)} delivery-log writes unprocessed (throttled)")

    def between(self, start: datetime, stop: datetime, *, outcome: str | None = None) -> list[dict[str, Any]]:
        """Every logged delivery received between start and stop (inclusive), oldest first, deserialized."""
        start, stop = start.astimezone(UTC), stop.astimezone(UTC)
        found: list[dict[str, Any]] = []
        day = start.date()
        while day <= stop.date():
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                # received_key starts with received_at, so a range of times is a range of keys ("~" sorts last).
                "KeyConditionExpression": "received_day = :day AND received_key BETWEEN :start AND :stop",
                "ExpressionAttributeValues": {":day": {"S": day.isoformat()},
                                              ":start": {"S": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
                                              ":stop": {"S": stop.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "#~"}},
            }
            if outcome is not None:
                kwargs["FilterExpression"] = "outcome = :outcome"
                kwargs["ExpressionAttributeValues"][":outcome"] = {"S": outcome}
            found.extend(every_item(self.client.query, kwargs, failure="The delivery log could not be read"))
            day += timedelta(days=1)
        return found
