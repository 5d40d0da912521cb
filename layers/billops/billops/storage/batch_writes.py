"""Unconditional puts, 25 per BatchWriteItem, across tables: what the projector writes once per stream batch.

Only items that are the same whenever they are written go through here (a delivery's history entry, a batch's
delivery-log item): BatchWriteItem takes no condition, and a retried batch writes them again unchanged. One request
carries the puts of several tables, so a stream batch's history entries and log items cost one request per 25.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from billops.storage.errors import StorageUnavailable

BATCH_WRITE_SIZE = 25  # DynamoDB's BatchWriteItem limit
MAX_WRITE_ATTEMPTS = 6


def put_all(client: Any, puts: Iterable[tuple[str, Mapping[str, Any]]], *,
            sleep: Callable[[float], None] = time.sleep) -> int:
    """Write every (table name, item in DynamoDB JSON); unprocessed puts are retried with backoff. Returns the
    number of requests made.

    Raises StorageUnavailable if DynamoDB did not take them all (the caller fails the batch: the stream retries).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    pending = list(puts)
    requests = 0
    for start in range(0, len(pending), BATCH_WRITE_SIZE):
        chunk: dict[str, list[dict[str, Any]]] = {}
        for table, item in pending[start:start + BATCH_WRITE_SIZE]:
            chunk.setdefault(table, []).append({"PutRequest": {"Item": dict(item)}})
        for attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                answer = client.batch_write_item(RequestItems=chunk)
            except (ClientError, BotoCoreError) as error:
                raise StorageUnavailable(f"DynamoDB refused a batch write: {type(error).__name__}") from error
            requests += 1
            chunk = {table: left for table, left in (answer.get("UnprocessedItems") or {}).items() if left}
            if not chunk:
                break
            sleep(min(1.0, 0.05 * 2 ** attempt))
        if chunk:
            left = sum(len(items) for items in chunk.values())
            raise StorageUnavailable(f"DynamoDB left {left} batch writes unprocessed (throttled)")
    return requests
