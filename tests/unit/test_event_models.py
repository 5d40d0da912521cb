"""The typed models of CCBill's webhook events: every type, every version, the value rules and the error contract."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billops.webhooks.event_models import (
    MODELS,
    EventValidationError,
    WebhookEvent,
    model_for,
    parse_event,
)
from billops.webhooks.event_types import FAILURE_TYPES, EventType
from billops.webhooks.event_versions import fields_of
from billops_local.webhook_samples import PASSWORD_TYPES, SAMPLE_PASSWORD, SUBSCRIPTION_ID, sample_fields

ALL_TYPES = list(EventType)

REQUIRES_SUBSCRIPTION_ID = set(EventType) - FAILURE_TYPES - {EventType.MANUAL_ADD}


def expected_required(event_type: EventType) -> set[str]:
    """Only what identifies a delivery (issue 11): a subscriptionId where the event cannot exist without one."""
    return {"subscriptionId"} if event_type in REQUIRES_SUBSCRIPTION_ID else set()


def parse_error(event_type: EventType, fields: dict) -> EventValidationError:
    with pytest.raises(EventValidationError) as caught:
        parse_event(event_type, fields)
    return caught.value


# --- the model table ------------------------------------------------------------------------------------------------


def test_every_event_type_has_its_own_model():
    assert set(MODELS) == set(EventType)
    assert len(set(MODELS.values())) == 20
    for event_type in EventType:
        model = model_for(event_type)
        assert issubclass(model, WebhookEvent)
        assert model.event_type is event_type
        assert model.model_config["extra"] == "allow"


def test_model_for_accepts_the_plain_type_name():
    assert model_for("Refund") is model_for(EventType.REFUND)  # type: ignore[arg-type]


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
def test_models_declare_every_documented_field_of_every_version(event_type):
    declared = set(model_for(event_type).model_fields)
    assert fields_of(event_type) - declared == set()


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
def test_required_fields_are_exactly_the_documented_ones(event_type):
    model = model_for(event_type)
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert required == expected_required(event_type)


# --- samples parse --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
def test_every_type_parses_its_sample(event_type):
    fields = sample_fields(event_type.value)
    event = parse_event(event_type, fields)
    assert isinstance(event, model_for(event_type))
    assert event.clientAccnum == "900100"
    assert event.clientSubacc == "0000"
    if "subscriptionId" in fields:
        assert event.subscriptionId == fields["subscriptionId"]
    if "transactionId" in fields:
        assert event.transactionId == fields["transactionId"]
        assert event.transactionId.startswith("0")


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
def test_every_type_parses_its_sample_as_json_numbers(event_type):
    """What a JSON body could carry: numbers where CCBill documents numbers (amounts, periods)."""
    fields: dict = dict(sample_fields(event_type.value))
    for name in ("billedInitialPrice", "amount", "billedAmount", "accountingAmount"):
        if name in fields:
            fields[name] = float(fields[name])
    for name in ("initialPeriod", "recurringPeriod", "rebills"):
        if name in fields:
            fields[name] = int(fields[name])
    event = parse_event(event_type, fields)
    for name in ("billedInitialPrice", "amount", "billedAmount", "accountingAmount"):
        if name in fields:
            assert getattr(event, name) == Decimal("19.95")


def test_a_sale_is_typed():
    event = parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess"))
    assert event.subscriptionId == SUBSCRIPTION_ID
    assert event.billedInitialPrice == Decimal("19.95")
    assert isinstance(event.billedRecurringPrice, Decimal)
    assert event.initialPeriod == 30 and event.recurringPeriod == 30 and event.rebills == 99
    assert event.timestamp == datetime(2026, 1, 15, 10, 30, 0)
    assert event.timestamp.tzinfo is None
    from billops.webhooks.ccbill_time import ccbill_zone

    assert event.occurred_at(ccbill_zone("America/Phoenix")) == datetime(2026, 1, 15, 17, 30, tzinfo=UTC)
    assert event.nextRenewalDate == date(2026, 2, 14)
    assert event.billedCurrencyCode == "840"
    assert (event.bin, event.last4, event.expDate) == ("411111", "1111", "0129")
    assert event.subscriptionTypeId == "0000000464"
    assert event.flex_id == "cb617dcc-8467-49ab-b3a7-735ce1d60ad9"


def test_both_flex_id_spellings_are_declared():
    up_sale = parse_event(EventType.UP_SALE_SUCCESS, sample_fields("UpSaleSuccess"))
    assert up_sale.flexID == "cb617dcc-8467-49ab-b3a7-735ce1d60ad9"
    assert up_sale.flex_id == up_sale.flexID
    assert "flexID" not in (up_sale.model_extra or {})
    new_sale = parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", flexId=None, flexID="abc"))
    assert new_sale.flex_id == "abc"


def test_dates_of_renewals_and_failures():
    renewal = parse_event(EventType.RENEWAL_SUCCESS, sample_fields("RenewalSuccess"))
    assert renewal.renewalDate == date(2026, 1, 15)
    assert renewal.billedAmount == Decimal("19.95")
    failure = parse_event(EventType.RENEWAL_FAILURE, sample_fields("RenewalFailure"))
    assert failure.nextRetryDate == date(2026, 1, 18)


def test_iso_timestamps_are_accepted_and_read_as_utc():
    base = sample_fields("Expiration")
    assert parse_event(EventType.EXPIRATION, {**base, "timestamp": "2026-01-15T10:30:00"}).timestamp == datetime(
        2026, 1, 15, 10, 30
    )
    shifted = parse_event(EventType.EXPIRATION, {**base, "timestamp": "2026-01-15T12:30:00+02:00"})
    assert shifted.timestamp == datetime(2026, 1, 15, 10, 30)
    assert shifted.timestamp.tzinfo is None


# --- unknown fields, leading zeros, currencies ----------------------------------------------------------------------


def test_unknown_fields_are_kept_verbatim_in_model_extra():
    fields = sample_fields("NewSaleSuccess", newFieldFrom2027="x", eventType="NewSaleSuccess")
    fields["X-blank"] = ""
    event = parse_event(EventType.NEW_SALE_SUCCESS, fields)
    assert event.model_extra["X-customerRef"] == "cust-0042"
    assert event.model_extra["newFieldFrom2027"] == "x"
    assert event.model_extra["eventType"] == "NewSaleSuccess"
    assert event.model_extra["X-blank"] == ""
    assert event.model_dump()["X-customerRef"] == "cust-0042"


def test_manual_add_keeps_whatever_it_carries():
    event = parse_event(EventType.MANUAL_ADD, {"clientAccnum": "900100", "clientSubacc": "0001", "someField": "1"})
    assert event.subscriptionId is None
    assert event.model_extra == {"someField": "1"}


def test_leading_zeros_are_kept():
    fields = sample_fields(
        "Refund",
        subscriptionId="0000006401000006464",
        transactionId="0000000001000006464",
        clientAccnum="007687",
        clientSubacc="0001",
    )
    event = parse_event(EventType.REFUND, fields)
    assert event.subscriptionId == "0000006401000006464"
    assert event.transactionId == "0000000001000006464"
    assert event.clientAccnum == "007687"
    assert event.clientSubacc == "0001"
    dumped = json.loads(event.model_dump_json())
    assert dumped["subscriptionId"] == "0000006401000006464"
    assert dumped["clientSubacc"] == "0001"


def test_ids_given_as_json_numbers_become_text():
    fields = {**sample_fields("Expiration"), "subscriptionId": 117240102000000049, "clientAccnum": 900100}
    event = parse_event(EventType.EXPIRATION, fields)
    assert event.subscriptionId == "117240102000000049"
    assert event.clientAccnum == "900100"


def test_zero_filled_fields_given_as_numbers_get_their_zeros_back():
    fields = {**sample_fields("Chargeback"), "clientSubacc": 1, "expDate": 129, "last4": 42}
    event = parse_event(EventType.CHARGEBACK, fields)
    assert (event.clientSubacc, event.expDate, event.last4) == ("0001", "0129", "0042")


@pytest.mark.parametrize("code", ["840", 840, "USD", "usd"])
def test_currency_codes_are_the_three_digit_numeric_code(code):
    event = parse_event(EventType.REFUND, {**sample_fields("Refund"), "currencyCode": code})
    assert event.currencyCode == "840"


def test_short_numeric_currency_codes_are_zero_padded():
    event = parse_event(EventType.REFUND, {**sample_fields("Refund"), "currencyCode": "36"})
    assert event.currencyCode == "036"


# --- blank values and JSON numbers ----------------------------------------------------------------------------------


def test_empty_strings_for_optional_fields_are_none():
    fields = sample_fields(
        "NewSaleSuccess",
        billedRecurringPrice="",
        nextRenewalDate="",
        rebills="",
        bin="",
        billedCurrencyCode="",
        timestamp="",
        flexId="",
        phoneNumber=" ",
    )
    event = parse_event(EventType.NEW_SALE_SUCCESS, fields)
    assert event.billedRecurringPrice is None
    assert event.nextRenewalDate is None
    assert event.rebills is None
    assert event.bin is None
    assert event.billedCurrencyCode is None
    assert event.timestamp is None
    assert event.flexId is None
    assert event.phoneNumber is None
    assert event.affiliateSystem is None  # the sample posts it empty, as CCBill's forms do


def test_mysql_zero_date_means_no_date():
    event = parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", nextRenewalDate="0000-00-00"))
    assert event.nextRenewalDate is None


@pytest.mark.parametrize("value", [19.95, 19, "19.95", Decimal("19.95")])
def test_json_numbers_are_accepted_for_prices(value):
    event = parse_event(EventType.NEW_SALE_SUCCESS, {**sample_fields("NewSaleSuccess"), "billedInitialPrice": value})
    assert event.billedInitialPrice == Decimal(str(value))
    assert isinstance(event.billedInitialPrice, Decimal)


def test_float_prices_keep_their_decimal_digits():
    event = parse_event(EventType.RENEWAL_SUCCESS, {**sample_fields("RenewalSuccess"), "billedAmount": 0.1})
    assert str(event.billedAmount) == "0.1"


def test_prices_keep_the_digits_sent():
    event = parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", accountingInitialPrice="18.0"))
    assert str(event.accountingInitialPrice) == "18.0"
    assert json.loads(event.model_dump_json())["accountingInitialPrice"] == "18.0"


def test_json_numbers_are_accepted_for_periods():
    fields = {**sample_fields("NewSaleSuccess"), "initialPeriod": 30, "recurringPeriod": 30.0, "rebills": 0}
    event = parse_event(EventType.NEW_SALE_SUCCESS, fields)
    assert (event.initialPeriod, event.recurringPeriod, event.rebills) == (30, 30, 0)


# --- the password ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(PASSWORD_TYPES))
def test_the_password_is_never_kept(event_type):
    fields = sample_fields(event_type)
    assert fields["password"] == SAMPLE_PASSWORD
    event = parse_event(EventType(event_type), fields)
    assert SAMPLE_PASSWORD not in repr(event)
    assert SAMPLE_PASSWORD not in str(event)
    assert "password" not in event.model_dump()
    assert "password" not in event.model_dump(exclude_none=True, by_alias=True)
    assert SAMPLE_PASSWORD not in event.model_dump_json()
    assert "password" not in json.loads(event.model_dump_json())
    assert "password" not in (event.model_extra or {})


def test_a_password_on_a_type_that_does_not_document_one_is_still_dropped():
    event = parse_event(EventType.EXPIRATION, {**sample_fields("Expiration"), "password": SAMPLE_PASSWORD})
    assert "password" not in event.model_dump()
    assert SAMPLE_PASSWORD not in repr(event)


# --- required fields ------------------------------------------------------------------------------------------------

REQUIRED_CASES = [
    (event_type, name) for event_type in ALL_TYPES for name in sorted(expected_required(event_type))
]


@pytest.mark.parametrize(("event_type", "name"), REQUIRED_CASES, ids=lambda value: str(value))
def test_a_missing_required_field_is_named(event_type, name):
    fields = sample_fields(event_type.value, **{name: None})
    error = parse_error(event_type, fields)
    assert error.param == name
    assert error.message == f"{name} is required"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(("event_type", "name"), REQUIRED_CASES, ids=lambda value: str(value))
def test_a_blank_required_field_counts_as_missing(event_type, name):
    error = parse_error(event_type, sample_fields(event_type.value, **{name: ""}))
    assert error.param == name
    assert "required" in error.message


@pytest.mark.parametrize("event_type", sorted(FAILURE_TYPES))
def test_declined_purchases_need_no_subscription_id(event_type):
    fields = sample_fields(event_type.value, transactionId=None)
    assert "subscriptionId" not in fields
    event = parse_event(event_type, fields)
    assert event.subscriptionId is None and event.transactionId is None
    assert event.failureCode == "BE-900"


# --- mistyped values ------------------------------------------------------------------------------------------------

SECRET_LOOKING = "jane.doe@example.com-4111111111111111"

MISTYPED = [
    (EventType.NEW_SALE_SUCCESS, "billedRecurringPrice", SECRET_LOOKING, "must be a decimal amount"),
    (EventType.NEW_SALE_SUCCESS, "billedInitialPrice", "19,95", "must be a decimal amount"),
    (EventType.NEW_SALE_SUCCESS, "billedInitialPrice", "1e3", "must be a decimal amount"),
    (EventType.NEW_SALE_SUCCESS, "billedInitialPrice", "NaN", "must be a decimal amount"),
    (EventType.NEW_SALE_SUCCESS, "billedInitialPrice", True, "must be a decimal amount"),
    (EventType.RENEWAL_SUCCESS, "billedAmount", "-19.95", "must be a decimal amount of zero or more"),
    (EventType.REFUND, "amount", float("inf"), "must be a decimal amount"),
    (EventType.NEW_SALE_SUCCESS, "initialPeriod", "thirty", "must be a whole number"),
    (EventType.NEW_SALE_SUCCESS, "recurringPeriod", "30.5", "must be a whole number"),
    (EventType.NEW_SALE_SUCCESS, "rebills", -1, "must be a whole number"),
    (EventType.NEW_SALE_SUCCESS, "nextRenewalDate", "14/02/2026", "must be a date"),
    (EventType.BILLING_DATE_CHANGE, "nextRenewalDate", "2026-02-30", "must be a date"),
    (EventType.RENEWAL_FAILURE, "nextRetryDate", "2026-01-18 00:00:00", "must be a date"),
    (EventType.RENEWAL_SUCCESS, "renewalDate", 20260115, "must be a date"),
    (EventType.EXPIRATION, "timestamp", "15/01/2026 10:30", "must be a date and time"),
    (EventType.EXPIRATION, "timestamp", "2026-13-15 10:30:00", "must be a date and time"),
    (EventType.EXPIRATION, "subscriptionId", "0126-0154", "must be a string of digits"),
    (EventType.EXPIRATION, "subscriptionId", 1.5, "must be a string of digits"),
    (EventType.REFUND, "transactionId", "TX0001", "must be a string of digits"),
    (EventType.UP_SALE_SUCCESS, "originalSubscriptionId", "abc", "must be a string of digits"),
    (EventType.EXPIRATION, "clientAccnum", "9001OO", "must be a string of digits"),
    (EventType.EXPIRATION, "clientSubacc", "00001", "must be a sub-account number"),
    (EventType.CHARGEBACK, "bin", "4111-11", "must be the card's BIN"),
    (EventType.CHARGEBACK, "last4", "11111", "must be 4 digits"),
    (EventType.CHARGEBACK, "expDate", "1329", "must be a card expiry date MMYY"),
    (EventType.CHARGEBACK, "expDate", "01/29", "must be a card expiry date MMYY"),
    (EventType.REFUND, "currencyCode", "dollars", "must be a numeric ISO-4217 currency code"),
    (EventType.REFUND, "currencyCode", "8400", "must be a numeric ISO-4217 currency code"),
    (EventType.NEW_SALE_SUCCESS, "firstName", {"nested": "value"}, "must be text"),
]


@pytest.mark.parametrize(("event_type", "name", "value", "problem"), MISTYPED, ids=lambda value: str(value)[:30])
def test_a_mistyped_value_names_the_field_not_the_value(event_type, name, value, problem):
    fields = {**sample_fields(event_type.value), name: value}
    error = parse_error(event_type, fields)
    assert error.param == name
    assert error.message.startswith(f"{name} {problem}")
    assert str(error) == error.message
    text = repr(error) + str(error) + error.message
    if isinstance(value, str):
        assert value not in text
    if isinstance(value, dict):
        assert "value" not in text.replace("invalid value", "")


def test_the_brief_example_message():
    error = parse_error(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", billedRecurringPrice="abc"))
    assert (error.param, error.message) == ("billedRecurringPrice", "billedRecurringPrice must be a decimal amount")


def test_the_error_chain_does_not_carry_the_value():
    error = parse_error(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", billedRecurringPrice=SECRET_LOOKING))
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_fields_that_are_not_a_mapping_are_refused():
    with pytest.raises(EventValidationError) as caught:
        parse_event(EventType.EXPIRATION, ["clientAccnum"])  # type: ignore[arg-type]
    assert caught.value.param is None


def test_parse_event_does_not_change_its_input():
    fields = sample_fields("NewSaleSuccess", billedRecurringPrice="")
    before = dict(fields)
    parse_event(EventType.NEW_SALE_SUCCESS, fields)
    assert fields == before


def test_eight_digit_bins_are_accepted_nine_are_not():
    from billops_local.webhook_samples import sample_fields

    assert parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", bin="41111111")).bin == "41111111"
    with pytest.raises(EventValidationError) as raised:
        parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", bin="411111111"))
    assert raised.value.param == "bin"


# --- what real deliveries carry (issue 11) --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "sent", "read"), [("expDate", "317", "0317"), ("expDate", 317, "0317"),
                                                      ("last4", "42", "0042"), ("clientSubacc", "1", "0001"),
                                                      ("expDate", "0000", "0000")])
def test_zero_filled_columns_get_their_zeros_back_however_they_come(name, sent, read):
    assert getattr(parse_event(EventType.REFUND, {**sample_fields("Refund"), name: sent}), name) == read


@pytest.mark.parametrize("value", ["4", "41111", "411111", "41111111"])
def test_a_bin_shorter_than_six_digits_is_a_bin(value):
    assert parse_event(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess", bin=value)).bin == value


def test_only_the_identity_is_required():
    fields = {"subscriptionId": "0126015401000000123"}
    assert parse_event(EventType.REFUND, fields).transactionId is None
    assert parse_event(EventType.MANUAL_ADD, {}).clientAccnum is None
