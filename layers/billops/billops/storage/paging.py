"""Reading a DynamoDB Query or Scan page after page (``LastEvaluatedKey``): the one loop every table uses.

``every_item`` reads to the end (or to a bound on the pages); ``fill`` reads one page of an API list (until it holds
``limit`` items after the filter) and says where the next page starts. A failed call raises StorageUnavailable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import from_dynamodb

Call = Callable[..., Mapping[str, Any]]


def _error_name(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or type(error).__name__)


def read_page(call: Call, request: Mapping[str, Any], *, failure: str) -> Mapping[str, Any]:
    """One Query / Scan call (``call``: the client's ``query`` or ``scan``); StorageUnavailable(failure) if it failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(**request)
    except (ClientError, BotoCoreError) as error:
        raise StorageUnavailable(f"{failure}: {_error_name(error)}") from error


def every_item(call: Call, request: Mapping[str, Any], *, failure: str, max_pages: int | None = None
               ) -> Iterator[dict[str, Any]]:
    """Each item the request finds, deserialized, page after page until the end (or ``max_pages`` pages)."""
    request = dict(request)
    pages = 0
    while True:
        answer = read_page(call, request, failure=failure)
        yield from (from_dynamodb(item) for item in answer.get("Items", []))
        pages += 1
        if "LastEvaluatedKey" not in answer or (max_pages is not None and pages >= max_pages):
            return
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def fill(call: Call, request: Mapping[str, Any], limit: int, start_key: Mapping[str, Any] | None, *, failure: str
         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Read from ``start_key`` until ``limit`` items (after the filter) or the end: the items, and the key the next
    page starts from (None at the end)."""
    found: list[dict[str, Any]] = []
    key = dict(start_key) if start_key else None
    while len(found) < limit:
        kwargs = dict(request, Limit=limit - len(found))
        if key:
            kwargs["ExclusiveStartKey"] = key
        answer = read_page(call, kwargs, failure=failure)
        found.extend(from_dynamodb(item) for item in answer.get("Items", []))
        key = answer.get("LastEvaluatedKey")
        if not key:
            return found, None
    return found, key
