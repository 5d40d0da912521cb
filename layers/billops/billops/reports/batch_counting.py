"""The projector's one call per events-stream batch: count the batch's deliveries into the daily figures.

``ReportCounter.count_stream_batch(records)``:

1. every INSERT / MODIFY image of the batch -> its contribution (billops.reports.delivery_figures), in memory;
2. with BILLOPS_REPORT_FACT_EVENTS: one DeliveryCounted event per delivery (PutEvents, 10 per call);
3. a scope (client account, subaccount) this container has not counted before is added to the directory
   (one UpdateItem, once per scope and container);
4. the figures, one ADD per (scope, day) touched, and the delivery keys, in one TransactWriteItems
   (billops.storage.reports_table: a key counted before is dropped, so the batch counts once however often the
   stream delivers it);
5. the metrics of what was counted for the first time (embedded metric format: log lines, no call);
6. only when the batch holds a chargeback: the account's month-to-date ratios per card type (the directory, then
   one Query per subaccount of the account), and for a level reached for the first time that month its domain
   event (ChargebackRatioWarning / ChargebackRatioBreached: claimed with one conditional PutItem, published, marked
   published), so each crossing is published once;
7. every BILLOPS_REPORT_GAUGE_SECONDS per container: the MRR and active-subscription gauges (the directory, one
   Query per subaccount).

A failure to write the figures or to publish an event raises: the projector's batch fails and the stream retries
it (the fold is idempotent, and so is this). The gauges are best effort.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from billops.reports import delivery_figures as names
from billops.reports.chargeback_thresholds import WARNING, MonthRatio, crossings, month_ratios, previous_month
from billops.reports.delivery_figures import Contribution, contribution
from billops.reports.report_metrics import ReportMetrics
from billops.reports.report_reading import ReportReader, add_into
from billops.reports.report_settings import ReportSettings, report_settings_from_env
from billops.storage.errors import StorageUnavailable
from billops.storage.events_table import new_images
from billops.storage.reports_table import DayCount, ReportsTable
from billops.webhooks.event_types import EventType

logger = logging.getLogger(__name__)

CHARGEBACK_RATIO_WARNING = "ChargebackRatioWarning"
CHARGEBACK_RATIO_BREACHED = "ChargebackRatioBreached"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _today() -> date:
    return datetime.now(UTC).date()


def month_bounds(month: str) -> tuple[date, date, date]:
    """(first day of the previous month, first day, last day) of ``YYYY-MM``."""
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return date.fromisoformat(f"{previous_month(month)}-01"), first, following - timedelta(days=1)


@dataclass
class BatchCount:
    deliveries: int = 0
    """Deliveries of the batch that move a figure."""
    counted: set[str] = field(default_factory=set)
    """Those counted now (the rest were counted before: a redelivered batch)."""
    published: list[str] = field(default_factory=list)
    """Event IDs of the chargeback-ratio events published now."""


class ReportCounter:
    def __init__(self, settings: ReportSettings, table: ReportsTable, publisher: Any,
                 metrics: ReportMetrics | None = None, *, now: Callable[[], str] = _now,
                 today: Callable[[], date] = _today, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.table = table
        self.publisher = publisher
        self.metrics = metrics or ReportMetrics()
        self.now = now
        self.today = today
        self.monotonic = monotonic
        self._known_scopes: set[str] = set()
        self._gauges_at: float | None = None

    @classmethod
    def from_env(cls) -> ReportCounter | None:
        """The counter the environment configures, or None when BILLOPS_REPORTS_TABLE is not set."""
        settings = report_settings_from_env()
        if not settings.enabled:
            return None
        from billops.domain_events.publishing import publisher_for

        return cls(settings, ReportsTable(str(settings.reports_table)), publisher_for(settings.event_bus_name))

    # --- the projector's call ---------------------------------------------------------------------------------

    def count_stream_batch(self, records: Iterable[Mapping[str, Any]]) -> BatchCount:
        return self.count_deliveries(new_images(records))

    def count_deliveries(self, items: Iterable[Mapping[str, Any]]) -> BatchCount:
        """Count stored deliveries (events-table items, deserialized): the stream batch's, or a replay's."""
        contributions: dict[str, Contribution] = {}
        for item in items:
            found = contribution(item, self.settings.currency, self.settings.exchange_rates)
            if found is not None:
                contributions[found.delivery_key] = found
        result = BatchCount(deliveries=len(contributions))
        if not contributions:
            return result
        if self.settings.fact_events:
            self._publish_facts(contributions.values())
        self._remember_scopes({found.scope for found in contributions.values()})
        counts: dict[tuple[str, str], DayCount] = {}
        for found in contributions.values():
            for day, counters in found.by_day().items():
                count = counts.setdefault((found.scope, day), DayCount(found.scope, day))
                count.entries[found.delivery_key] = (found.received_second, counters)
        added = self.table.count(counts.values())
        totals: dict[str, Decimal] = {}
        for key, delivery_keys in added.items():
            for delivery_key in delivery_keys:
                add_into(totals, counts[key].entries[delivery_key][1])
                result.counted.add(delivery_key)
        self.metrics.counted(totals)
        logger.info("report figures counted", extra={"deliveries": result.deliveries, "counted": len(result.counted),
                                                     "items": len(counts)})
        months = sorted({(found.client_accnum, found.month) for found in contributions.values()
                         if found.event_type == EventType.CHARGEBACK})
        for account, month in months:
            result.published.extend(self._check_ratios(account, month))
        self._emit_gauges()
        return result

    # --- steps ----------------------------------------------------------------------------------------------

    def _publish_facts(self, contributions: Iterable[Contribution]) -> None:
        from billops.reports.delivery_facts import delivery_counted_event

        self.publisher.publish([delivery_counted_event(found) for found in contributions])

    def _remember_scopes(self, scopes: set[str]) -> None:
        new = scopes - self._known_scopes
        if new:
            self.table.remember_scopes(new)
            self._known_scopes |= new

    def _check_ratios(self, account: str, month: str) -> list[str]:
        since, first, last = month_bounds(month)
        previous = since.isoformat()[:7]
        chargebacks: dict[str, int] = {}
        transactions: dict[str, dict[str, int]] = {month: {}, previous: {}}
        for scope in self.table.scopes():
            if scope.partition("#")[0] != account:
                continue
            for item in self.table.figures(scope, since=since.isoformat(), until=last.isoformat()):
                item_month = str(item["day"])[:7]
                for name, value in item.items():
                    figure, _, card = str(name).partition(names.SEPARATOR)
                    if not card or not isinstance(value, (int, Decimal)):
                        continue
                    if figure == names.CHARGEBACKS_N and item_month == month:
                        chargebacks[card] = chargebacks.get(card, 0) + int(value)
                    elif figure == names.TRANSACTIONS_N and item_month in transactions:
                        transactions[item_month][card] = transactions[item_month].get(card, 0) + int(value)
        thresholds = self.settings.thresholds
        ratios = month_ratios(month, chargebacks, transactions, thresholds)
        if month == self.today().isoformat()[:7]:
            for found in ratios:
                if found.ratio is not None:
                    levels = thresholds[found.card_type]
                    self.metrics.chargeback_ratio(found.card_type, found.ratio * 100, levels.warning.percent,
                                                  levels.breach.percent)
        return [event_id for found, level in crossings(ratios, thresholds)
                if (event_id := self._publish_crossing(account, found, level))]

    def _publish_crossing(self, account: str, found: MonthRatio, level: str) -> str | None:
        from billops.domain_events.events import DomainEvent

        detail_type = CHARGEBACK_RATIO_WARNING if level == WARNING else CHARGEBACK_RATIO_BREACHED
        threshold = self.settings.thresholds[found.card_type].level(level)
        alert_key = f"{found.month}#{found.card_type}#{level}"
        now = self.now()
        ratio = found.ratio or Decimal(0)
        event = DomainEvent(detail_type, {
            "event_id": f"chargeback-ratio:{account}:{alert_key}",
            "client_accnum": account, "month": found.month, "card_type": found.card_type, "level": level,
            "chargebacks": found.chargebacks, "transactions": found.transactions, "denominator": found.denominator,
            "ratio": str(round(ratio, 6)), "percent": str(round(ratio * 100, 4)),
            "threshold_percent": str(threshold.percent), "min_chargebacks": threshold.min_chargebacks,
            "occurred_at": now,
        })
        claim = self.table.claim_alert(account, alert_key, event.as_item(), now)
        if claim.get("published_at"):
            return None
        stored = DomainEvent.from_item(claim["event"])
        self.publisher.publish([stored])
        self.table.alert_published(account, alert_key, self.now())
        self.metrics.crossing_published(detail_type)
        logger.warning("chargeback ratio crossed a monitoring level", extra={
            "client_accnum": account, "month": found.month, "card_type": found.card_type, "level": level})
        return stored.event_id

    def _emit_gauges(self) -> None:
        if not self.settings.gauge_seconds:
            return
        moment = self.monotonic()
        if self._gauges_at is not None and moment - self._gauges_at < self.settings.gauge_seconds:
            return
        self._gauges_at = moment
        try:
            mrr, active = ReportReader(self.table).current(self.today())
        except StorageUnavailable:
            logger.warning("the MRR and active-subscription gauges could not be read")
            return
        self.metrics.gauges(mrr, active)
