"""DynamoDB reads in batches: BatchGetItem a hundred keys at a time, unprocessed keys retried with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from billops_cli.output import CliError

BATCH_GET_SIZE = 100


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def batch_get(dynamodb: Any, table: str, key_name: str, keys: Iterable[str], attributes: Sequence[str], *,
              consistent: bool = False, on_chunk: Callable[[int], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, dict[str, Any]]:
    """Items by key, BATCH_GET_SIZE keys per BatchGetItem, unprocessed keys retried with backoff."""
    from billops.storage.events_table import from_dynamodb

    names = {f"#a{index}": name for index, name in enumerate(dict.fromkeys((key_name, *attributes)))}
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(keys))
    for chunk in chunks(unique, BATCH_GET_SIZE):
        request: dict[str, Any] = {table: {"Keys": [{key_name: {"S": key}} for key in chunk],
                                           "ProjectionExpression": ", ".join(names),
                                           "ExpressionAttributeNames": names, "ConsistentRead": consistent}}
        attempt = 0
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for raw in answer.get("Responses", {}).get(table, []):
                item = from_dynamodb(raw)
                found[str(item[key_name])] = item
            request = answer.get("UnprocessedKeys") or {}
            if request:
                attempt += 1
                if attempt > 10:
                    raise CliError(f"DynamoDB kept {table}'s keys unprocessed (throttled); try again later")
                sleep(min(2.0, 0.05 * 2 ** attempt))
        if on_chunk is not None:
            on_chunk(len(chunk))
    return found
