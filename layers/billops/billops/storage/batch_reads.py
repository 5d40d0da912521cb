"""Items by key, 100 per BatchGetItem, across tables: the reads a stream batch or a page of results makes at once.

The counterpart of batch_writes.put_all. DynamoDB may leave keys unprocessed (throttling): they are asked again
with backoff, and what is still left fails the read (StorageUnavailable) rather than pass for a missing item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import from_dynamodb

BATCH_GET_SIZE = 100  # DynamoDB's BatchGetItem limit
MAX_READ_ATTEMPTS = 6


def get_all(client: Any, keys: Iterable[tuple[str, Mapping[str, Any]]], *,
            options: Mapping[str, Mapping[str, Any]] | None = None, what: str = "items",
            sleep: Callable[[float], None] = time.sleep) -> dict[str, list[dict[str, Any]]]:
    """The items found for (table name, key in DynamoDB JSON), deserialized, by table (in no particular order;
    a key with no item gives nothing). ``options``: per table, BatchGetItem's ProjectionExpression,
    ExpressionAttributeNames, ConsistentRead. ``what`` names them in the error."""
    from botocore.exceptions import BotoCoreError, ClientError

    pending = list(keys)
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(pending), BATCH_GET_SIZE):
        request: dict[str, Any] = {}
        for table, key in pending[start:start + BATCH_GET_SIZE]:
            request.setdefault(table, {"Keys": [], **(options or {}).get(table, {})})["Keys"].append(dict(key))
        for attempt in range(MAX_READ_ATTEMPTS):
            try:
                answer = client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as error:
                raise StorageUnavailable(f"DynamoDB BatchGetItem of {what} failed: {type(error).__name__}") from error
            for table, items in (answer.get("Responses") or {}).items():
                found.setdefault(table, []).extend(from_dynamodb(item) for item in items)
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            sleep(min(1.0, 0.05 * 2 ** attempt))
        if request:
            raise StorageUnavailable(f"DynamoDB left {what} reads unprocessed (throttled)")
    return found
