"""The report settings and the chargeback-ratio levels: published defaults, a setting that replaces them, refusals
that name the problem, and the month-to-date ratios with each card type's denominator."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from billops.reports.chargeback_thresholds import (
    BREACH,
    DEFAULT_THRESHOLDS,
    PREVIOUS_MONTH,
    SAME_MONTH,
    WARNING,
    card_type_key,
    crossings,
    month_ratios,
    parse_thresholds,
    previous_month,
)
from billops.reports.report_settings import report_settings_from_env
from billops.settings import SettingsError


def test_defaults_are_the_card_schemes_published_levels():
    visa, mastercard = DEFAULT_THRESHOLDS["VISA"], DEFAULT_THRESHOLDS["MASTERCARD"]
    assert (visa.warning.percent, visa.warning.min_chargebacks) == (Decimal("0.65"), 75)  # VDMP early warning
    assert (visa.breach.percent, visa.breach.min_chargebacks) == (Decimal("1.5"), 1500)  # VAMP from 2026-04-01
    assert visa.denominator == SAME_MONTH
    assert (mastercard.warning.percent, mastercard.warning.min_chargebacks) == (Decimal("1.0"), 100)  # CMM
    assert (mastercard.breach.percent, mastercard.breach.min_chargebacks) == (Decimal("1.5"), 100)  # ECM
    assert mastercard.denominator == PREVIOUS_MONTH  # this month's chargebacks / last month's transactions
    assert parse_thresholds("") == DEFAULT_THRESHOLDS


def test_the_setting_replaces_the_defaults():
    thresholds = parse_thresholds(json.dumps({"amex": {"warning": {"percent": "0.5", "min_chargebacks": 5},
                                                       "breach": {"percent": "1"}}}))
    assert set(thresholds) == {"AMEX"}
    assert thresholds["AMEX"].breach.min_chargebacks == 1 and thresholds["AMEX"].denominator == SAME_MONTH


@pytest.mark.parametrize("text, problem", [
    ("[1]", "must be a JSON object"),
    ("{oops", "not valid JSON"),
    ('{"VISA": {"warning": {"percent": "2"}, "breach": {"percent": "1"}}}', "warning level is above"),
    ('{"VISA": {"warning": {"percent": "0"}, "breach": {"percent": "1"}}}', "above 0"),
    ('{"VISA": {"warning": {"percent": "x"}, "breach": {"percent": "1"}}}', "must be a number"),
    ('{"VISA": {"warning": {"percent": "1", "min_chargebacks": 0}, "breach": {"percent": "1"}}}', "at least 1"),
    ('{"VISA": {"warning": {"percent": "1"}, "breach": {"percent": "1"}, "denominator": "year"}}', "denominator"),
    ('{"VISA": {"warning": {"percent": "1"}, "breach": {"percent": "1"}, "extra": 1}}', "unknown keys"),
    ('{"": {"warning": {"percent": "1"}, "breach": {"percent": "1"}}}', "card type"),
])
def test_a_setting_that_cannot_be_honoured_is_refused_at_start_up_naming_it(text, problem):
    with pytest.raises(SettingsError, match=problem) as refused:
        report_settings_from_env({"BILLOPS_CHARGEBACK_THRESHOLDS": text})
    assert "BILLOPS_CHARGEBACK_THRESHOLDS" in str(refused.value)


def test_currency_and_rates_settings():
    settings = report_settings_from_env({"BILLOPS_REPORTS_TABLE": "t", "BILLOPS_REPORT_CURRENCY": "978",
                                         "BILLOPS_REPORT_EXCHANGE_RATES": '{"USD": "0.92", "826": 1.17, "EUR": 1}'})
    assert (settings.enabled, settings.currency) == (True, "EUR")
    assert settings.exchange_rates == {"USD": Decimal("0.92"), "GBP": Decimal("1.17")}
    assert report_settings_from_env({}).enabled is False
    for bad in ({"BILLOPS_REPORT_CURRENCY": "XYZ"}, {"BILLOPS_REPORT_EXCHANGE_RATES": '{"EUR": "-1"}'},
                {"BILLOPS_REPORT_EXCHANGE_RATES": '{"BTC": "1"}'}, {"BILLOPS_REPORT_EXCHANGE_RATES": "1.08"}):
        with pytest.raises(SettingsError):
            report_settings_from_env(bad)


def test_card_types_are_one_key_each():
    assert [card_type_key(value) for value in ("VISA", "visa", "Master Card", "MC", "American Express", None, "")] \
        == ["VISA", "VISA", "MASTERCARD", "MASTERCARD", "AMEX", "UNKNOWN", "UNKNOWN"]


def test_month_to_date_ratios_use_each_card_types_denominator_and_both_conditions_of_a_level():
    thresholds = parse_thresholds(json.dumps({
        "VISA": {"warning": {"percent": "1", "min_chargebacks": 2}, "breach": {"percent": "2", "min_chargebacks": 3}},
        "MASTERCARD": {"warning": {"percent": "1", "min_chargebacks": 1}, "breach": {"percent": "1.5"},
                       "denominator": "previous_month"}}))
    transactions = {"2026-03": {"VISA": 100, "MASTERCARD": 100}, "2026-02": {"MASTERCARD": 50}}
    ratios = month_ratios("2026-03", {"VISA": 2, "MASTERCARD": 1, "AMEX": 9}, transactions, thresholds)
    assert [(found.card_type, found.chargebacks, found.transactions, found.ratio) for found in ratios] == [
        ("MASTERCARD", 1, 50, Decimal("0.02")), ("VISA", 2, 100, Decimal("0.02"))]
    # VISA reaches 2 % but has 2 chargebacks, not the 3 the breach level asks for.
    assert [(found.card_type, level) for found, level in crossings(ratios, thresholds)] == [
        ("MASTERCARD", WARNING), ("MASTERCARD", BREACH), ("VISA", WARNING)]
    assert month_ratios("2026-03", {"MASTERCARD": 1}, {}, thresholds)[0].ratio is None  # nothing to divide by
    assert crossings(month_ratios("2026-03", {"MASTERCARD": 1}, {}, thresholds), thresholds) == []
    assert previous_month("2026-01") == "2025-12" and previous_month("2026-10") == "2026-09"
