"""The delivery log: every webhook delivery the events table received, by the minute it arrived, for "recent
deliveries" (GET /v1/events, the CLI's quarantine list, the projector dead-letter replay).

Why a table of its own rather than an index on the events table: an index would put a second write on the webhook
intake path (the receiver's one conditional PutItem would cost an index write too) and a GSI that falls behind
throttles the base table's writes, i.e. the intake itself. The subscription projector reads every insert of the
events table's stream anyway, so it writes the log from each stream batch, before it folds the batch (in the same
BatchWriteItem as the batch's history entries): a batch that then fails to fold is still logged, which is what the
projector dead-letter replay relies on once the stream (24 h) no longer holds the batch.

Item layout (one item per stream batch and minute of arrival, not per delivery: a write unit is a kilobyte, and a
delivery's envelope is ~250 bytes, so a busy batch's log costs a fraction of a unit per delivery):

* ``received_day`` = ``<YYYY-MM-DD>#<shard>``: the day of arrival and one of SHARDS shards (CRC-32 of the item's
  first delivery key), so no partition takes more than its share of a burst (a day-keyed partition takes at most
  1,000 write units a second);
* ``received_key`` = ``<YYYY-MM-DDTHH:MM>#<the first delivery's received_at>#<its key>#<CRC-32 of the item's delivery
  keys>``: a shard reads by minute;
* ``deliveries``: the envelopes (below) as JSON text (not compressed: compression would save ~0.15 write units per
  delivery, but text keeps the table readable by the privacy checks that scan every table for personal data);
* ``expires_at``: TTL, RETENTION_DAYS after the minute.

An envelope is the events item's envelope only - never the body or personal data: ``delivery_key``, ``outcome``,
``received_at`` and ENVELOPE_ATTRIBUTES. The same batch writes the same items (a retried batch rewrites them); a
batch retried in part (bisected, or after a failed record) logs some deliveries twice, so readers keep one of each
delivery key. Items written before this layout (one per delivery, ``received_day`` = the day alone, ``received_key``
= ``<received_at>#<key>``) are read too until they expire.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billops.storage.dynamodb_client import DynamoDBTable
from billops.storage.events_table import from_dynamodb
from billops.storage.paging import every_item

RETENTION_DAYS = 90
SHARDS = 8
"""Partitions per day. Readers query them all; changing it would hide the items written under the other count."""
ENTRIES_PER_ITEM = 50
ENVELOPE_ATTRIBUTES = ("event_type", "known_type", "subscription_id", "transaction_id", "client_accnum",
                       "client_subacc", "occurred_at", "received_at", "body_format", "reason", "param")
STORED, QUARANTINED, UNKNOWN_TYPE = "stored", "quarantined", "unknown_type"
QUERY_PAGE = 100


def _outcome(image: Mapping[str, Any]) -> str | None:
    record_type = (image.get("record_type") or {}).get("S")
    if record_type == "quarantine":
        return QUARANTINED
    if record_type == "delivery":
        return STORED if (image.get("known_type") or {}).get("BOOL", True) else UNKNOWN_TYPE
    return None


def log_entry(image: Mapping[str, Any]) -> dict[str, Any] | None:
    """The envelope (deserialized) of an events-table item as its stream carries it; None if it is no delivery."""
    outcome = _outcome(image)
    key = (image.get("pk") or {}).get("S")
    received_at = (image.get("received_at") or {}).get("S")
    if outcome is None or not key or not received_at:
        return None
    try:
        datetime.fromisoformat(received_at)
    except ValueError:
        return None
    wire = {name: image[name] for name in ENVELOPE_ATTRIBUTES if name in image and "NULL" not in image[name]}
    entry = from_dynamodb(wire)
    entry.update({"delivery_key": key, "outcome": outcome, "received_at": received_at})
    return entry


def entries_from_stream(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The envelopes of a stream batch's inserts (a MODIFY is a later change to a logged delivery, not an arrival)."""
    entries: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        entry = log_entry((record.get("dynamodb") or {}).get("NewImage") or {})
        if entry is not None:
            entries[entry["delivery_key"]] = entry
    return list(entries.values())


def arrival_key(entry: Mapping[str, Any]) -> str:
    """``<received_at>#<delivery key>``: a delivery's place in arrival order (and the API's paging cursor)."""
    return f"{entry['received_at']}#{entry['delivery_key']}"


def _minute(received_at: str) -> str:
    return received_at[:16]


def _shard(key: str) -> int:
    return zlib.crc32(key.encode("utf-8")) % SHARDS


def _pack(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, separators=(",", ":"), sort_keys=True, default=str)


