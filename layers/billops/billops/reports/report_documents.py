"""The JSON documents of the figures: ``GET /v1/reports/summary`` and ``/daily`` (docs/merchant-api.md), and the
CLI's ``billops report --json``. Amounts are strings with two decimals in the report currency, ratios numbers
(6 decimals; null when there is nothing to divide by)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billops.reference.decline_codes import decline_text
from billops.reports import delivery_figures as names
from billops.reports.money import cents
from billops.reports.report_reading import ReportData

RATIO_DECIMALS = 6


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> float | None:
    return round(float(Decimal(numerator) / Decimal(denominator)), RATIO_DECIMALS) if denominator else None


def _by(figures: Mapping[str, Decimal], figure: str) -> dict[str, Decimal]:
    prefix = figure + names.SEPARATOR
    return {name[len(prefix):]: value for name, value in figures.items() if name.startswith(prefix) and value}


def _money(value: Decimal | None) -> str:
    return str(cents(value or Decimal(0)))


def figures_document(figures: Mapping[str, Decimal], active: Decimal, mrr: Decimal, currency: str) -> dict[str, Any]:
    def count(name: str) -> int:
        return int(figures.get(name, 0))

    def money(name: str) -> str:
        return _money(figures.get(name))

    transactions = count(names.SALES_N) + count(names.RENEWALS_N)
    codes = _by(figures, names.DECLINE_CODE_N)
    card_counts, card_amounts = _by(figures, names.CHARGEBACKS_N), _by(figures, names.CHARGEBACKS_AMT)
    return {
        "sales": {"count": count(names.SALES_N), "amount": money(names.SALES_AMT)},
        "renewals": {"count": count(names.RENEWALS_N), "amount": money(names.RENEWALS_AMT),
                     "success_rate": ratio(count(names.RENEWALS_N),
                                           count(names.RENEWALS_N) + count(names.RENEWAL_DECLINES_N))},
        "declines": {
            "count": count(names.DECLINES_N), "sales": count(names.SALE_DECLINES_N),
            "renewals": count(names.RENEWAL_DECLINES_N),
            "by_code": {code: {"count": int(value), "text": decline_text(code) if code.isdigit() else None}
                        for code, value in sorted(codes.items(), key=lambda pair: (-pair[1], pair[0]))},
            "by_reason": {reason: int(value) for reason, value in sorted(
                _by(figures, names.DECLINE_REASON_N).items(), key=lambda pair: (-pair[1], pair[0]))},
        },
        "refunds": {"count": count(names.REFUNDS_N), "amount": money(names.REFUNDS_AMT)},
        "voids": {"count": count(names.VOIDS_N), "amount": money(names.VOIDS_AMT)},
        "returns": {"count": count(names.RETURNS_N), "amount": money(names.RETURNS_AMT)},
        "chargebacks": {
            "count": count(names.CHARGEBACKS_N), "amount": money(names.CHARGEBACKS_AMT),
            "by_card_type": {card: {"count": int(value), "amount": _money(card_amounts.get(card))}
                             for card, value in sorted(card_counts.items())},
        },
        "chargeback_ratio": ratio(count(names.CHARGEBACKS_N), transactions),
        "refund_ratio": ratio(count(names.REFUNDS_N), transactions),
        "cancellations": count(names.CANCELLATIONS_N),
        "expirations": count(names.EXPIRATIONS_N),
        "active_subscriptions": int(active),
        "mrr": _money(mrr),
        "currency": currency,
        "unconverted": {code: _money(value) for code, value in sorted(_by(figures, names.UNCONVERTED_AMT).items())},
    }


def summary_document(data: ReportData, currency: str, client_subacc: str | None) -> dict[str, Any]:
    totals, active, mrr = data.totals()
    return {"report": {"from": data.start.isoformat(), "to": data.end.isoformat(), "client_subacc": client_subacc,
                       **figures_document(totals, active, mrr, currency)}}


def daily_documents(data: ReportData, currency: str, client_subacc: str | None) -> dict[str, Any]:
    return {"list": [{"daily_report": {"date": day, "client_subacc": client_subacc,
                                       **figures_document(figures, active, mrr, currency)}}
                     for day, figures, active, mrr in data.days()]}
