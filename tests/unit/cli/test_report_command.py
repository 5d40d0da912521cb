"""``billops report``: the summary and the days as tables and as JSON, the PNG (opened and looked at), a clear word
when matplotlib is missing, and usage errors - against moto holding the template's reports table."""

from __future__ import annotations

import json
import sys

import pytest

SALE = dict(accountingInitialPrice="19.95", accountingRecurringPrice="19.95", accountingCurrencyCode="840",
            initialPeriod="30", recurringPeriod="30", rebills="99")


def _delivery(key: str, event_type: str, day: str, **fields: str) -> dict:
    return {"pk": key, "record_type": "delivery", "event_type": event_type, "occurred_at": f"{day}T09:00:00Z",
            "received_at": f"{day}T09:00:01.000000Z", "client_accnum": "900100", "client_subacc": "0000",
            "subscription_id": key.rsplit("#", 1)[-1], "fields": fields}


@pytest.fixture
def counted(local_resources):
    """A fortnight: sales on two card types, renewals and declined renewals, a chargeback, a refund."""
    from billops.domain_events.publishing import RecordingPublisher
    from billops.reports.batch_counting import ReportCounter
    from billops.reports.report_settings import report_settings_from_env
    from billops.storage.reports_table import ReportsTable

    table = local_resources.table("ReportsTable")
    counter = ReportCounter(report_settings_from_env({"BILLOPS_REPORTS_TABLE": table,
                                                      "BILLOPS_REPORT_GAUGE_SECONDS": "0"}),
                            ReportsTable(table, local_resources.client("dynamodb")), RecordingPublisher(),
                            metrics=None)
    deliveries = []
    for number in range(12):
        day = f"2026-11-{number + 1:02d}"
        card = "VISA" if number % 3 else "MASTERCARD"
        deliveries.append(_delivery(f"NewSaleSuccess#txn#{number:04d}", "NewSaleSuccess", day, **SALE,
                                    nextRenewalDate=f"2026-12-{number + 1:02d}", cardType=card))
        if number % 4 == 1:
            deliveries.append(_delivery(f"RenewalFailure#txn#{number:04d}", "RenewalFailure", day,
                                        failureCode=f"BE-{29 + number % 3}", failureReason="declined"))
        if number % 2:
            deliveries.append(_delivery(f"RenewalSuccess#txn#{number:04d}", "RenewalSuccess", day,
                                        accountingAmount="9.95", accountingCurrencyCode="840", cardType=card,
                                        nextRenewalDate=f"2026-12-{number + 1:02d}"))
    deliveries.append(_delivery("Chargeback#txn#9000", "Chargeback", "2026-11-08", accountingAmount="19.95",
                                accountingCurrencyCode="840", cardType="VISA"))
    deliveries.append(_delivery("Refund#txn#9001", "Refund", "2026-11-09", accountingAmount="19.95",
                                accountingCurrencyCode="840", cardType="VISA"))
    counter.count_deliveries(deliveries)
    return local_resources


def test_the_summary_and_the_days_as_tables(counted, run_cli):
    result = run_cli("report", "--from", "2026-11-01", "--to", "2026-11-14")
    assert result.code == 0, result.err
    assert "2026-11-01 to 2026-11-14, all subaccounts" in result.out
    assert "sales                 12 (239.40 USD)" in result.out
    assert "renewals              6 (59.70 USD), rebill success 66.67 %" in result.out
    assert "declines by code      29 (Card Expired): 1, 30 (" in result.out
    assert "chargebacks by card   VISA: 1 (19.95 USD)" in result.out
    assert "MRR on 2026-11-14     299.10 USD" in result.out  # 12 sales at 19.95 and 6 renewals at 9.95, paid on
    assert "2026-11-12  1      1         0         0        0            0          0        18      299.10" \
        in result.out
    assert result.out.count("\n2026-11-") == 14  # a line per day


