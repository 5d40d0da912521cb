"""Turning an HTTP body from CCBill into a flat map of field name -> text.

CCBill posts either URL-encoded bodies (its original format; API Gateway's HTTP API hands these to Lambda
base64-encoded) or JSON (since Release 7, 2017). Both decode to the same map, so a delivery's identity does not
depend on the format chosen in CCBill's admin. Values stay text: IDs have leading zeros and amounts must keep their
exact decimal digits.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

FORM = "urlencoded"
JSON = "json"

_FORM_TYPES = ("application/x-www-form-urlencoded", "application/x-www-form-encoded")  # CCBill's docs spell both


class MalformedDelivery(ValueError):
    """The body cannot be read as a CCBill webhook. `param` names the offending field where there is one."""

    def __init__(self, message: str, param: str | None = None, code: str = "param_wrong_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class DecodedBody:
    fields: dict[str, str]
    body_format: str


def raw_body_bytes(body: str | None, is_base64_encoded: bool) -> bytes:
    """The bytes CCBill sent. Raises MalformedDelivery when the base64 wrapping itself is broken."""
    if not body:
        return b""
    if is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise MalformedDelivery("The body is not valid base64.") from error
    return body.encode("utf-8", errors="surrogateescape")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Older CCBill forms post Latin-1 names; Latin-1 decodes any byte, so nothing is refused for its charset.
        return raw.decode("latin-1")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _sniff(text: str) -> str | None:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return JSON
    if "=" in stripped and not stripped.startswith(("<", "[")):
        return FORM
    return None


def _flatten_json_value(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        # CCBill's payloads are flat; a nested value is kept verbatim (as JSON text) rather than refused.
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _decode_json(text: str) -> dict[str, str]:
    try:
        # parse_float/parse_int keep the digits exactly as sent ("19.90" stays "19.90", not 19.9).
        document = json.loads(text, parse_float=str, parse_int=str)
    except (json.JSONDecodeError, RecursionError) as error:
        raise MalformedDelivery("The body is not valid JSON.") from error
    if not isinstance(document, dict):
        raise MalformedDelivery("The JSON body must be an object of CCBill fields.")
    fields: dict[str, str] = {}
    for name, value in document.items():
        flat = _flatten_json_value(name, value)
        if flat is not None:
            fields[str(name)] = flat
    return fields


def _decode_form(text: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=1000)
    except ValueError as error:
        raise MalformedDelivery("The URL-encoded body cannot be parsed.") from error
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields and fields[name] != value:
            raise MalformedDelivery(f"The field {name} appears twice with different values.", param=name)
        fields[name] = value
    return fields


def decode_body(raw: bytes, content_type: str | None) -> DecodedBody:
    """Decode by Content-Type (sniffed when missing or generic). Raises MalformedDelivery."""
    if not raw.strip():
        raise MalformedDelivery("The body is empty; CCBill always posts the event's fields.")
    text = _text(raw)
    media_type = _media_type(content_type)
    if media_type in _FORM_TYPES:
        body_format = FORM
    elif media_type == "application/json" or media_type.endswith("+json"):
        body_format = JSON
    else:
        sniffed = _sniff(text)
        if sniffed is None:
            raise MalformedDelivery(
                f"Unsupported content type {media_type or '(none)'}: send URL-encoded or JSON.", param=None
            )
        body_format = sniffed
    fields = _decode_json(text) if body_format == JSON else _decode_form(text)
    if not fields:
        raise MalformedDelivery("The body holds no fields.")
    return DecodedBody(fields=fields, body_format=body_format)


def canonical_payload(fields: dict[str, str]) -> str:
    """A stable text for a decoded delivery (same for its JSON and URL-encoded forms): the basis of its hash."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
