"""The figures as CloudWatch metrics, in the embedded metric format: log lines CloudWatch turns into metrics, so the
projector makes no CloudWatch call at all (namespace Billops, dimension ``service``; the template's dashboard and
alarms read them).

Per batch, what it counted for the first time (nothing for deliveries already counted): ``Sales``, ``SalesAmount``,
``Renewals``, ``RenewalsAmount``, ``Declines``, ``SaleDeclines``, ``RenewalDeclines``, ``Refunds``, ``RefundsAmount``,
``Voids``, ``VoidsAmount``, ``Returns``, ``ReturnsAmount``, ``Chargebacks``, ``ChargebacksAmount``,
``Cancellations``, ``Expirations``; by ``CardType``: ``Chargebacks``, ``Transactions`` (sales and renewals); by
``DeclineCode``: ``Declines``. Gauges: ``MRR`` and ``ActiveSubscriptions`` (all subaccounts, every
BILLOPS_REPORT_GAUGE_SECONDS per container); by ``CardType`` when a batch brings chargebacks: ``ChargebackRatio``
(percent, month to date, the card type's own denominator) beside ``ChargebackRatioWarningLevel`` and
``ChargebackRatioBreachLevel`` (the settings, so the dashboard draws the lines that are in force); and a count of
``ChargebackRatioWarning`` / ``ChargebackRatioBreached`` when such an event is published.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal

from billops.reports import delivery_figures as names

NAMESPACE = "Billops"
SERVICE = "billops"
TOTALS = {
    names.SALES_N: ("Sales", "Count"), names.SALES_AMT: ("SalesAmount", "None"),
    names.RENEWALS_N: ("Renewals", "Count"), names.RENEWALS_AMT: ("RenewalsAmount", "None"),
    names.DECLINES_N: ("Declines", "Count"), names.SALE_DECLINES_N: ("SaleDeclines", "Count"),
    names.RENEWAL_DECLINES_N: ("RenewalDeclines", "Count"),
    names.REFUNDS_N: ("Refunds", "Count"), names.REFUNDS_AMT: ("RefundsAmount", "None"),
    names.VOIDS_N: ("Voids", "Count"), names.VOIDS_AMT: ("VoidsAmount", "None"),
    names.RETURNS_N: ("Returns", "Count"), names.RETURNS_AMT: ("ReturnsAmount", "None"),
    names.CHARGEBACKS_N: ("Chargebacks", "Count"), names.CHARGEBACKS_AMT: ("ChargebacksAmount", "None"),
    names.CANCELLATIONS_N: ("Cancellations", "Count"), names.EXPIRATIONS_N: ("Expirations", "Count"),
}
BY_DIMENSION = {
    names.CHARGEBACKS_N: ("CardType", "Chargebacks"),
    names.TRANSACTIONS_N: ("CardType", "Transactions"),
    names.DECLINE_CODE_N: ("DeclineCode", "Declines"),
}


def _print(line: str) -> None:
    print(line, flush=True)


class ReportMetrics:
    def __init__(self, sink: Callable[[str], None] = _print) -> None:
        self.sink = sink

    def _emit(self, metrics: list[tuple[str, str, float]], dimensions: Mapping[str, str] | None = None) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics

        if not metrics:
            return
        document = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        for name, value in (dimensions or {}).items():
            document.add_dimension(name=name, value=value)
        for name, unit, value in metrics:
            document.add_metric(name=name, unit=unit, value=value)
        self.sink(json.dumps(document.serialize_metric_set(), separators=(",", ":")))

    def counted(self, totals: Mapping[str, Decimal]) -> None:
        """What a batch counted for the first time (figure name -> sum)."""
        self._emit([(metric, unit, float(totals[name])) for name, (metric, unit) in TOTALS.items()
                    if totals.get(name)])
        grouped: dict[tuple[str, str], list[tuple[str, str, float]]] = {}
        for name, value in sorted(totals.items()):
            figure, _, key = name.partition(names.SEPARATOR)
            if key and figure in BY_DIMENSION and value:
                dimension, metric = BY_DIMENSION[figure]
                grouped.setdefault((dimension, key), []).append((metric, "Count", float(value)))
        for (dimension, key), metrics in grouped.items():
            self._emit(metrics, {dimension: key})

    def gauges(self, mrr: Decimal, active: Decimal) -> None:
        self._emit([("MRR", "None", float(mrr)), ("ActiveSubscriptions", "Count", float(active))])

    def chargeback_ratio(self, card_type: str, percent: Decimal, warning_percent: Decimal,
                         breach_percent: Decimal) -> None:
        self._emit([("ChargebackRatio", "Percent", float(percent)),
                    ("ChargebackRatioWarningLevel", "Percent", float(warning_percent)),
                    ("ChargebackRatioBreachLevel", "Percent", float(breach_percent))], {"CardType": card_type})

    def crossing_published(self, detail_type: str) -> None:
        self._emit([(detail_type, "Count", 1.0)])
