"""Settings of the daily figures, from environment variables (README's configuration table lists them).

* BILLOPS_REPORTS_TABLE            the figures' table (unset: the projector counts nothing, the API answers 404)
* BILLOPS_REPORT_CURRENCY          the accounting currency of every amount (alpha or CCBill's numeric code; USD)
* BILLOPS_REPORT_EXCHANGE_RATES    JSON {"EUR": "1.08", ...}: report-currency units per unit of another currency,
                                   for amounts CCBill gives in no accounting amount of the report currency
* BILLOPS_CHARGEBACK_THRESHOLDS    JSON, billops.reports.chargeback_thresholds (empty: the schemes' defaults)
* BILLOPS_REPORT_FACT_EVENTS       true: publish a DeliveryCounted domain event per counted delivery (the optional
                                   analytics export; the template sets it with AnalyticsExport)
* BILLOPS_REPORT_GAUGE_SECONDS     how often a projector container emits the MRR / active-subscriptions gauges (300)

A value that cannot be honoured raises SettingsError at start-up, naming the setting: a typo in a rate must not
turn into silently wrong money.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from billops.reference.currencies import alpha_for
from billops.reports.chargeback_thresholds import CardThresholds, ThresholdsError, parse_thresholds
from billops.settings import SettingsError


@dataclass(frozen=True)
class ReportSettings:
    reports_table: str | None = None
    currency: str = "USD"
    exchange_rates: Mapping[str, Decimal] = field(default_factory=dict)
    """alpha code -> report-currency units per unit."""
    thresholds: Mapping[str, CardThresholds] = field(default_factory=lambda: parse_thresholds(None))
    fact_events: bool = False
    gauge_seconds: float = 300.0
    event_bus_name: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.reports_table)


def _currency(text: str, setting: str) -> str:
    alpha = alpha_for(text.strip())
    if alpha is None:
        raise SettingsError(f"{setting}={text!r} is not a currency CCBill bills in (USD, EUR, GBP, CAD, AUD, JPY or "
                            "their numeric codes)")
    return alpha


def _rates(text: str | None, currency: str) -> dict[str, Decimal]:
    if text is None or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        raise SettingsError("BILLOPS_REPORT_EXCHANGE_RATES is not valid JSON") from None
    if not isinstance(document, Mapping):
        raise SettingsError('BILLOPS_REPORT_EXCHANGE_RATES must be a JSON object like {"EUR": "1.08"}')
    rates = {}
    for code, value in document.items():
        alpha = _currency(str(code), "BILLOPS_REPORT_EXCHANGE_RATES")
        try:
            rate = Decimal(str(value))
        except (InvalidOperation, ValueError):
            rate = Decimal(0)
        if isinstance(value, bool) or not rate.is_finite() or rate <= 0:
            raise SettingsError(f"BILLOPS_REPORT_EXCHANGE_RATES[{code!r}] must be a positive number")
        if alpha != currency:
            rates[alpha] = rate
    return rates


def report_settings_from_env(env: Mapping[str, str] | None = None) -> ReportSettings:
    env = os.environ if env is None else env
    currency = _currency(env.get("BILLOPS_REPORT_CURRENCY") or "USD", "BILLOPS_REPORT_CURRENCY")
    try:
        thresholds = parse_thresholds(env.get("BILLOPS_CHARGEBACK_THRESHOLDS"))
    except ThresholdsError as error:
        raise SettingsError(str(error)) from None
    try:
        gauge_seconds = max(float(env.get("BILLOPS_REPORT_GAUGE_SECONDS") or 300), 0.0)
    except ValueError:
        raise SettingsError("BILLOPS_REPORT_GAUGE_SECONDS must be a number of seconds") from None
    return ReportSettings(
        reports_table=(env.get("BILLOPS_REPORTS_TABLE") or "").strip() or None,
        currency=currency,
        exchange_rates=_rates(env.get("BILLOPS_REPORT_EXCHANGE_RATES"), currency),
        thresholds=thresholds,
        fact_events=(env.get("BILLOPS_REPORT_FACT_EVENTS") or "").strip().lower() in ("true", "1", "yes"),
        gauge_seconds=gauge_seconds,
        event_bus_name=(env.get("BILLOPS_EVENT_BUS_NAME") or "").strip() or None,
    )
