"""What the daily figures read (README's configuration table and docs/reports.md list them).

* BILLOPS_REPORTS_TABLE            the figures' table (unset: the projector counts nothing, the API answers 404)
* BILLOPS_REPORT_CURRENCY          the accounting currency of every amount (alpha or CCBill's numeric code; USD)
* BILLOPS_REPORT_EXCHANGE_RATES    JSON {"EUR": "1.08", ...}: report-currency units per unit of another currency,
                                   for amounts CCBill gives in no accounting amount of the report currency
* BILLOPS_CHARGEBACK_THRESHOLDS    JSON, billops.reports.chargeback_thresholds (empty: the schemes' defaults)
* BILLOPS_REPORT_FACT_EVENTS       true: publish a DeliveryCounted domain event per counted delivery (the optional
                                   analytics export; the template sets it with AnalyticsExport)
* BILLOPS_REPORT_GAUGE_SECONDS     how often a projector container emits the MRR / active-subscriptions gauges (300)

The shared rules apply (billops.settings.base): a value that cannot be honoured is refused at start-up naming the
variable, never replaced by the default, so a typo in a rate cannot turn into silently wrong money.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from billops.reference.currencies import alpha_for
from billops.reports.chargeback_thresholds import CardThresholds, parse_thresholds
from billops.settings.base import Flag, Number, SettingsModel, Text, _blank_is_default

_Document = Annotated[Any, NoDecode]
"""A JSON setting: parsed by its field's validator (pydantic-settings would otherwise decode it first)."""


def _currency(text: str) -> str:
    alpha = alpha_for(str(text).strip())
    if alpha is None:
        raise ValueError(f"{text!r} is not a currency CCBill bills in (USD, EUR, GBP, CAD, AUD, JPY or their numeric "
                         "codes)")
    return alpha


class ReportSettings(SettingsModel):
    reports_table: Text = Field(None, validation_alias="BILLOPS_REPORTS_TABLE")
    currency: Annotated[str, BeforeValidator(_blank_is_default)] = Field("USD",
                                                                        validation_alias="BILLOPS_REPORT_CURRENCY")
    exchange_rates: _Document = Field(None, validation_alias="BILLOPS_REPORT_EXCHANGE_RATES")
    """alpha code -> report-currency units per unit (the report currency itself left out)."""
    thresholds: _Document = Field(None, validation_alias="BILLOPS_CHARGEBACK_THRESHOLDS")
    """card type -> billops.reports.chargeback_thresholds.CardThresholds (unset: the schemes' published levels)."""
    fact_events: Flag = Field(False, validation_alias="BILLOPS_REPORT_FACT_EVENTS")
    gauge_seconds: Number = Field(300.0, ge=0, validation_alias="BILLOPS_REPORT_GAUGE_SECONDS")
    event_bus_name: Text = Field(None, validation_alias="BILLOPS_EVENT_BUS_NAME")

    @property
    def enabled(self) -> bool:
        return bool(self.reports_table)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return _currency(value)

    @field_validator("exchange_rates")
    @classmethod
    def _rates(cls, value: Any, info: ValidationInfo) -> dict[str, Decimal]:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("is not valid JSON") from None
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError('must be a JSON object like {"EUR": "1.08"}')
        rates = {}
        for code, text in value.items():
            alpha = _currency(str(code))
            try:
                rate = Decimal(str(text))
            except (InvalidOperation, ValueError):
                rate = Decimal(0)
            if isinstance(text, bool) or not rate.is_finite() or rate <= 0:
                raise ValueError(f"[{code!r}] must be a positive number")
            if alpha != info.data.get("currency"):
                rates[alpha] = rate
        return rates

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: Any) -> Mapping[str, CardThresholds]:
        if value is None or isinstance(value, str):
            return parse_thresholds(value)  # ThresholdsError is a ValueError: its message names the problem
        return value
