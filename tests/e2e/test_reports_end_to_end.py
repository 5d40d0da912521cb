"""Done when (issue 16): a known month of webhooks through the running local stack - sales, a trial, a weekly plan,
renewals, declines with codes, a refund, a void, chargebacks by card type, cancellations, expirations, each
delivered two or three times in both formats and all of them out of order - and every figure of
``GET /v1/reports/summary`` and ``/daily`` is right to the cent; the Visa ratio's breach is published once; and
``billops report --png`` draws the month.

The stack runs with low Visa levels (BILLOPS_CHARGEBACK_THRESHOLDS, as the template's ChargebackThresholds
parameter would set them) so that two chargebacks reach both. Definitions: docs/reports.md.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query
from support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

API_KEY = "local-api-key"
THRESHOLDS = {"VISA": {"warning": {"percent": "10", "min_chargebacks": 1},
                       "breach": {"percent": "20", "min_chargebacks": 2}, "denominator": "same_month"}}
SALE = {"accountingCurrencyCode": "840", "rebills": "99", "recurringPeriod": "30", "initialPeriod": "30"}


def _sale(subscription: str, subacc: str, day: str, price: str, next_day: str | None, card: str, **extra: str):
    return ("NewSaleSuccess", {"subscriptionId": subscription, "transactionId": subscription, "clientSubacc": subacc,
                               "timestamp": f"{day} 09:00:00", "accountingInitialPrice": price,
                               "accountingRecurringPrice": price, "nextRenewalDate": next_day, "cardType": card,
                               **SALE, **extra})


def _renewal(subscription: str, subacc: str, transaction: str, day: str, amount: str, next_day: str, card: str):
    return ("RenewalSuccess", {"subscriptionId": subscription, "transactionId": transaction, "clientSubacc": subacc,
                               "timestamp": f"{day} 09:00:00", "accountingAmount": amount, "renewalDate": day,
                               "nextRenewalDate": next_day, "cardType": card, "billedAmount": amount})


def _simple(event_type: str, subscription: str, subacc: str, day: str, **extra: str):
    return (event_type, {"subscriptionId": subscription, "clientSubacc": subacc, "timestamp": f"{day} 12:00:00",
                         **extra})


V1, V2, V3, V4, V5 = (f"01261001010000001{n}" for n in range(1, 6))
M1, M2 = "0126100101000000121", "0126100101000000122"
OCTOBER = [
    _sale(V1, "0000", "2026-10-01", "19.95", "2026-10-31", "VISA"),
    _renewal(V1, "0000", "0126103101000000201", "2026-10-31", "19.95", "2026-11-30", "VISA"),
    _sale(V2, "0000", "2026-10-02", "19.95", "2026-11-01", "VISA"),
    _simple("Chargeback", V2, "0000", "2026-10-20", transactionId="0126102001000000202", accountingAmount="19.95",
            cardType="VISA"),
    _simple("Expiration", V2, "0000", "2026-10-21"),
    # A weekly plan: 9.99 x 30 / 7 = 42.81 of MRR; renewed once, then declined, cancelled, expired.
    _sale(V3, "0000", "2026-10-03", "9.99", "2026-10-10", "VISA", recurringPeriod="7", initialPeriod="7"),
    _renewal(V3, "0000", "0126101001000000203", "2026-10-10", "9.99", "2026-10-17", "VISA"),
    ("RenewalFailure", {"subscriptionId": V3, "transactionId": "0126101701000000204", "clientSubacc": "0000",
                        "timestamp": "2026-10-17 09:00:00", "failureCode": "BE-31",
                        "failureReason": "Insufficient Funds", "renewalDate": "2026-10-17",
                        "nextRetryDate": "2026-10-20"}),
    _simple("Cancellation", V3, "0000", "2026-10-18", reason="Declined rebill"),
    _simple("Expiration", V3, "0000", "2026-10-19"),
    # A 3-day trial at 2.95, then 29.95 a month (subaccount 0001).
    _sale(M1, "0001", "2026-10-05", "2.95", "2026-10-08", "MASTERCARD", accountingRecurringPrice="29.95",
          initialPeriod="3"),
    _renewal(M1, "0001", "0126100801000000205", "2026-10-08", "29.95", "2026-11-07", "MASTERCARD"),
    _sale(M2, "0001", "2026-10-10", "29.95", "2026-11-09", "MASTERCARD"),
    _simple("Refund", M2, "0001", "2026-10-12", transactionId="0126101201000000206", accountingAmount="29.95",
            cardType="MASTERCARD"),
    _simple("Cancellation", M2, "0001", "2026-10-12", reason="Customer Refunded"),
    _simple("Expiration", M2, "0001", "2026-10-12"),
    # Not recurring: 30 days of access, no MRR; voided the next day.
    _sale(V4, "0001", "2026-10-15", "14.95", None, "VISA", recurringPeriod="0", rebills="0"),
    _simple("Void", V4, "0001", "2026-10-16", transactionId="0126101601000000207", accountingAmount="14.95",
            cardType="VISA"),
    _sale(V5, "0000", "2026-10-25", "19.95", "2026-11-24", "VISA"),
    ("NewSaleFailure", {"transactionId": "0126102601000000208", "clientSubacc": "0000",
                        "timestamp": "2026-10-26 09:00:00", "failureCode": "BE-24",
                        "failureReason": "Transaction Denied by Bank"}),
    _simple("Chargeback", V5, "0000", "2026-10-28", transactionId="0126102801000000209", accountingAmount="19.95",
            cardType="VISA"),
]

ZERO = {"count": 0, "amount": "0.00"}
OCTOBER_SUMMARY = {
    "from": "2026-10-01", "to": "2026-10-31", "client_subacc": None, "currency": "USD",
    "sales": {"count": 7, "amount": "117.69"},
    "renewals": {"count": 3, "amount": "59.89", "success_rate": 0.75},
    "declines": {"count": 2, "sales": 1, "renewals": 1,
                 "by_code": {"24": {"count": 1, "text": "Transaction Denied by Bank"},
                             "31": {"count": 1, "text": "Insufficient Funds"}},
                 "by_reason": {"Insufficient Funds": 1, "Transaction Denied by Bank": 1}},
    "refunds": {"count": 1, "amount": "29.95"}, "voids": {"count": 1, "amount": "14.95"}, "returns": ZERO,
    "chargebacks": {"count": 2, "amount": "39.90", "by_card_type": {"VISA": {"count": 2, "amount": "39.90"}}},
    "chargeback_ratio": 0.2, "refund_ratio": 0.1, "cancellations": 2, "expirations": 3,
    # Paid for on 10-31: V1 (renewed that day), V2 and V5 (charged back: counted until their paid month ends, the
    # chargebacks are counted apart), M1 (renewed), M2 (refunded, likewise), V4 (no MRR). V3's week ended 10-17.
    "active_subscriptions": 6, "mrr": "119.75", "unconverted": {},
}
SUBACCOUNT_0001 = {
    **OCTOBER_SUMMARY, "client_subacc": "0001",
    "sales": {"count": 3, "amount": "47.85"}, "renewals": {"count": 1, "amount": "29.95", "success_rate": 1.0},
    "declines": {"count": 0, "sales": 0, "renewals": 0, "by_code": {}, "by_reason": {}},
    "chargebacks": {"count": 0, "amount": "0.00", "by_card_type": {}}, "chargeback_ratio": 0.0, "refund_ratio": 0.25,
    "cancellations": 1, "expirations": 1, "active_subscriptions": 3, "mrr": "59.90",
}
# day -> (sales, renewals, declines, active at its end, MRR at its end)
OCTOBER_DAYS = {
    "2026-10-01": (1, 0, 0, 1, "19.95"),
    "2026-10-05": (1, 0, 0, 4, "112.66"),  # V1, V2, V3 (42.81), M1's trial (29.95)
    "2026-10-08": (0, 1, 0, 4, "112.66"),  # the trial ends, its first month starts
    "2026-10-10": (1, 1, 0, 5, "142.61"),  # V3's second week, M2
    "2026-10-17": (0, 0, 1, 5, "99.80"),   # V3 declined: its paid week is over; V4 since 10-15 (no MRR)
    "2026-10-26": (0, 0, 1, 6, "119.75"),  # V5 since 10-25; a declined purchase
    "2026-10-31": (0, 1, 0, 6, "119.75"),
}


@pytest.fixture(scope="module")
def reports_stack(start_local_stack):
    """A stack of its own (own ports, tables, bus): the shared one runs other files' webhooks."""
    with start_local_stack({"BILLOPS_CHARGEBACK_THRESHOLDS": json.dumps(THRESHOLDS),
                            "BILLOPS_REPORT_GAUGE_SECONDS": "5"}) as stack:
        yield stack


