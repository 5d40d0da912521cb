"""The daily figures in template.yaml: the reports table, the settings the projector and the API get, the
chargeback-ratio alarms, and a dashboard that reads only metrics the projector really emits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from billops_local.template_resources import load_yaml

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def monitoring() -> dict[str, Any]:
    """The alarms and the dashboard: nested in template.yaml as Monitoring (generated, test_monitoring.py)."""
    return load_yaml(ROOT / "templates" / "monitoring.yaml")


def test_the_reports_table_is_keyed_by_scope_and_day_with_ttl_for_the_counted_keys(template):
    table = template["Resources"]["ReportsTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "scope", "KeyType": "HASH"},
                                  {"AttributeName": "day", "KeyType": "RANGE"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "GlobalSecondaryIndexes" not in table and "StreamSpecification" not in table
    assert template["Outputs"]["ReportsTableName"]["Value"] == {"Ref": "ReportsTable"}


def test_the_projector_and_the_api_get_the_report_settings(template):
    def variables(name: str) -> dict[str, Any]:
        return template["Resources"][name]["Properties"]["Environment"]["Variables"]

    projector, api = variables("SubscriptionProjectorFunction"), variables("MerchantApiFunction")
    for functions_variables in (projector, api):
        assert functions_variables["BILLOPS_REPORTS_TABLE"] == {"Ref": "ReportsTable"}
        assert functions_variables["BILLOPS_REPORT_CURRENCY"] == {"Ref": "ReportCurrency"}
    assert projector["BILLOPS_CHARGEBACK_THRESHOLDS"] == {"Ref": "ChargebackThresholds"}
    assert projector["BILLOPS_REPORT_EXCHANGE_RATES"] == {"Ref": "ReportExchangeRates"}
    parameters = template["Parameters"]
    assert (parameters["ReportCurrency"]["Default"], parameters["ChargebackThresholds"]["Default"],
            json.loads(parameters["ReportExchangeRates"]["Default"])) == ("USD", "", {})


def test_a_ratio_crossing_sets_an_alarm(monitoring):
    for name, metric in (("ChargebackRatioWarningAlarm", "ChargebackRatioWarning"),
                         ("ChargebackRatioBreachedAlarm", "ChargebackRatioBreached")):
        alarm = monitoring["Resources"][name]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == ("Billops", metric, 1)
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "billops"}]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def _emitted_metrics() -> set[str]:
    """Every metric name billops.reports emits (the report metrics' own lines, captured)."""
    from decimal import Decimal

    from billops.reports.report_metrics import TOTALS, ReportMetrics

    lines: list[str] = []
    metrics = ReportMetrics(sink=lines.append)
    metrics.counted({**{name: Decimal(1) for name in TOTALS}, "chargebacks_n|VISA": Decimal(1),
                     "transactions_n|VISA": Decimal(1), "decline_code_n|31": Decimal(1)})
    metrics.gauges(Decimal(1), Decimal(1))
    metrics.chargeback_ratio("VISA", Decimal(1), Decimal(1), Decimal(2))
    metrics.crossing_published("ChargebackRatioWarning")
    metrics.crossing_published("ChargebackRatioBreached")
    return {metric["Name"] for line in lines for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
            for metric in directive["Metrics"]}


def test_the_dashboard_draws_the_figures_from_metrics_the_projector_emits(monitoring):
    body = monitoring["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body.replace("${AWS::Region}", "us-east-1").replace("${", "{"))["widgets"]
    drawn: set[str] = set()
    for widget in widgets:
        namespace = None
        for row in widget["properties"].get("metrics", []):
            names = [item for item in row if isinstance(item, str)]
            if names and names[0] != ".":
                namespace = names[0]
            if namespace == "Billops" and len(names) > 1:
                drawn.add(names[1])
    titles = " | ".join(widget["properties"]["title"] for widget in widgets)
    for words in ("MRR", "Rebill success", "Declines by CCBill decline code", "Visa chargeback ratio",
                  "Mastercard chargeback ratio"):
        assert words in titles
    report_metrics = drawn - {"UnknownEventType", "CCBillRequestsThrottled"}  # metric filters, not the projector
    assert report_metrics >= {"MRR", "ActiveSubscriptions", "Renewals", "RenewalDeclines", "ChargebackRatio",
                              "ChargebackRatioWarningLevel", "ChargebackRatioBreachLevel"}
    assert report_metrics <= _emitted_metrics(), report_metrics - _emitted_metrics()
    assert 'MetricName=\\"Declines\\"' in body or 'MetricName="Declines"' in body
