"""Reading what a request sends: a form-encoded or JSON body, and the query string.

Bodies: ``application/x-www-form-urlencoded`` (curl's ``-d name=value``, ChargeBee's own format; HTTP API hands it
to Lambda base64-encoded) or ``application/json`` (an object). Without a Content-Type a body starting with ``{`` is
read as JSON, anything else as a form. Form values are text; pydantic turns ``"30"`` into 30 where a number is
wanted. A name given twice is refused (which one was meant?), and so are unknown names - a typo must not be ignored
silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from billops.merchant_api import api_failures as failures
from billops.webhooks.delivery_decoding import MalformedDelivery, raw_body_bytes

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


MAX_JSON_DEPTH = 8
"""Parameters are flat (a value at most a small object): anything deeper is refused before it reaches code that
walks it (validation, logging) recursively."""


def _depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """How deeply containers nest in ``value``, counted without recursion and no further than ``limit``."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level >= limit:
                return level
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _pairs(text: str, what: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=100)
    except ValueError:
        raise failures.invalid_request(f"The {what} has too many fields.") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise failures.param_wrong_value(f"{name} is given more than once.", name)
        values[name] = value
    return values


def parse_body(body: str | None, is_base64_encoded: bool, content_type: str | None,
               max_bytes: int = 64 * 1024) -> dict[str, Any]:
    """The request's parameters as a dict (JSON types kept, form values as text)."""
    try:
        raw = raw_body_bytes(body, is_base64_encoded)
    except MalformedDelivery:
        raise failures.invalid_request("The request body could not be read.") from None
    if len(raw) > max_bytes:
        raise failures.invalid_request(f"The request body is larger than {max_bytes} bytes.")
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    media_type = _media_type(content_type)
    if media_type == JSON or media_type.endswith("+json") or (not media_type and text.startswith("{")):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise failures.invalid_request("The request body is not valid JSON.") from None
        if not isinstance(document, dict):
            raise failures.invalid_request("The request body must be a JSON object.")
        if _depth(document) > MAX_JSON_DEPTH:
            raise failures.invalid_request(f"The request body is nested deeper than {MAX_JSON_DEPTH} levels.")
        return document
    if media_type in ("", FORM, "application/x-www-form-encoded", "text/plain"):
        return _pairs(text, "request body")
    raise failures.invalid_request(f"Send the parameters as {FORM} or {JSON}.")


def parse_query(raw_query: str | None, allowed: Iterable[str]) -> dict[str, str]:
    """The query parameters; an unknown one is refused naming it."""
    values = _pairs(raw_query or "", "query string")
    allowed = set(allowed)
    for name in values:
        if name not in allowed:
            raise failures.param_wrong_value(f"Unknown query parameter {name!r}.", name)
    return values


def refuse_unknown(parameters: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for name in parameters:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise failures.param_wrong_value(f"Unknown parameter {name!r} (this request takes: {known}).", name)
