"""How the sandbox writes its answers: CCBill's quoted CSV by default, XML with ``returnXML=1``."""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape  # nosec B406  # escape() writes XML, it parses nothing

XML_DECLARATION = "<?xml version='1.0' standalone='yes'?>"


def wants_xml(params: Mapping[str, str]) -> bool:
    return (params.get("returnXML") or "").strip().lower() in ("1", "true", "yes", "y")


def _quote(value: str) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def render_code(code: int, xml: bool) -> tuple[str, str]:
    """``"results"\\n"1"`` or ``<results>1</results>`` and the content type."""
    if xml:
        return f"{XML_DECLARATION}\n<results>{code}</results>\n", "text/xml; charset=utf-8"
    return f'"results"\n"{code}"\n', "text/plain; charset=utf-8"


def render_document(fields: Mapping[str, str], xml: bool) -> tuple[str, str]:
    """A header line of field names and a line of values, or ``<results>`` with one child per field."""
    if xml:
        children = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in fields.items())
        return f"{XML_DECLARATION}\n<results>{children}</results>\n", "text/xml; charset=utf-8"
    header = ",".join(_quote(name) for name in fields)
    values = ",".join(_quote(value) for value in fields.values())
    return f"{header}\n{values}\n", "text/plain; charset=utf-8"


def render_bare(value: str) -> tuple[str, str]:
    """upgradeSubscription.cgi's allowUpgrade answers a bare value ("1")."""
    return f"{value}\n", "text/plain; charset=utf-8"


def render_page(title: str, message: str, fields: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The consumer-facing HTML of the upgrade form's approval or denial page."""
    items = "".join(f'<p id="{escape(name)}">{escape(str(value))}</p>' for name, value in (fields or {}).items())
    body = f"<html><head><title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>" \
           f"<p>{escape(message)}</p>{items}</body></html>\n"
    return body, "text/html; charset=utf-8"