def test_json_holds_the_merchant_apis_two_documents(counted, run_cli):
    result = run_cli("report", "--from", "2026-11-01", "--to", "2026-11-14", "--client-subacc", "0", "--json")
    assert result.code == 0, result.err
    document = result.json()
    assert document["summary"]["report"]["client_subacc"] == "0000"
    assert document["summary"]["report"]["chargeback_ratio"] == round(1 / 18, 6)
    assert [entry["daily_report"]["date"] for entry in document["daily"]["list"]][[0, -1][0]] == "2026-11-01"
    assert len(document["daily"]["list"]) == 14


def test_png_is_a_chart_of_the_figures(counted, run_cli, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("BILLOPS_CHARGEBACK_THRESHOLDS", json.dumps({
        "VISA": {"warning": {"percent": "5"}, "breach": {"percent": "10"}},
        "MASTERCARD": {"warning": {"percent": "1"}, "breach": {"percent": "1.5"}, "denominator": "previous_month"}}))
    path = tmp_path / "report.png"
    result = run_cli("report", "--from", "2026-11-01", "--to", "2026-11-14", "--png", str(path))
    assert result.code == 0, result.err
    assert f"Chart written to {path}" in result.out
    with Image.open(path) as image:
        assert (image.format, image.size) == ("PNG", (1400, 900))
        pixels = image.convert("RGB")
        colours = dict((colour, count) for count, colour in pixels.getcolors(maxcolors=1_000_000))
    # Not blank: each panel's data is drawn in its colour (matplotlib's tab10), hundreds of pixels of each.
    for name, colour in {"MRR": (31, 119, 180), "active subscriptions": (44, 160, 44),
                         "rebill success": (148, 103, 189), "declines (2nd code) / Mastercard": (255, 127, 14),
                         "declines (3rd code)": (44, 160, 44)}.items():
        assert colours.get(colour, 0) > 300, f"{name} is not drawn"


def test_png_without_matplotlib_says_what_to_do(counted, run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    path = tmp_path / "report.png"
    result = run_cli("report", "--from", "2026-11-01", "--to", "2026-11-14", "--png", str(path))
    assert result.code == 1
    assert "matplotlib, which is not installed" in result.err and "pip install matplotlib" in result.err
    assert not path.exists() and result.out == ""


@pytest.mark.parametrize("argv, message", [
    (("--from", "2026-11-31", "--to", "2026-12-01"), "--from must be a day"),
    (("--from", "2026-11-02", "--to", "2026-11-01"), "--to must not be before --from"),
    (("--from", "2025-01-01", "--to", "2026-01-02"), "at most 366 days"),
    (("--from", "2026-11-01", "--to", "2026-11-02", "--client-subacc", "12345"), "up to 4 digits"),
])
def test_usage_errors(counted, run_cli, argv, message):
    result = run_cli("report", *argv)
    assert result.code == 2 and message in result.err


def test_the_projector_dead_letter_replay_counts_each_delivery_once(local_resources, run_cli):
    """A batch the projector gave up on is counted when an operator replays it, and only once however often it is
    replayed (or was counted before it failed to fold)."""
    from test_replay_commands import _log_deliveries, _on_failure_record, _store_delivery

    _store_delivery(local_resources, transactionId="0117240102000000049", timestamp="2026-11-03 10:00:00",
                    nextRenewalDate="2026-12-03")
    _store_delivery(local_resources, "Chargeback", timestamp="2026-11-04 10:00:00")
    _log_deliveries(local_resources)
    record = json.dumps(_on_failure_record(local_resources))
    sqs = local_resources.client("sqs")
    for _ in range(2):
        sqs.send_message(QueueUrl=local_resources.queue_url("ProjectorDeadLetterQueue"), MessageBody=record)
        assert run_cli("dlq", "replay", "--queue", "projector", "--json").code == 0
    report = run_cli("report", "--from", "2026-11-01", "--to", "2026-11-30", "--json").json()["summary"]["report"]
    assert (report["sales"], report["chargebacks"]["count"], report["active_subscriptions"], report["mrr"]) == (
        {"count": 1, "amount": "19.95"}, 1, 1, "19.95")
