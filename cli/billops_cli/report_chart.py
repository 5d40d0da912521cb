"""The PNG of ``billops report --png FILE``: four panels of the daily figures - MRR and active subscriptions, the
rebill success rate, declines by CCBill decline code, and each card type's month-to-date chargeback ratio against
its warning and breach levels (the same ratio the alerts use: billops.reports.chargeback_thresholds).

matplotlib is imported here only, when a chart is asked for (``MATPLOTLIB_MISSING`` says what to do without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path

from billops.reference.decline_codes import decline_text
from billops.reports import delivery_figures as names
from billops.reports.chargeback_thresholds import CardThresholds, month_ratios
from billops.reports.report_reading import ReportData

MATPLOTLIB_MISSING = ("billops report --png draws with matplotlib, which is not installed in this environment: "
                      "`pip install matplotlib` (it comes with billops' dev extras, `pip install -e .[dev]`), or "
                      "leave out --png")
SIZE_INCHES, DPI = (14, 9), 100
TOP_CODES = 6


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _by(figures: Mapping[str, Decimal], figure: str) -> dict[str, Decimal]:
    prefix = figure + names.SEPARATOR
    return {name[len(prefix):]: value for name, value in figures.items() if name.startswith(prefix)}


def month_to_date_ratios(data: ReportData, thresholds: Mapping[str, CardThresholds]) -> dict[str, list[float | None]]:
    """Card type -> its month-to-date ratio in percent at the end of each day of the range (None: nothing to
    divide by), for the card types with thresholds that had a chargeback or a transaction in the range."""
    chargebacks: dict[str, dict[str, int]] = {}  # month -> card -> count so far
    transactions: dict[str, dict[str, int]] = {}
    series: dict[str, list[float | None]] = {card: [] for card in thresholds}
    start = data.start.isoformat()
    days = sorted(day for day in data.history if day < start)
    for day in days:
        _add(chargebacks, transactions, day, data.history[day])
    seen: set[str] = set()
    for day, figures, _, _ in data.days():
        _add(chargebacks, transactions, day, figures)
        month = day[:7]
        counts = chargebacks.get(month, {})
        seen |= {card for card in thresholds if counts.get(card) or transactions.get(month, {}).get(card)}
        ratios = {found.card_type: found.ratio
                  for found in month_ratios(month, counts, transactions, thresholds)}
        for card in thresholds:
            if card in ratios:
                value = ratios[card]
                series[card].append(None if value is None else float(value * 100))
            else:  # no chargeback yet this month: 0 % when there were transactions to divide by
                series[card].append(0.0 if transactions.get(month, {}).get(card) else None)
    return {card: values for card, values in series.items() if card in seen}


def _add(chargebacks: dict[str, dict[str, int]], transactions: dict[str, dict[str, int]], day: str,
         figures: Mapping[str, Decimal]) -> None:
    month = day[:7]
    for card, value in _by(figures, names.CHARGEBACKS_N).items():
        chargebacks.setdefault(month, {})[card] = chargebacks.get(month, {}).get(card, 0) + int(value)
    for card, value in _by(figures, names.TRANSACTIONS_N).items():
        transactions.setdefault(month, {})[card] = transactions.get(month, {}).get(card, 0) + int(value)


def draw(data: ReportData, thresholds: Mapping[str, CardThresholds], currency: str, path: Path,
         title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt

    rows = list(data.days())
    days = [date.fromisoformat(day) for day, _, _, _ in rows]
    figure, axes = plt.subplots(2, 2, figsize=SIZE_INCHES, dpi=DPI, sharex=True)
    figure.suptitle(title)
    (mrr_axis, rate_axis), (decline_axis, ratio_axis) = axes

    mrr_axis.plot(days, [float(mrr) for _, _, _, mrr in rows], color="tab:blue", label=f"MRR ({currency})")
    mrr_axis.set_title(f"MRR ({currency}, 30-day normalised) and active subscriptions")
    mrr_axis.set_ylabel(currency)
    active_axis = mrr_axis.twinx()
    active_axis.plot(days, [int(active) for _, _, active, _ in rows], color="tab:green", linestyle="--",
                     label="active subscriptions")
    active_axis.set_ylabel("active")
    mrr_axis.legend(handles=mrr_axis.get_lines() + active_axis.get_lines(), loc="upper left")

    rates = []
    for _, figures, _, _ in rows:
        renewals = int(figures.get(names.RENEWALS_N, 0))
        attempts = renewals + int(figures.get(names.RENEWAL_DECLINES_N, 0))
        rates.append(100.0 * renewals / attempts if attempts else float("nan"))
    rate_axis.plot(days, rates, marker="o", color="tab:purple")
    rate_axis.set_title("Rebill success rate (%)")
    rate_axis.set_ylim(0, 105)

    totals: dict[str, int] = {}
    for _, figures, _, _ in rows:
        for code, value in _by(figures, names.DECLINE_CODE_N).items():
            totals[code] = totals.get(code, 0) + int(value)
    codes = [code for code, _ in sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_CODES]]
    bottom = [0] * len(rows)
    for code in codes + (["other"] if len(totals) > len(codes) else []):
        values = []
        for _, figures, _, _ in rows:
            by_code = _by(figures, names.DECLINE_CODE_N)
            values.append(int(by_code.get(code, 0)) if code != "other" else
                          sum(int(value) for key, value in by_code.items() if key not in codes))
        text = decline_text(code) if code.isdigit() else None
        decline_axis.bar(days, values, bottom=bottom, label=f"{code} {text or ''}".strip()[:40])
        bottom = [low + value for low, value in zip(bottom, values)]
    decline_axis.set_title("Declines by CCBill decline code")
    if codes:
        decline_axis.legend(loc="upper left", fontsize="small")

    colours = ["tab:blue", "tab:orange", "tab:red", "tab:brown", "tab:olive"]
    for index, (card, values) in enumerate(sorted(month_to_date_ratios(data, thresholds).items())):
        colour = colours[index % len(colours)]
        levels = thresholds[card]
        ratio_axis.plot(days, [float("nan") if value is None else value for value in values], color=colour,
                        label=f"{card} month to date")
        ratio_axis.axhline(float(levels.warning.percent), color=colour, linestyle=":",
                           label=f"{card} warning {levels.warning.percent} %")
        ratio_axis.axhline(float(levels.breach.percent), color=colour, linestyle="--",
                           label=f"{card} breach {levels.breach.percent} %")
    ratio_axis.set_title("Chargeback ratio, month to date (%), and its levels")
    if ratio_axis.get_lines():
        ratio_axis.legend(loc="upper left", fontsize="small")
    for axis in (decline_axis, ratio_axis):
        axis.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path
