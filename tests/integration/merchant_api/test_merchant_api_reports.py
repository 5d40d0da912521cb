"""GET /v1/reports/summary and /daily against moto: the figures the counter wrote, per subaccount or all of them,
the read scope, and every refusal in ChargeBee's error model naming its parameter."""

from __future__ import annotations

import pytest
from billops_local.aws_environment import aws_client
from billops_local.template_resources import LOCAL_PREFIX

REPORTS_TABLE = LOCAL_PREFIX + "ReportsTable"


def _delivery(key: str, event_type: str, day: str, subacc: str, **fields: str) -> dict:
    return {"pk": key, "record_type": "delivery", "event_type": event_type, "occurred_at": f"{day}T12:00:00Z",
            "received_at": f"{day}T12:00:01.000000Z", "client_accnum": "900100", "client_subacc": subacc,
            "subscription_id": key[-4:], "fields": fields}


@pytest.fixture
def reports_api(merchant_api, monkeypatch):
    from billops.domain_events.publishing import RecordingPublisher
    from billops.reports.batch_counting import ReportCounter
    from billops.reports.report_settings import report_settings_from_env
    from billops.storage.reports_table import ReportsTable

    monkeypatch.setenv("BILLOPS_REPORTS_TABLE", REPORTS_TABLE)
    merchant_api.reload()
    client = aws_client("dynamodb", merchant_api.ops.tables.endpoint_url)
    counter = ReportCounter(report_settings_from_env({"BILLOPS_REPORTS_TABLE": REPORTS_TABLE,
                                                      "BILLOPS_REPORT_GAUGE_SECONDS": "0"}),
                            ReportsTable(REPORTS_TABLE, client), RecordingPublisher(), metrics=None)
    sale = dict(accountingInitialPrice="19.95", accountingRecurringPrice="19.95", accountingCurrencyCode="840",
                initialPeriod="30", recurringPeriod="30", rebills="99", cardType="VISA")
    counter.count_deliveries([
        _delivery("NewSaleSuccess#txn#0001", "NewSaleSuccess", "2026-10-30", "0000", **sale,
                  nextRenewalDate="2026-11-29"),
        _delivery("NewSaleSuccess#txn#0002", "NewSaleSuccess", "2026-11-02", "0001", **sale,
                  nextRenewalDate="2026-12-02"),
        _delivery("Refund#txn#0003", "Refund", "2026-11-03", "0001", accountingAmount="19.95",
                  accountingCurrencyCode="840"),
        _delivery("RenewalFailure#txn#0004", "RenewalFailure", "2026-11-29", "0000", failureCode="BE-29",
                  failureReason="Card Expired"),
    ])
    return merchant_api


def test_the_summary_of_every_subaccount_and_of_one(reports_api):
    answer = reports_api.call("GET", "/v1/reports/summary", query={"from": "2026-11-01", "to": "2026-11-30"},
                              key="reader")
    assert answer.status == 200, answer.body
    report = answer.body["report"]
    assert (report["from"], report["to"], report["client_subacc"], report["currency"]) == (
        "2026-11-01", "2026-11-30", None, "USD")
    assert report["sales"] == {"count": 1, "amount": "19.95"}  # October's sale is before the range...
    assert report["refunds"] == {"count": 1, "amount": "19.95"} and report["refund_ratio"] == 1.0
    assert report["declines"]["by_code"] == {"29": {"count": 1, "text": "Card Expired"}}
    assert report["renewals"] == {"count": 0, "amount": "0.00", "success_rate": 0.0}
    # ... but its paid period counts until it ends on 11-29; the 0001 sale is paid to 12-02.
    assert (report["active_subscriptions"], report["mrr"]) == (1, "19.95")
    one = reports_api.call("GET", "/v1/reports/summary", key="reader",
                           query={"from": "2026-11-01", "to": "2026-11-30", "client_subacc": "0"}).body["report"]
    assert (one["client_subacc"], one["sales"]["count"], one["active_subscriptions"], one["mrr"]) == (
        "0000", 0, 0, "0.00")
    assert one["declines"]["count"] == 1


def test_daily_lists_every_day_of_the_range_with_active_and_mrr_at_its_end(reports_api):
    answer = reports_api.call("GET", "/v1/reports/daily", query={"from": "2026-11-28", "to": "2026-12-02"})
    assert answer.status == 200, answer.body
    days = [(entry["daily_report"]["date"], entry["daily_report"]["active_subscriptions"],
             entry["daily_report"]["mrr"], entry["daily_report"]["declines"]["count"])
            for entry in answer.body["list"]]
    assert days == [("2026-11-28", 2, "39.90", 0), ("2026-11-29", 1, "19.95", 1), ("2026-11-30", 1, "19.95", 0),
                    ("2026-12-01", 1, "19.95", 0), ("2026-12-02", 0, "0.00", 0)]


@pytest.mark.parametrize("query, param", [
    ({}, "from"),
    ({"from": "2026-11-01"}, "to"),
    ({"from": "2026-11-31", "to": "2026-12-01"}, "from"),
    ({"from": "01/11/2026", "to": "2026-12-01"}, "from"),
    ({"from": "1999-12-31", "to": "2000-01-01"}, "from"),
    ({"from": "2026-11-02", "to": "2026-11-01"}, "to"),
    ({"from": "2025-01-01", "to": "2026-01-02"}, "to"),
    ({"from": "2026-11-01", "to": "2026-11-02", "client_subacc": "00001"}, "client_subacc"),
    ({"from": "2026-11-01", "to": "2026-11-02", "subacc": "1"}, "subacc"),
])
def test_bad_parameters_are_400_naming_them(reports_api, query, param):
    for path in ("/v1/reports/summary", "/v1/reports/daily"):
        answer = reports_api.call("GET", path, query=query)
        assert answer.status == 400, answer.body
        assert (answer.body["api_error_code"], answer.body["param"]) == ("param_wrong_value", param)


def test_reports_need_the_read_scope(reports_api):
    answer = reports_api.call("GET", "/v1/reports/summary", query={"from": "2026-11-01", "to": "2026-11-02"},
                              key="writer")
    assert (answer.status, answer.body["api_error_code"]) == (403, "api_authorization_failed")


def test_a_stack_without_a_reports_table_answers_404(merchant_api, monkeypatch):
    monkeypatch.delenv("BILLOPS_REPORTS_TABLE", raising=False)
    merchant_api.reload()
    answer = merchant_api.call("GET", "/v1/reports/daily", query={"from": "2026-11-01", "to": "2026-11-02"})
    assert (answer.status, answer.body["api_error_code"]) == (404, "resource_not_found")
