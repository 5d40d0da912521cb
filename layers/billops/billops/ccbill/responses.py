"""Reading what CCBill answers: quoted CSV (the default) or XML (``returnXML=1``), defensively.

Shapes CCBill documents (ccbill-facts.md 2.3, ccbill-discount-subscription.txt, the cancel addendum):

* a result code, CSV ``"results"\\n"1"`` or XML ``<?xml version='1.0' standalone='yes'?>\\n<results>1</results>``;
* a document, CSV with a header line of field names and a line of values, or XML ``<results>`` with leaf children
  (viewSubscriptionStatus; chargeByPreviousTransactionId's ``approved`` / ``subscriptionId`` / ``declineCode``);
* DataLink-level refusals as plain text starting ``Error:``.

And shapes nobody documents but everybody meets: an empty body, an HTML error page from a proxy, bare words.
Those are *unreadable*, never coerced into a code: a body that does not say "1" did not say "success".
Copies of CCBill's guide also show ``"results" "-10"`` on one line and ``standalone="true"`` (not valid XML);
both are accepted.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from enum import StrEnum
from xml.etree.ElementTree import ParseError  # nosec B405  # the exception class only; parsing is defusedxml's

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml_safely


class BodyKind(StrEnum):
    CODE = "code"
    DOCUMENT = "document"
    DATALINK_ERROR = "datalink_error"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ParsedBody:
    kind: BodyKind
    code: int | None = None
    fields: dict[str, str] = field(default_factory=dict)
    detail: str = ""  # why a body is unreadable, or the DataLink error text
    datalink_code: str | None = None
    body_format: str | None = None  # "csv" | "xml" | "text"


MAX_EXCERPT = 200
_CODE = re.compile(r"^[+-]?\d{1,4}$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ONE_LINE_PAIR = re.compile(r'^"([^"]*)"\s+"([^"]*)"$')
_XML_DECLARATION = re.compile(r"^<\?xml[^>]*\?>", re.IGNORECASE)
_DATALINK_ERROR = re.compile(r"^error\s*:\s*(\d{2})?", re.IGNORECASE)
_HTML = re.compile(r"^(<!doctype\s+html|<html|<head|<body|<title|<h1|<p>)", re.IGNORECASE)


def excerpt(text: str) -> str:
    """A short, single-line excerpt of a body for messages (CCBill's answers carry no secrets)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_EXCERPT else flat[:MAX_EXCERPT] + "..."


def parse_code(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if _CODE.match(text) else None


def parse_body(body: bytes | str) -> ParsedBody:
    """Classify and parse one answer of CCBill. Never raises on odd input."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text.lstrip("\ufeff").strip()
    if not text:
        return ParsedBody(BodyKind.UNREADABLE, detail="empty body", body_format="text")
    datalink = _DATALINK_ERROR.match(text)
    if datalink:
        return ParsedBody(BodyKind.DATALINK_ERROR, detail=excerpt(text), datalink_code=datalink.group(1),
                          body_format="text")
    if _HTML.match(text):
        return ParsedBody(BodyKind.UNREADABLE, detail=f"an HTML page: {excerpt(text)}", body_format="text")
    if text.startswith("<"):
        return _parse_xml(text)
    return _parse_csv(text)


def _parse_xml(text: str) -> ParsedBody:
    document = _XML_DECLARATION.sub("", text, count=1).strip()
    if "<!DOCTYPE" in document.upper() or "<!ENTITY" in document.upper():
        # CCBill sends neither; refusing them keeps entity tricks out of the parser.
        return ParsedBody(BodyKind.UNREADABLE, detail="XML with a DOCTYPE or ENTITY", body_format="xml")
    try:
        root = parse_xml_safely(document, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        return ParsedBody(BodyKind.UNREADABLE, detail=f"malformed XML ({exc}): {excerpt(text)}", body_format="xml")
    if root.tag != "results":
        return ParsedBody(BodyKind.UNREADABLE, detail=f"XML root <{root.tag}> is not <results>: {excerpt(text)}",
                          body_format="xml")
    children = list(root)
    if not children:
        code = parse_code(root.text)
        if code is None:
            return ParsedBody(BodyKind.UNREADABLE, detail=f"non-numeric <{root.tag}>: {excerpt(text)}",
                              body_format="xml")
        return ParsedBody(BodyKind.CODE, code=code, fields={root.tag: str(code)}, body_format="xml")
    fields: dict[str, str] = {}
    for child in children:
        if len(child):
            # A nested element is not a shape CCBill documents; keep its text content rather than guess.
            fields[child.tag] = "".join(child.itertext()).strip()
        else:
            fields[child.tag] = (child.text or "").strip()
    return _document(fields, "xml")


def _parse_csv(text: str) -> ParsedBody:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        pair = _ONE_LINE_PAIR.match(lines[0].strip())
        if pair:
            lines = [f'"{pair.group(1)}"', f'"{pair.group(2)}"']
    try:
        rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO("\n".join(lines)))]
    except csv.Error as exc:
        return ParsedBody(BodyKind.UNREADABLE, detail=f"malformed CSV ({exc}): {excerpt(text)}", body_format="csv")
    if len(rows) == 1 and len(rows[0]) == 1:
        code = parse_code(rows[0][0])
        if code is not None:
            return ParsedBody(BodyKind.CODE, code=code, fields={"results": str(code)}, body_format="csv")
        return ParsedBody(BodyKind.UNREADABLE, detail=f"not a CCBill answer: {excerpt(text)}", body_format="text")
    if len(rows) != 2:
        # CCBill's CSV is a header line and one line of values; a third line is something else's text.
        return ParsedBody(BodyKind.UNREADABLE, detail=f"not a CCBill answer: {excerpt(text)}", body_format="text")
    header, values = rows[0], rows[1]
    if not all(_FIELD_NAME.match(name) for name in header):
        return ParsedBody(BodyKind.UNREADABLE, detail=f"not a CCBill answer: {excerpt(text)}", body_format="text")
    if len(header) != len(values):
        return ParsedBody(BodyKind.UNREADABLE,
                          detail=f"CSV header has {len(header)} fields but the values line {len(values)}",
                          body_format="csv")
    return _document(dict(zip(header, values, strict=True)), "csv")


def _document(fields: dict[str, str], body_format: str) -> ParsedBody:
    if list(fields) == ["results"]:
        code = parse_code(fields["results"])
        if code is None:
            return ParsedBody(BodyKind.UNREADABLE, detail=f"non-numeric results: {excerpt(fields['results'])}",
                              body_format=body_format)
        return ParsedBody(BodyKind.CODE, code=code, fields={"results": str(code)}, body_format=body_format)
    return ParsedBody(BodyKind.DOCUMENT, fields=fields, body_format=body_format)
