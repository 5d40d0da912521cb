"""What one delivery adds to the figures (billops.reports.delivery_figures), per the definitions of docs/reports.md."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billops.reports.delivery_figures import contribution, decline_code, decline_reason

D = Decimal


def _item(event_type: str, occurred_at: str | None = "2026-11-05T10:00:00Z", **fields: str) -> dict:
    return {"pk": f"{event_type}#txn#1", "record_type": "delivery", "known_type": True, "event_type": event_type,
            "occurred_at": occurred_at, "received_at": "2026-11-05T10:00:02.123456Z", "client_accnum": "900100",
            "client_subacc": "0001", "subscription_id": "0126", "fields": fields}


def _count(item: dict, currency: str = "USD", rates: dict | None = None):
    return contribution(item, currency, rates or {})


def test_a_trial_sale_counts_its_initial_price_and_opens_a_period_at_its_recurring_price():
    found = _count(_item("NewSaleSuccess", accountingInitialPrice="2.95", accountingRecurringPrice="19.95",
                         accountingCurrencyCode="840", initialPeriod="3", recurringPeriod="30", rebills="99",
                         nextRenewalDate="2026-11-08", cardType="visa"))
    assert (found.scope, found.day, found.received_second) == ("900100#0001", "2026-11-05", "2026-11-05T10:00:02")
    assert found.by_day() == {
        "2026-11-05": {"sales_n": D(1), "sales_amt": D("2.95"), "transactions_n|VISA": D(1), "active_change": D(1),
                       "mrr_change": D("19.95")},
        "2026-11-08": {"active_change": D(-1), "mrr_change": D("-19.95")},
    }
    assert (found.period_start, found.period_end, found.mrr, found.amount) == (
        "2026-11-05", "2026-11-08", D("19.95"), D("2.95"))


def test_mrr_is_the_recurring_price_normalised_to_thirty_days_to_the_cent():
    weekly = _count(_item("NewSaleSuccess", accountingInitialPrice="9.99", accountingRecurringPrice="9.99",
                          accountingCurrencyCode="840", initialPeriod="7", recurringPeriod="7", rebills="99",
                          nextRenewalDate="2026-11-12"))
    assert weekly.mrr == D("42.81")  # 9.99 x 30 / 7 = 42.8142...
    yearly = _count(_item("RenewalSuccess", accountingAmount="99.00", accountingCurrencyCode="840",
                          renewalDate="2026-11-05", nextRenewalDate="2027-11-05"))
    assert yearly.mrr == D("8.14")  # 99.00 x 30 / 365
    assert yearly.by_day()["2027-11-05"] == {"active_change": D(-1), "mrr_change": D("-8.14")}


def test_a_renewal_pays_from_its_renewal_date_and_without_a_next_date_for_thirty_days():
    late = _count(_item("RenewalSuccess", accountingAmount="19.95", accountingCurrencyCode="840",
                        renewalDate="2026-11-02", nextRenewalDate="2026-12-02"))
    assert set(late.by_day()) == {"2026-11-05", "2026-11-02", "2026-12-02"}
    assert late.by_day()["2026-11-05"] == {"renewals_n": D(1), "renewals_amt": D("19.95"),
                                           "transactions_n|UNKNOWN": D(1)}
    bare = _count(_item("RenewalSuccess", accountingAmount="19.95", accountingCurrencyCode="840"))
    assert (bare.period_start, bare.period_end) == ("2026-11-05", "2026-12-05")


def test_a_non_recurring_sale_is_active_for_its_period_and_adds_no_mrr():
    found = _count(_item("NewSaleSuccess", accountingInitialPrice="29.95", accountingCurrencyCode="840",
                         initialPeriod="30", recurringPeriod="0", rebills="0", nextRenewalDate=""))
    assert found.by_day()["2026-11-05"]["active_change"] == D(1)
    assert "mrr_change" not in found.by_day()["2026-11-05"]
    assert found.by_day()["2026-12-05"] == {"active_change": D(-1)}


@pytest.mark.parametrize("event_type, code", [("RenewalFailure", "renewal_declines_n"),
                                              ("NewSaleFailure", "sale_declines_n"),
                                              ("UpSaleFailure", "sale_declines_n")])
def test_declines_are_counted_by_code_and_reason(event_type, code):
    found = _count(_item(event_type, failureCode="BE-31", failureReason="Insufficient  Funds|"))
    assert found.by_day() == {"2026-11-05": {"declines_n": D(1), code: D(1), "decline_code_n|31": D(1),
                                             "decline_reason_n|Insufficient Funds": D(1)}}


def test_decline_codes_and_reasons_are_normalised():
    assert [decline_code(value) for value in ("BE-31", "31", "BE-031", "", None, "BE-900")] == [
        "31", "31", "31", "none", "none", "900"]
    assert decline_reason("  ") == "(none)" and len(decline_reason("x" * 300)) == 80


@pytest.mark.parametrize("event_type, count, amount", [("Refund", "refunds_n", "refunds_amt"),
                                                       ("Void", "voids_n", "voids_amt"),
                                                       ("Return", "returns_n", "returns_amt")])
def test_money_reversals(event_type, count, amount):
    found = _count(_item(event_type, accountingAmount="5.00", accountingCurrencyCode="840", amount="4.60",
                         currencyCode="978"))
    assert found.by_day() == {"2026-11-05": {count: D(1), amount: D("5.00")}}


def test_chargebacks_are_split_by_card_type():
    found = _count(_item("Chargeback", accountingAmount="19.95", accountingCurrencyCode="840", cardType="Master Card"))
    assert found.by_day() == {"2026-11-05": {"chargebacks_n": D(1), "chargebacks_amt": D("19.95"),
                                             "chargebacks_n|MASTERCARD": D(1),
                                             "chargebacks_amt|MASTERCARD": D("19.95")}}


def test_amounts_take_the_report_currency_or_a_configured_rate_and_never_a_guess():
    euro_account = _item("Refund", accountingAmount="10.00", accountingCurrencyCode="978", amount="11.00",
                         currencyCode="840")
    assert _count(euro_account).amount == D("11.00")  # the USD amount beats converting the EUR one
    assert _count(euro_account, "EUR").amount == D("10.00")
    pounds = _item("Refund", accountingAmount="10.00", accountingCurrencyCode="826")
    assert _count(pounds, rates={"GBP": D("1.275")}).amount == D("12.75")
    unconverted = _count(pounds)
    assert unconverted.amount is None
    assert unconverted.by_day() == {"2026-11-05": {"refunds_n": D(1), "unconverted_amt|GBP": D("10.00")}}


def test_the_day_is_ccbills_utc_date_or_the_receipt_date_and_nothing_else_counts():
    assert _count(_item("Cancellation", occurred_at=None)).day == "2026-11-05"
    assert _count(_item("Expiration", occurred_at="2026-11-30T23:59:59Z")).by_day() == {
        "2026-11-30": {"expirations_n": D(1)}}
    for event_type in ("BillingDateChange", "CustomerDataUpdate", "UserReactivation", "ManualAdd", "SomethingNew"):
        assert _count(_item(event_type)) is None
    assert _count({**_item("Cancellation"), "record_type": "quarantine"}) is None
    assert _count({**_item("Cancellation"), "known_type": False}) is None
