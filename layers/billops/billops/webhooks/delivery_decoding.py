"""Turning an HTTP body from CCBill into a flat map of field name -> text.

CCBill posts either URL-encoded bodies (its original format; API Gateway's HTTP API hands these to Lambda
base64-encoded) or JSON (since Release 7, 2017). Both decode to the same map, so a delivery's identity does not
depend on the format chosen in CCBill's admin. Values stay text: IDs have leading zeros and amounts must keep their
exact decimal digits.

Liberal in what it reads (only an unreadable body is malformed here): a trailing or doubled ``&`` is an empty pair,
not an error; each form value is decoded from its percent-escapes as UTF-8 when it is valid UTF-8, else as
ISO-8859-1 (older CCBill forms post Latin-1 names: ``Jos%E9`` is "José", never U+FFFD); a field repeated with
another value keeps the last one (as PHP and Rails, which most CCBill integrations run on, read it) and is flagged,
unless it is one that identifies the delivery.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

FORM = "urlencoded"
JSON = "json"

_FORM_TYPES = ("application/x-www-form-urlencoded", "application/x-www-form-encoded")  # CCBill's docs spell both
IDENTITY_FIELDS = frozenset({"eventType", "subscriptionId", "transactionId", "clientAccnum", "clientSubacc"})
"""Fields that say what the delivery is: two different values for one of them make it contradictory (malformed)."""
MAX_FORM_FIELDS = 1000


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
    warnings: dict[str, str] = field(default_factory=dict)
    """Field name -> what was odd about it (never its value): kept anyway, flagged on the stored item."""
    json_numbers: frozenset[str] = frozenset()
    """Fields sent as JSON numbers (a number cannot carry leading zeros: some are restored later)."""


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


def _text(raw: bytes, charset: str | None = None) -> str:
    if charset:
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declared charset: read it as below rather than refuse it
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Older CCBill forms post Latin-1 names; Latin-1 decodes any byte, so nothing is refused for its charset.
        return raw.decode("latin-1")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _charset(content_type: str | None) -> str | None:
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            candidate = value.strip().strip('"').lower()
            try:
                return codecs.lookup(candidate).name
            except LookupError:
                return None
    return None


def _sniff(text: str) -> str | None:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return JSON
    if "=" in stripped and not stripped.startswith(("<", "[")):
        return FORM
    return None


def _flatten_json_value(value: object) -> str | None:
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


class _JsonNumber(str):
    """A JSON number's exact digits, marked so the decoder knows the sender typed it as a number."""


def _decode_json(text: str) -> tuple[dict[str, str], frozenset[str]]:
    try:
        # parse_float/parse_int keep the digits exactly as sent ("19.90" stays "19.90", not 19.9).
        document = json.loads(text, parse_float=_JsonNumber, parse_int=_JsonNumber)
    except (json.JSONDecodeError, RecursionError) as error:
        raise MalformedDelivery("The body is not valid JSON.") from error
    if not isinstance(document, dict):
        raise MalformedDelivery("The JSON body must be an object of CCBill fields.")
    fields: dict[str, str] = {}
    numbers: set[str] = set()
    for name, value in document.items():
        flat = _flatten_json_value(value)
        if flat is not None:
            fields[str(name)] = str(flat)
            if isinstance(value, _JsonNumber):
                numbers.add(str(name))
    return fields, frozenset(numbers)


def _form_text(raw: bytes, charset: str | None) -> str:
    """One percent-decoded name or value: the declared charset, else UTF-8 when valid, else ISO-8859-1."""
    return _text(unquote_to_bytes(raw.replace(b"+", b" ")), charset)


def _decode_form(raw: bytes, charset: str | None) -> tuple[dict[str, str], dict[str, str]]:
    fields: dict[str, str] = {}
    warnings: dict[str, str] = {}
    pairs = [part for part in raw.rstrip(b"\r\n").split(b"&") if part]  # "a=1&&b=2&" has two pairs, no error
    if len(pairs) > MAX_FORM_FIELDS:
        raise MalformedDelivery(f"The URL-encoded body has more than {MAX_FORM_FIELDS} fields.")
    for pair in pairs:
        raw_name, _, raw_value = pair.partition(b"=")
        name, value = _form_text(raw_name, charset), _form_text(raw_value, charset)
        if not name:
            warnings["(unnamed)"] = "a value without a field name was left out"
            continue
        if name in fields and fields[name] != value:
            if name in IDENTITY_FIELDS:
                raise MalformedDelivery(f"The field {name} appears twice with different values.", param=name)
            warnings[name] = "appears more than once with different values; the last one was kept"
        fields[name] = value
    return fields, warnings


def decode_body(raw: bytes, content_type: str | None) -> DecodedBody:
    """Decode by Content-Type (sniffed when missing or generic). Raises MalformedDelivery for an unreadable body."""
    if not raw.strip():
        raise MalformedDelivery("The body is empty; CCBill always posts the event's fields.")
    charset = _charset(content_type)
    text = _text(raw, charset)
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
    warnings: dict[str, str] = {}
    numbers: frozenset[str] = frozenset()
    if body_format == JSON:
        fields, numbers = _decode_json(text)
    else:
        fields, warnings = _decode_form(raw, charset)
    if not fields:
        raise MalformedDelivery("The body holds no fields.")
    return DecodedBody(fields=fields, body_format=body_format, warnings=warnings, json_numbers=numbers)


def canonical_payload(fields: dict[str, str]) -> str:
    """A stable text for a decoded delivery (same for its JSON and URL-encoded forms): the basis of its hash."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
