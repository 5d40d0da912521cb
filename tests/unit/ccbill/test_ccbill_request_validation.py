"""Validation before any call: the common -7 causes never reach CCBill, and each rejection names the parameter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billops.ccbill import request_validation as check
from billops.ccbill.errors import CCBillRequestInvalid


@pytest.mark.parametrize("value,expected", [("19.95", Decimal("19.95")), ("20", Decimal("20.00")),
                                            (Decimal("5.5"), Decimal("5.50")), (19.95, Decimal("19.95")),
                                            (7, Decimal("7.00")), (" 3.00 ", Decimal("3.00"))])
def test_prices(value, expected):
    assert check.price(value, "initialPrice") == expected


@pytest.mark.parametrize("value", ["$19.95", "19,95", "1,000.00", "19.955", "1e3", "abc", "", "-5.00", "NaN",
                                   "Infinity", True, None, "19.95 USD", 1e-5])
def test_non_numeric_prices_are_refused_before_ccbill_answers_minus_7(value):
    with pytest.raises(CCBillRequestInvalid) as error:
        check.price(value, "initialPrice")
    assert error.value.param == "initialPrice"
    assert str(error.value).startswith("initialPrice: ")


def test_price_range():
    with pytest.raises(CCBillRequestInvalid, match="at least 0.01"):
        check.price("0.00", "amount")
    with pytest.raises(CCBillRequestInvalid, match="at most 9999.99"):
        check.price("10000", "amount")
    assert check.format_price(Decimal(5)) == "5.00"


@pytest.mark.parametrize("value", ["30", 30, " 2 "])
def test_periods(value):
    assert check.period_days(value, "initialPeriod") in (30, 2)


@pytest.mark.parametrize("value", ["30.5", "thirty", "-1", "0", "", 3651, True])
def test_bad_periods(value):
    with pytest.raises(CCBillRequestInvalid) as error:
        check.period_days(value, "recurringPeriod")
    assert error.value.param == "recurringPeriod"


def test_rebills_and_extension_bounds():
    assert check.rebills(99) == 99 and check.rebills("0") == 0
    with pytest.raises(CCBillRequestInvalid, match="rebills"):
        check.rebills(100)
    assert check.extend_days("7") == 7
    with pytest.raises(CCBillRequestInvalid, match="extendLength"):
        check.extend_days(0)
    with pytest.raises(CCBillRequestInvalid, match="extendLength"):
        check.extend_days(366)


@pytest.mark.parametrize("value,expected", [("840", "840"), ("USD", "840"), ("usd", "840"), (840, "840"),
                                            ("36", "036"), ("AUD", "036"), ("978", "978")])
def test_currencies(value, expected):
    assert check.currency_code(value) == expected


@pytest.mark.parametrize("value", ["999", "XXX", "US$", "", "8400"])
def test_unknown_currencies_name_the_known_ones(value):
    with pytest.raises(CCBillRequestInvalid, match=r"840 \(USD\)") as error:
        check.currency_code(value)
    assert error.value.param == "currencyCode"


def test_identifiers():
    assert check.subscription_id("0126015401000000123") == "0126015401000000123"  # leading zero kept
    assert check.subscription_id(1234567890) == "1234567890"
    assert check.client_accnum("900100") == "900100"
    assert check.client_subacc("1") == "0001"
    assert check.client_subacc(6) == "0006"
    for bad, fn, param in [("12a", check.subscription_id, "subscriptionId"), ("9" * 21, check.subscription_id,
                                                                             "subscriptionId"),
                           ("90010", check.client_accnum, "clientAccnum"), ("12345", check.client_subacc,
                                                                            "clientSubacc")]:
        with pytest.raises(CCBillRequestInvalid) as error:
            fn(bad)
        assert error.value.param == param


def test_flags_and_usernames():
    assert check.flag(True, "specialOffer") == "1" and check.flag("0", "specialOffer") == "0"
    with pytest.raises(CCBillRequestInvalid, match="sharedAuthentication"):
        check.flag("yes", "sharedAuthentication")
    assert check.consumer_username("janedoe") == "janedoe"
    with pytest.raises(CCBillRequestInvalid, match="username"):
        check.consumer_username("jane\ndoe")


def test_exactly_one():
    assert check.exactly_one({"discountAmount": None, "newRecurringPrice": "9.95"}) == "newRecurringPrice"
    with pytest.raises(CCBillRequestInvalid, match="exactly one of discountAmount or newRecurringPrice"):
        check.exactly_one({"discountAmount": None, "newRecurringPrice": None})
    with pytest.raises(CCBillRequestInvalid) as error:
        check.exactly_one({"discountAmount": "1", "newRecurringPrice": "9.95"})
    assert error.value.param == "newRecurringPrice"


def test_a_rejection_becomes_a_chargebee_style_400():
    with pytest.raises(CCBillRequestInvalid) as error:
        check.price("$5", "initialPrice")
    api_error = error.value.api_error()
    assert api_error.status == 400 and api_error.param == "initialPrice"
    assert api_error.api_error_code == "param_wrong_value"