def log_items(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The log items (DynamoDB JSON) of a batch's envelopes: one per minute of arrival (ENTRIES_PER_ITEM at most)."""
    by_minute: dict[str, list[dict[str, Any]]] = {}
    for entry in sorted((dict(entry) for entry in entries), key=arrival_key):
        by_minute.setdefault(_minute(entry["received_at"]), []).append(entry)
    items = []
    for minute, group in sorted(by_minute.items()):
        for start in range(0, len(group), ENTRIES_PER_ITEM):
            chunk = group[start:start + ENTRIES_PER_ITEM]
            first = arrival_key(chunk[0])
            # The same deliveries make the same key; another set (a batch retried in part) another item, never an
            # overwrite of one that logged more.
            digest = f"{zlib.crc32(' '.join(entry['delivery_key'] for entry in chunk).encode()):08x}"
            expires = int((datetime.fromisoformat(minute + ":00+00:00") + timedelta(days=RETENTION_DAYS)).timestamp())
            items.append({
                "received_day": {"S": f"{minute[:10]}#{_shard(first):02d}"},
                "received_key": {"S": f"{minute}#{first}#{digest}"},
                "deliveries": {"S": _pack(chunk)},
                "expires_at": {"N": str(expires)},
            })
    return items


def unpacked_log_entries(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The envelopes of a log item (deserialized), whichever layout wrote it."""
    if "deliveries" in item:
        return json.loads(str(item["deliveries"]))
    entry = {name: value for name, value in item.items()
             if name not in ("received_day", "received_key", "expires_at")}
    return [entry] if entry.get("delivery_key") and entry.get("received_at") else []


def envelope(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An envelope in the events table's shape: ``pk`` and ``record_type`` as stored there."""
    view = {name: value for name, value in entry.items() if name not in ("delivery_key", "outcome")}
    view["pk"] = entry.get("delivery_key")
    view["record_type"] = "quarantine" if entry.get("outcome") == QUARANTINED else "delivery"
    return view


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DeliveryLogTable(DynamoDBTable):
    def puts(self, entries: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """(table, item) puts logging these envelopes, for a batch write (billops.storage.batch_writes)."""
        return [(self.table_name, item) for item in log_items(entries)]

    def record(self, entries: list[dict[str, Any]]) -> None:
        """Log the envelopes. Raises StorageUnavailable if DynamoDB did not take them all."""
        from billops.storage.batch_writes import put_all

        put_all(self.client, self.puts(entries))

    # --- reading ----------------------------------------------------------------------------------------------

    def between(self, start: datetime, stop: datetime, *, outcome: str | None = None) -> list[dict[str, Any]]:
        """Every logged delivery received between start and stop (inclusive), oldest first: envelopes."""
        low, high = _utc_text(start), _utc_text(stop)
        found: dict[str, dict[str, Any]] = {}
        day = start.astimezone(UTC).date()
        while day <= stop.astimezone(UTC).date():
            for partition, legacy in self._partitions(day):
                bounds = (low, high + "#~") if legacy else (_minute(low), _minute(high) + "#~")
                for item in self._query(partition, bounds=bounds, descending=False):
                    for entry in unpacked_log_entries(item):
                        if low <= entry["received_at"] <= high and (outcome is None or entry["outcome"] == outcome):
                            found.setdefault(entry["delivery_key"], entry)
            day += timedelta(days=1)
        return sorted(found.values(), key=arrival_key)

    def newest_first(self, *, first_day: date, last_day: date, before: str | None = None,
                     matches: Any = None) -> Iterator[dict[str, Any]]:
        """Logged deliveries from ``first_day`` back to ``last_day``, newest first, those older than the arrival key
        ``before`` only (the cursor of a page), filtered by ``matches(envelope) -> bool``. Lazy: a page reads the
        minutes it shows (and one query page per partition), not the whole window."""
        day = first_day
        while day >= last_day:
            for entry in self._day_newest_first(day, before):
                if matches is None or matches(entry):
                    yield entry
            day -= timedelta(days=1)

    def _day_newest_first(self, day: date, before: str | None) -> Iterator[dict[str, Any]]:
        """One day's deliveries, newest first: the day's partitions merged minute by minute."""
        streams = []
        for partition, legacy in self._partitions(day):
            upper = (before if legacy else _minute(before) + "#~") if before else None
            streams.append(self._query(partition, bounds=(None, upper), descending=True))
        heads = [next(stream, None) for stream in streams]
        seen: set[str] = set()
        while any(head is not None for head in heads):
            minute = max(str(head["received_key"])[:16] for head in heads if head is not None)
            group: list[dict[str, Any]] = []
            for index, stream in enumerate(streams):
                while heads[index] is not None and str(heads[index]["received_key"])[:16] == minute:
                    group.extend(unpacked_log_entries(heads[index]))
                    heads[index] = next(stream, None)
            for entry in sorted(group, key=arrival_key, reverse=True):
                key = arrival_key(entry)
                if (before is None or key < before) and entry["delivery_key"] not in seen:
                    seen.add(entry["delivery_key"])
                    yield entry

    @staticmethod
    def _partitions(day: date) -> list[tuple[str, bool]]:
        """The day's shards, and the day's partition of the older layout (one item per delivery)."""
        text = day.isoformat()
        return [(f"{text}#{shard:02d}", False) for shard in range(SHARDS)] + [(text, True)]

    def _query(self, partition: str, *, bounds: tuple[str | None, str | None], descending: bool
               ) -> Iterator[dict[str, Any]]:
        """The partition's items within the bounds, lazily, a page of QUERY_PAGE items at a time."""
        low, high = bounds
        values: dict[str, Any] = {":day": {"S": partition}}
        condition = "received_day = :day"
        if low is not None and high is not None:
            condition += " AND received_key BETWEEN :low AND :high"
            values.update({":low": {"S": low}, ":high": {"S": high}})
        elif high is not None:
            condition += " AND received_key < :high"
            values[":high"] = {"S": high}
        return every_item(self.client.query, {"TableName": self.table_name, "KeyConditionExpression": condition,
                                              "ExpressionAttributeValues": values,
                                              "ScanIndexForward": not descending, "Limit": QUERY_PAGE},
                          failure="The delivery log could not be read")
