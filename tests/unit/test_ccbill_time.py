"""CCBill's time zone (issue 11): the setting, its default, and the conversion to UTC."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from billops.webhooks.ccbill_time import UnknownTimeZone, ccbill_time_to_utc, ccbill_zone

PHOENIX = ccbill_zone(None)


@pytest.mark.parametrize(("value", "utc"), [
    ("2026-01-15 10:30:00", "2026-01-15T17:30:00Z"),
    ("2026-07-15 10:30:00", "2026-07-15T17:30:00Z"),  # no daylight saving time in Arizona
    ("2026-12-31 20:00:00", "2027-01-01T03:00:00Z"),
    ("2026-01-15T10:30:00", "2026-01-15T17:30:00Z"),
    ("2026-01-15 10:30:00.250", "2026-01-15T17:30:00Z"),
    ("2026-01-15 10:30:00Z", "2026-01-15T10:30:00Z"),  # a time that says its zone keeps it
    ("2026-01-15T12:30:00+02:00", "2026-01-15T10:30:00Z"),
])
def test_the_default_is_arizona_time_converted_to_utc(value, utc):
    assert ccbill_time_to_utc(value, PHOENIX) == utc


@pytest.mark.parametrize("value", [None, "", "yesterday", "2026-13-15 10:30:00", "15/01/2026 10:30:00"])
def test_an_unreadable_time_is_none(value):
    assert ccbill_time_to_utc(value, PHOENIX) is None


@pytest.mark.parametrize(("name", "offset"), [("UTC", timedelta(0)), ("-07:00", timedelta(hours=-7)),
                                              ("+0530", timedelta(hours=5, minutes=30)), ("UTC-5", timedelta(hours=-5)),
                                              ("America/Phoenix", timedelta(hours=-7)), ("", timedelta(hours=-7))])
def test_the_setting_takes_names_and_offsets(name, offset):
    from datetime import datetime

    assert ccbill_zone(name).utcoffset(datetime(2026, 7, 1)) == offset


def test_a_zone_with_daylight_saving_time_follows_it():
    assert ccbill_time_to_utc("2026-07-15 10:30:00", ccbill_zone("America/Denver")) == "2026-07-15T16:30:00Z"
    assert ccbill_time_to_utc("2026-01-15 10:30:00", ccbill_zone("America/Denver")) == "2026-01-15T17:30:00Z"


def test_an_unknown_zone_is_refused_by_name():
    with pytest.raises(UnknownTimeZone, match="Mars/Olympus"):
        ccbill_zone("Mars/Olympus")


def test_utc_is_utc():
    assert ccbill_zone("utc") is UTC
