"""Pagination in ChargeBee's style: ``limit`` (1-100, default 10) and an opaque ``offset``.

A list answer is ``{"list": [...], "next_offset": "..."}``; ``next_offset`` is present only when there is more, and
is passed back as ``offset`` to get the next page. The offset is base64url of a small JSON document (where the
previous page stopped: DynamoDB's LastEvaluatedKey, or a position); clients must treat it as opaque. A damaged one
is refused with 400 naming ``offset``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from billops.merchant_api import api_failures as failures

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_OFFSET_CHARS = 2048


def parse_limit(text: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise failures.param_wrong_value(f"limit must be a whole number from 1 to {maximum}.", "limit")
    return int(text)


def encode_offset(position: dict[str, Any]) -> str:
    text = json.dumps(position, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_offset(text: str | None) -> dict[str, Any] | None:
    if text is None or text == "":
        return None
    position: Any = None
    if len(text) <= MAX_OFFSET_CHARS:
        try:
            padded = text + "=" * (-len(text) % 4)
            position = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
        except (ValueError, UnicodeError, binascii.Error):
            position = None
    if not isinstance(position, dict):
        raise failures.param_wrong_value("offset is not an offset this API gave (pass next_offset back as it is).",
                                         "offset")
    return position


def dynamodb_key(position: dict[str, Any] | None, name: str = "key") -> dict[str, Any] | None:
    """A LastEvaluatedKey kept in an offset: string attributes only (every key of our tables is a string)."""
    if position is None or position.get(name) is None:
        return None
    key = position[name]
    if (not isinstance(key, dict) or not key or len(key) > 4 or not all(
            isinstance(k, str) and isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
            for k, v in key.items())):
        raise failures.param_wrong_value("offset is not an offset this API gave (pass next_offset back as it is).",
                                         "offset")
    return key


def page(items: list[Any], next_position: dict[str, Any] | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"list": items}
    if next_position is not None:
        answer["next_offset"] = encode_offset(next_position)
    return answer
