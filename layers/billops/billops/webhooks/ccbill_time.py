"""In which time zone CCBill's webhook times are, and their conversion to UTC.

CCBill's ``timestamp`` is ``YYYY-MM-DD HH:MM:SS`` with no zone, and the reference documents do not say which zone it
is in. The default, ``America/Phoenix`` (Mountain Standard Time, UTC-7 all year: Arizona keeps no daylight saving
time), is the best public evidence (docs/ccbill-assumptions.md, "Inbound: webhooks"): CCBill is based in the Phoenix
area and its first satellite is "Phoenix, Arizona"; overdoll, built and tested against a live CCBill account, parses
webhook timestamps (and DataLink's dates) in MST and converts them to UTC; in the captures of DmytroVasin/ccbill_ruby
a chargeback's reason "Charged Back on 05/05/2016" carries timestamp 2016-05-05 04:37:59, a date that would be
05/04 in Phoenix were the timestamp UTC. ``BILLOPS_CCBILL_TIMEZONE`` changes it: an IANA name (``UTC``,
``America/Phoenix``...) or a fixed offset (``-07:00``).

Only the standard library is imported: this module is on the receiver's cold-start path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

DEFAULT_CCBILL_TIMEZONE = "America/Phoenix"
ARIZONA_STANDARD_TIME = timezone(timedelta(hours=-7), "MST")
"""What America/Phoenix is at every moment since 1968: the fallback where no time zone database is installed."""

_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])([0-9]{1,2})(?::?([0-9]{2}))?")
_TIMESTAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,6})?\s*(Z|[+-][0-9]{2}:?[0-9]{2})?"
)


class UnknownTimeZone(ValueError):
    """BILLOPS_CCBILL_TIMEZONE names no time zone this runtime knows."""


@lru_cache(maxsize=8)
def ccbill_zone(name: str | None) -> tzinfo:
    """The tzinfo for a BILLOPS_CCBILL_TIMEZONE value (default: America/Phoenix). Raises UnknownTimeZone."""
    text = (name or "").strip() or DEFAULT_CCBILL_TIMEZONE
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    offset = _OFFSET.fullmatch(text)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta >= timedelta(hours=24):
            raise UnknownTimeZone(f"BILLOPS_CCBILL_TIMEZONE: {text!r} is not an offset from UTC")
        return timezone(-delta if sign == "-" else delta)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        if text == DEFAULT_CCBILL_TIMEZONE:
            return ARIZONA_STANDARD_TIME  # a runtime without tzdata still gets the default right
        raise UnknownTimeZone(f"BILLOPS_CCBILL_TIMEZONE: no time zone called {text!r}") from None


def ccbill_time_to_utc(value: str | None, zone: tzinfo) -> str | None:
    """CCBill's ``timestamp`` as ISO-8601 UTC (``2025-01-31T19:00:00Z``), or None when absent or unreadable.

    A time without a zone is in ``zone`` (CCBill's); one that carries ``Z`` or an offset keeps it.
    """
    match = _TIMESTAMP.fullmatch((value or "").strip())
    if not match:
        return None
    day, clock, _fraction, offset = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:  # e.g. month 13
        return None
    if offset:
        sign = -1 if offset.startswith("-") else 1
        digits = offset.lstrip("+-").replace(":", "")
        given = UTC if offset == "Z" else timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        moment = moment.replace(tzinfo=given)
    else:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
