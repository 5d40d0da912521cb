"""DynamoDB reads in batches: BatchGetItem a hundred keys at a time, unprocessed keys retried with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from billops_cli.output import CliError

from billops.storage.batch_reads import BATCH_GET_SIZE


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def batch_get(dynamodb: Any, table: str, key_name: str, keys: Iterable[str], attributes: Sequence[str], *,
              consistent: bool = False, on_chunk: Callable[[int], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, dict[str, Any]]:
    """Items by key, BATCH_GET_SIZE keys per BatchGetItem (billops.storage.batch_reads), with progress per chunk."""
    from billops.storage.batch_reads import get_all
    from billops.storage.errors import StorageUnavailable

    names = {f"#a{index}": name for index, name in enumerate(dict.fromkeys((key_name, *attributes)))}
    options = {table: {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names,
                       "ConsistentRead": consistent}}
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(list(dict.fromkeys(keys)), BATCH_GET_SIZE):
        try:
            items = get_all(dynamodb, [(table, {key_name: {"S": key}}) for key in chunk], options=options,
                            what=f"{table}'s keys", sleep=sleep)
        except StorageUnavailable as error:
            raise CliError(f"{error}; try again later") from error
        found.update((str(item[key_name]), item) for item in items.get(table, []))
        if on_chunk is not None:
            on_chunk(len(chunk))
    return found
