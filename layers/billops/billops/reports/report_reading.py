"""The figures of a range of days, read back from the reports table (the merchant API, the CLI, the gauges).

Figures of a day are summed over the scopes asked for (every subaccount, or those with one ``client_subacc``).
Active subscriptions and MRR at the end of a day are the sums of their changes over every day up to it, so a read
takes each scope's items from its first day to the end of the range: one Query per scope (a few pages for years of
history: the items are small, the counted-delivery items are never read).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from billops.reports.delivery_figures import ACTIVE_CHANGE, MRR_CHANGE
from billops.storage.reports_table import ReportsTable

KEY_ATTRIBUTES = ("scope", "day")


def _counters(item: Mapping[str, object]) -> dict[str, Decimal]:
    return {name: Decimal(str(value)) for name, value in item.items()
            if name not in KEY_ATTRIBUTES and isinstance(value, (int, Decimal))}


def add_into(target: dict[str, Decimal], counters: Mapping[str, Decimal]) -> None:
    for name, value in counters.items():
        target[name] = target.get(name, Decimal(0)) + value


@dataclass
class ReportData:
    start: date
    end: date
    history: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    """day -> figures (summed over the scopes), for every day with figures up to ``end``."""

    def days(self) -> Iterator[tuple[str, dict[str, Decimal], Decimal, Decimal]]:
        """Every day of the range, in order: (day, its figures, active and MRR at its end)."""
        active = mrr = Decimal(0)
        start = self.start.isoformat()
        for day in sorted(self.history):
            if day >= start:
                break
            active += self.history[day].get(ACTIVE_CHANGE, Decimal(0))
            mrr += self.history[day].get(MRR_CHANGE, Decimal(0))
        day = self.start
        while day <= self.end:
            figures = self.history.get(day.isoformat(), {})
            active += figures.get(ACTIVE_CHANGE, Decimal(0))
            mrr += figures.get(MRR_CHANGE, Decimal(0))
            yield day.isoformat(), figures, active, mrr
            day += timedelta(days=1)

    def totals(self) -> tuple[dict[str, Decimal], Decimal, Decimal]:
        """The range's figures summed, and active / MRR at the end of its last day."""
        totals: dict[str, Decimal] = {}
        active = mrr = Decimal(0)
        for _, figures, active, mrr in self.days():
            add_into(totals, figures)
        return totals, active, mrr


class ReportReader:
    def __init__(self, table: ReportsTable) -> None:
        self.table = table

    def scopes(self, client_subacc: str | None = None) -> list[str]:
        scopes = self.table.scopes()
        return [scope for scope in scopes if client_subacc is None or scope.rpartition("#")[2] == client_subacc]

    def read(self, start: date, end: date, client_subacc: str | None = None,
             since: date | None = None) -> ReportData:
        """``since``: read no day before it (the caller needs no active / MRR, e.g. a month's ratio)."""
        data = ReportData(start, end)
        for scope in self.scopes(client_subacc):
            for item in self.table.figures(scope, until=end.isoformat(),
                                           since=since.isoformat() if since else None):
                add_into(data.history.setdefault(str(item["day"]), {}), _counters(item))
        return data

    def current(self, today: date) -> tuple[Decimal, Decimal]:
        """MRR and active subscriptions at the end of ``today``, over every subaccount (the gauges)."""
        active = mrr = Decimal(0)
        for scope in self.scopes():
            for item in self.table.figures(scope, until=today.isoformat(), names=(ACTIVE_CHANGE, MRR_CHANGE)):
                counters = _counters(item)
                active += counters.get(ACTIVE_CHANGE, Decimal(0))
                mrr += counters.get(MRR_CHANGE, Decimal(0))
        return mrr, active
