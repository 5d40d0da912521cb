"""``billops report --from DAY --to DAY [--client-subacc N] [--png FILE]``: the daily figures of a range of days.

Prints the summary (the figures of ``GET /v1/reports/summary``) and a line per day; ``--json`` prints both
documents of the merchant API (``{"summary": {"report": ...}, "daily": {"list": [...]}}``); ``--png`` also draws
the daily figures (billops_cli.report_chart, matplotlib). Read straight from the reports table with the operator's
credentials (``dynamodb:GetItem`` and ``dynamodb:Query`` on it). The report currency and the chargeback-ratio
levels are the stack's (its ReportCurrency and ChargebackThresholds parameters; locally BILLOPS_REPORT_CURRENCY and
BILLOPS_CHARGEBACK_THRESHOLDS, as the local stack reads them).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from billops_cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, Output, render_fields, render_table
from billops_cli.targets import Target

MAX_RANGE_DAYS = 366


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("report", parents=[common],
                                 help="the daily figures of a range of days: sales, renewals, declines, refunds, "
                                      "chargebacks, MRR (--png draws them)")
    parser.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first day (UTC)")
    parser.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="last day (UTC), included")
    parser.add_argument("--client-subacc", metavar="N", help="only this subaccount (default: every subaccount)")
    parser.add_argument("--png", type=Path, metavar="FILE",
                        help="also draw MRR, rebill success, declines by code and the chargeback ratio to FILE")
    parser.set_defaults(handler=report)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} must be a day as YYYY-MM-DD, not {text!r}", EXIT_USAGE) from None


def _settings(target: Target) -> tuple[str, Any]:
    """The stack's report currency and chargeback-ratio levels."""
    from billops.reports.report_settings import report_settings_from_env
    from billops.settings import SettingsError

    environment = {"BILLOPS_REPORT_CURRENCY": target.setting("ReportCurrency", "BILLOPS_REPORT_CURRENCY") or "USD",
                   "BILLOPS_CHARGEBACK_THRESHOLDS": target.setting("ChargebackThresholds",
                                                                   "BILLOPS_CHARGEBACK_THRESHOLDS") or ""}
    try:
        settings = report_settings_from_env(environment)
    except SettingsError as error:
        raise CliError(f"the stack's report settings cannot be used: {error}") from None
    return settings.currency, settings.thresholds


def report(args: argparse.Namespace, target: Target, out: Output) -> int:
    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    if end < start:
        raise CliError("--to must not be before --from", EXIT_USAGE)
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise CliError(f"a report covers at most {MAX_RANGE_DAYS} days", EXIT_USAGE)
    subacc = (args.client_subacc or "").strip() or None
    if subacc is not None and not (subacc.isdigit() and len(subacc) <= 4):
        raise CliError("--client-subacc must be up to 4 digits", EXIT_USAGE)
    subacc = subacc.zfill(4) if subacc else None
    if args.png is not None:
        from billops_cli.report_chart import MATPLOTLIB_MISSING, matplotlib_available

        if not matplotlib_available():
            raise CliError(MATPLOTLIB_MISSING, EXIT_FAILED)
    from billops.reports.report_documents import daily_documents, summary_document
    from billops.reports.report_reading import ReportReader
    from billops.storage.reports_table import ReportsTable

    currency, thresholds = _settings(target)
    reader = ReportReader(ReportsTable(target.table("ReportsTable"), target.client("dynamodb")))
    data = reader.read(start, end, subacc)
    summary, daily = summary_document(data, currency, subacc), daily_documents(data, currency, subacc)
    document: dict[str, Any] = {"target": target.description, "summary": summary, "daily": daily}
    human = [_summary_text(summary["report"], target), "", _daily_table(daily)]
    if args.png is not None:
        from billops_cli.report_chart import draw

        where = draw(data, thresholds, currency, args.png,
                     f"billops {start} to {end}" + (f", subaccount {subacc}" if subacc else ", all subaccounts"))
        document["png"] = str(where)
        human.append(f"\nChart written to {where}")
    out.emit(document, "\n".join(human))
    return EXIT_OK


def _summary_text(report: dict[str, Any], target: Target) -> str:
    currency = report["currency"]

    def money(value: str) -> str:
        return f"{value} {currency}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.2f} %"

    declines = report["declines"]
    codes = ", ".join(f"{code} ({entry['text'] or 'unknown code'}): {entry['count']}"
                      for code, entry in declines["by_code"].items()) or "none"
    cards = ", ".join(f"{card}: {entry['count']} ({money(entry['amount'])})"
                      for card, entry in report["chargebacks"]["by_card_type"].items()) or "none"
    rows = [
        ("sales", f"{report['sales']['count']} ({money(report['sales']['amount'])})"),
        ("renewals", f"{report['renewals']['count']} ({money(report['renewals']['amount'])}), rebill success "
                     f"{ratio(report['renewals']['success_rate'])}"),
        ("declines", f"{declines['count']} ({declines['sales']} purchases, {declines['renewals']} renewals)"),
        ("declines by code", codes),
        ("refunds", f"{report['refunds']['count']} ({money(report['refunds']['amount'])}), "
                    f"ratio {ratio(report['refund_ratio'])}"),
        ("voids", f"{report['voids']['count']} ({money(report['voids']['amount'])})"),
        ("returns", f"{report['returns']['count']} ({money(report['returns']['amount'])})"),
        ("chargebacks", f"{report['chargebacks']['count']} ({money(report['chargebacks']['amount'])}), "
                        f"ratio {ratio(report['chargeback_ratio'])}"),
        ("chargebacks by card", cards),
        ("cancellations", report["cancellations"]),
        ("expirations", report["expirations"]),
        (f"active on {report['to']}", report["active_subscriptions"]),
        (f"MRR on {report['to']}", money(report["mrr"])),
    ]
    if report["unconverted"]:
        rows.append(("not converted (no rate)", ", ".join(f"{value} {code}"
                                                           for code, value in report["unconverted"].items())))
    scope = f"subaccount {report['client_subacc']}" if report["client_subacc"] else "all subaccounts"
    return "\n".join([f"Report of {target.description}, {report['from']} to {report['to']}, {scope}:",
                      render_fields(rows)])


def _daily_table(daily: dict[str, Any]) -> str:
    rows = []
    for entry in daily["list"]:
        day = entry["daily_report"]
        rows.append({"date": day["date"], "sales": day["sales"]["count"], "renewals": day["renewals"]["count"],
                     "declines": day["declines"]["count"], "refunds": day["refunds"]["count"],
                     "chargebacks": day["chargebacks"]["count"], "cancelled": day["cancellations"],
                     "expired": day["expirations"], "active": day["active_subscriptions"], "mrr": day["mrr"]})
    return render_table(rows, [("date", "date"), ("sales", "sales"), ("renewals", "renewals"),
                               ("declines", "declines"), ("refunds", "refunds"), ("chargebacks", "chargebacks"),
                               ("cancelled", "cancelled"), ("expired", "expired"), ("active", "active"),
                               ("mrr", "MRR")])