def _post(stack, event_type: str, fields: dict, body_format: str) -> None:
    payload = sample_fields(event_type, **{"clientAccnum": "900100", **fields})
    body, content_type = encode_body(payload, body_format)
    query = urlencode(webhook_query(event_type, payload, stack.webhook_token))
    answer = requests.post(f"{stack.api_url}/webhooks/ccbill?{query}", data=body,
                           headers={"Content-Type": content_type}, timeout=10)
    assert answer.status_code == 200, answer.text


def _get(stack, path: str, **query: str) -> dict:
    answer = requests.get(f"{stack.api_url}{path}", params=query, auth=(API_KEY, ""), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def october(reports_stack):
    rng = random.Random(1016)
    deliveries = [(event_type, fields, body_format) for event_type, fields in OCTOBER
                  for body_format in ("json", "urlencoded")[: rng.choice((1, 2, 2))]]
    deliveries += [(event_type, fields, "json") for event_type, fields in rng.sample(OCTOBER, 6)]  # a third copy
    rng.shuffle(deliveries)  # renewals before their sales, chargebacks before their sales...
    for event_type, fields, body_format in deliveries:
        _post(reports_stack, event_type, fields, body_format)
    eventually(lambda: _get(reports_stack, "/v1/reports/summary", **{
        "from": "2026-10-01", "to": "2026-10-31"})["report"] == OCTOBER_SUMMARY, timeout=90,
        what="October's figures",
        show=lambda: _get(reports_stack, "/v1/reports/summary", **{"from": "2026-10-01", "to": "2026-10-31"}))
    return reports_stack


def test_the_summary_of_october_is_right_to_the_cent(october):
    assert _get(october, "/v1/reports/summary", **{"from": "2026-10-01", "to": "2026-10-31"})["report"] \
        == OCTOBER_SUMMARY
    assert _get(october, "/v1/reports/summary", **{"from": "2026-10-01", "to": "2026-10-31",
                                                   "client_subacc": "0001"})["report"] == SUBACCOUNT_0001


def test_every_day_of_october(october):
    days = _get(october, "/v1/reports/daily", **{"from": "2026-10-01", "to": "2026-10-31"})["list"]
    assert [entry["daily_report"]["date"] for entry in days] == [f"2026-10-{day:02d}" for day in range(1, 32)]
    by_day = {entry["daily_report"]["date"]: entry["daily_report"] for entry in days}
    seen = {day: (by_day[day]["sales"]["count"], by_day[day]["renewals"]["count"], by_day[day]["declines"]["count"],
                  by_day[day]["active_subscriptions"], by_day[day]["mrr"]) for day in OCTOBER_DAYS}
    assert seen == OCTOBER_DAYS
    assert by_day["2026-10-20"]["chargebacks"] == {"count": 1, "amount": "19.95",
                                                   "by_card_type": {"VISA": {"count": 1, "amount": "19.95"}}}
    assert by_day["2026-10-20"]["chargeback_ratio"] is None  # nothing sold or renewed that day
    # The days add up to the month.
    assert sum(entry["sales"]["count"] for entry in by_day.values()) == OCTOBER_SUMMARY["sales"]["count"]
    assert sum(int(entry["chargebacks"]["amount"].replace(".", "")) for entry in by_day.values()) == 3990


def test_the_visa_breach_and_warning_are_published_once(october):
    def ratio_events() -> list[dict]:
        seen.extend(event for event in october.domain_events(wait_seconds=1)
                    if event["detail-type"].startswith("ChargebackRatio"))
        return [event for event in seen if event["detail-type"] == "ChargebackRatioBreached"]

    seen: list[dict] = []
    eventually(ratio_events, timeout=30, what="the breach event")
    for _ in range(3):  # and nothing more comes, whatever the stream still carries
        ratio_events()
    assert sorted(event["detail-type"] for event in seen) == ["ChargebackRatioBreached", "ChargebackRatioWarning"]
    for event in seen:
        detail = event["detail"]
        assert (detail["client_accnum"], detail["month"], detail["card_type"]) == ("900100", "2026-10", "VISA")
        assert detail["event_id"] == f"chargeback-ratio:900100:2026-10#VISA#{detail['level']}"


def test_billops_report_prints_the_month_and_draws_it(october, tmp_path):
    png = tmp_path / "october.png"
    env = {**{name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "BILLOPS_"))},
           "BILLOPS_AWS_PORT": october.aws_endpoint.rsplit(":", 1)[1],
           "BILLOPS_API_PORT": october.api_url.rsplit(":", 1)[1],
           "BILLOPS_CHARGEBACK_THRESHOLDS": json.dumps(THRESHOLDS)}
    result = subprocess.run([sys.executable, "-m", "billops_cli", "report", "--local", "--from", "2026-10-01",
                             "--to", "2026-10-31", "--png", str(png)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "sales                 7 (117.69 USD)" in result.stdout
    assert "MRR on 2026-10-31     119.75 USD" in result.stdout
    from PIL import Image

    with Image.open(png) as image:
        assert (image.format, image.size) == ("PNG", (1400, 900))
        assert len(image.convert("RGB").getcolors(maxcolors=1_000_000)) > 100
