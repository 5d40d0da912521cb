"""Typed models of CCBill's 20 webhook event types, every version up to the newest (changelog Release 12).

Attribute names are CCBill's field names exactly (camelCase), so a model is read with the same names as CCBill's
documentation. Each class covers the union of its event's fields over every version; the fields added by later
versions (see event_versions.py) are optional. Unknown fields (pass-through ``X-...`` variables, fields CCBill adds
later, an ``eventType`` copy in the body) are kept verbatim in ``model_extra``.

Sources: ../shared/reference/ccbill-facts.md 1.6 (field dictionaries), ccbill-webhooks-upsale-versions-changelog.txt
(UpSaleSuccess tables, Appendix A currencies, changelog), ../docs/architecture.md (contracts).

Rules applied to every model:
- "" (or blank) for a declared field means "absent": CCBill's form posts send empty values for optional fields.
  A blank required field is therefore reported as missing. Undeclared fields are kept exactly as sent.
- Only what identifies a delivery is required: ``subscriptionId`` on the events that cannot exist without one.
  Everything else is optional here; the receiver (field_checks.py) flags a missing documented field, and a field that
  does not parse, on the stored delivery instead of refusing it.
- IDs stay text (leading zeros are significant); subscriptionId, transactionId and originalSubscriptionId must be
  digits. JSON numbers are accepted for IDs (converted to text).
- Zero-filled fields (``smallint(4) unsigned zerofill``: clientSubacc, expDate, last4) get their zeros back when they
  arrive shorter ("317" or 317 is "0317"). ``bin`` is a mediumint(6): 1 to 8 digits (8-digit BINs since 2022).
  ``expDate`` "0000" means no expiry date (bank payments).
- Amounts are Decimal >= 0, periods and rebills int >= 0, ``timestamp`` a naive datetime in CCBill's time zone
  (ccbill_time.py; one that carries an offset is converted to UTC), the date-only fields ``date``; currency codes are
  normalised to the 3-digit numeric string of Appendix A ("USD" and 840 become "840").
- The consumer's ``password`` is never kept: excluded from dumps and repr.
- Validation errors never echo the offending value (it may be personal data): EventValidationError names the field.

Only pydantic and the standard library (plus billops' own reference table) are imported: this module is on the
webhook receiver's cold-start path. Only WebhookEvent is built at import: each event type's model, and the shared
bases it is made of, on its first use (model_for); a model builds its validator on its first validation (defer_build).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from billops.reference.currencies import normalise_numeric
from billops.webhooks.event_types import EventType

__all__ = [
    "MODELS",
    "EventValidationError",
    "WebhookEvent",
    "describe_error",
    "model_for",
    "parse_event",
]


# --- errors ---------------------------------------------------------------------------------------------------------


class EventValidationError(ValueError):
    """A delivery's fields do not fit its event type's model.

    ``param`` is the CCBill field at fault (None when the fields as a whole are unusable); ``message`` is a sentence
    naming the field and the problem. Neither ever contains the field's value.
    """

    code = "param_wrong_value"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"EventValidationError(param={self.param!r}, message={self.message!r})"


def _invalid(kind: str, message: str) -> PydanticCustomError:
    # The message is a fixed text (no placeholders): it is appended to the field name and never holds the value.
    return PydanticCustomError(f"billops_{kind}", message)


# --- value types ----------------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")
_AMOUNT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ZERO_DATE = "0000-00-00"


def _digit_text(
    value: Any, *, kind: str, message: str, lengths: tuple[int, int | None] = (1, None), zero_fill: int = 0
) -> str:
    if isinstance(value, bool):
        raise _invalid(kind, message)
    if isinstance(value, int):
        if value < 0:
            raise _invalid(kind, message)
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise _invalid(kind, message)
    if zero_fill and _DIGITS.fullmatch(text):
        # CCBill's "zerofill" columns lose their zeros in a JSON number (or a sender that trimmed them): restored.
        text = text.zfill(zero_fill)
    shortest, longest = lengths
    if not _DIGITS.fullmatch(text) or len(text) < shortest or (longest is not None and len(text) > longest):
        raise _invalid(kind, message)
    return text


def _numeric_id(value: Any) -> str:
    return _digit_text(value, kind="digits", message="must be a string of digits")


def _sub_account(value: Any) -> str:
    return _digit_text(value, kind="subaccount", message="must be a sub-account number of up to 4 digits",
                       lengths=(1, 4), zero_fill=4)


def _bin(value: Any) -> str:
    # CCBill documents mediumint(6) (up to 6 digits, no zerofill: a shorter value is a valid one), and card schemes
    # moved to 8-digit BINs in 2022 (PCI allows them with the last four): 1 to 8 digits.
    return _digit_text(value, kind="bin", message="must be the card's BIN (up to 8 digits)", lengths=(1, 8))


def _last4(value: Any) -> str:
    return _digit_text(value, kind="last4", message="must be 4 digits", lengths=(4, 4), zero_fill=4)


def _exp_date(value: Any) -> str:
    message = "must be a card expiry date MMYY (4 digits)"
    text = _digit_text(value, kind="exp_date", message=message, lengths=(4, 4), zero_fill=4)
    if text == "0000":
        return text  # no expiry date: a bank (ACH / check) payment
    if not 1 <= int(text[:2]) <= 12:
        raise _invalid("exp_date", message)
    return text


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise _invalid("text", "must be text")


def _amount(value: Any) -> Decimal:
    message = "must be a decimal amount"
    if isinstance(value, bool):
        raise _invalid("decimal", message)
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))  # repr gives the shortest text that round-trips: 19.95 -> "19.95"
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT.fullmatch(text):
            raise _invalid("decimal", message)
        try:
            amount = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise _invalid("decimal", message) from None
    else:
        raise _invalid("decimal", message)
    if not amount.is_finite():
        raise _invalid("decimal", message)
    if amount < 0:
        raise _invalid("negative", "must be a decimal amount of zero or more")
    return amount


def _count(value: Any) -> int:
    message = "must be a whole number of zero or more"
    if isinstance(value, bool):
        raise _invalid("whole_number", message)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise _invalid("whole_number", message)
    if number < 0:
        raise _invalid("whole_number", message)
    return number


def _timestamp(value: Any) -> datetime:
    message = "must be a date and time like 2025-01-31 12:00:00"
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _TIMESTAMP.fullmatch(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:  # e.g. month 13
            raise _invalid("timestamp", message) from None
    else:
        raise _invalid("timestamp", message)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _calendar_date(value: Any) -> date | None:
    message = "must be a date like 2025-01-31"
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        raise _invalid("date", message)
    text = value.strip()
    if text == _ZERO_DATE:
        # CCBill's field types are MySQL's; MySQL's "zero date" means "no date" (e.g. no renewal of a one-off sale).
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _invalid("date", message) from None


def _currency_code(value: Any) -> str:
    message = "must be a numeric ISO-4217 currency code such as 840"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _invalid("currency", message)
    text = str(value).strip()
    numeric = normalise_numeric(text)
    if numeric is not None:
        return numeric
    # A well-formed numeric code CCBill's Appendix A does not (yet) list is kept rather than refused.
    if _DIGITS.fullmatch(text) and len(text) <= 3:
        return text.zfill(3)
    raise _invalid("currency", message)


NumericId = Annotated[str, BeforeValidator(_numeric_id)]
"""subscriptionId, transactionId, originalSubscriptionId, clientAccnum: digits, kept as text (leading zeros)."""
SubAccount = Annotated[str, BeforeValidator(_sub_account)]
"""clientSubacc: up to 4 digits, zero-filled by CCBill ("0000"), kept as sent."""
Text = Annotated[str, BeforeValidator(_text)]
"""Free text and opaque identifiers (reservationId, paymentAccount, subscriptionTypeId...); JSON numbers become text."""
Amount = Annotated[Decimal, BeforeValidator(_amount)]
Count = Annotated[int, BeforeValidator(_count)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
CalendarDate = Annotated[date | None, BeforeValidator(_calendar_date)]
"""A ``YYYY-MM-DD`` date; MySQL's zero date 0000-00-00 reads as None."""
CurrencyCode = Annotated[str, BeforeValidator(_currency_code)]
Bin = Annotated[str, BeforeValidator(_bin)]
Last4 = Annotated[str, BeforeValidator(_last4)]
ExpDate = Annotated[str, BeforeValidator(_exp_date)]


# --- models ---------------------------------------------------------------------------------------------------------


class WebhookEvent(BaseModel):
    """Fields every CCBill webhook event may carry. Subclasses make required what their event always documents."""

    # defer_build: a model builds its validators on its first validation, so a new container pays for the event
    # types it receives, not for all 20 (import + first validation: ~0.27 s of CPU instead of ~0.45 s, measured on
    # the bench machine); the shared bases are never built.
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True, defer_build=True)

    event_type: ClassVar[EventType | None] = None

    clientAccnum: NumericId | None = None
    clientSubacc: SubAccount | None = None
    subscriptionId: NumericId | None = None
    transactionId: NumericId | None = None
    timestamp: Timestamp | None = None
    """CCBill's time of the event, ``YYYY-MM-DD HH:MM:SS`` without a zone: in CCBill's zone (ccbill_time.py)."""
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    """The consumer's site password: validated away, never dumped, never shown."""

    @model_validator(mode="before")
    @classmethod
    def _blank_means_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            declared = cls.model_fields
            return {
                name: value
                for name, value in data.items()
                if not (name in declared and isinstance(value, str) and not value.strip())
            }
        return data

    def occurred_at(self, zone: tzinfo) -> datetime | None:
        """``timestamp`` as an aware UTC datetime, read in ``zone`` (CCBill's: ``ccbill_time.ccbill_zone``)."""
        return self.timestamp.replace(tzinfo=zone).astimezone(UTC) if self.timestamp else None


# The shared bases: built with the first event type that is made of them (model_for).
@cache
def _card_fields() -> type[WebhookEvent]:
    class _CardFields(WebhookEvent):
        """Card and payment-method fields (PCI-safe subset: BIN, last four digits, expiry, hashed card id)."""

        paymentAccount: Text | None = None
        bin: Bin | None = None
        last4: Last4 | None = None
        expDate: ExpDate | None = None
        paymentType: Text | None = None
        cardType: Text | None = None
        cardSubType: Text | None = None

    return _CardFields


@cache
def _customer_fields() -> type[WebhookEvent]:
    class _CustomerFields(WebhookEvent):
        firstName: Text | None = None
        lastName: Text | None = None
        address1: Text | None = None
        city: Text | None = None
        state: Text | None = None
        country: Text | None = None
        postalCode: Text | None = None
        email: Text | None = None
        phoneNumber: Text | None = None
        ipAddress: Text | None = None
        reservationId: Text | None = None
        username: Text | None = None

    return _CustomerFields


@cache
def _purchase_fields() -> type[WebhookEvent]:
    class _PurchaseFields(_customer_fields(), _card_fields()):
        """What every purchase event (sale, upgrade, up-sale, cross-sale; approved or declined) may carry."""

        formName: Text | None = None
        flexId: Text | None = None
        """FlexForm id, as NewSaleSuccess spells it."""
        flexID: Text | None = None
        """FlexForm id, as the UpSaleSuccess tables spell it."""
        priceDescription: Text | None = None
        recurringPriceDescription: Text | None = None
        billedInitialPrice: Amount | None = None
        billedRecurringPrice: Amount | None = None
        billedCurrencyCode: CurrencyCode | None = None
        billedCurrency: Text | None = None
        subscriptionInitialPrice: Amount | None = None
        subscriptionRecurringPrice: Amount | None = None
        subscriptionCurrencyCode: CurrencyCode | None = None
        subscriptionCurrency: Text | None = None
        accountingInitialPrice: Amount | None = None
        accountingRecurringPrice: Amount | None = None
        accountingCurrencyCode: CurrencyCode | None = None
        accountingCurrency: Text | None = None
        initialPeriod: Count | None = None
        recurringPeriod: Count | None = None
        rebills: Count | None = None
        nextRenewalDate: CalendarDate | None = None
        subscriptionTypeId: Text | None = None
        dynamicPricingValidationDigest: Text | None = None
        avsResponse: Text | None = None
        cvv2Response: Text | None = None
        affiliateSystem: Text | None = None
        referringUrl: Text | None = None
        lifeTimeSubscription: Text | None = None
        lifeTimePrice: Amount | None = None
        productDesc: Text | None = None
        prePaid: Text | None = None
        threeDSecure: Text | None = None
        scaResponseStatus: Text | None = None

        @property
        def flex_id(self) -> str | None:
            """The FlexForm id, whichever way CCBill spelled it."""
            return self.flexId or self.flexID

    return _PurchaseFields


@cache
def _original_subscription_fields() -> type[WebhookEvent]:
    class _OriginalSubscriptionFields(WebhookEvent):
        originalSubscriptionId: NumericId | None = None
        originalClientAccnum: NumericId | None = None
        originalClientSubacc: SubAccount | None = None
        source: Text | None = None
        """FORM, API or PHONE."""

    return _OriginalSubscriptionFields


@cache
def _sale_success() -> type[WebhookEvent]:
    class _SaleSuccess(_purchase_fields()):
        subscriptionId: NumericId

    return _SaleSuccess


@cache
def _sale_failure() -> type[WebhookEvent]:
    class _SaleFailure(_purchase_fields()):
        """A declined purchase: no subscription was created. transactionId is optional (not in every version's docs)."""

        failureCode: Text | None = None
        failureReason: Text | None = None

    return _SaleFailure


@cache
def _subscription_event() -> type[WebhookEvent]:
    class _SubscriptionEvent(WebhookEvent):
        subscriptionId: NumericId

    return _SubscriptionEvent


@cache
def _money_reversal() -> type[WebhookEvent]:
    class _MoneyReversal(_subscription_event(), _card_fields()):
        amount: Amount | None = None
        currency: Text | None = None
        currencyCode: CurrencyCode | None = None
        accountingAmount: Amount | None = None
        accountingCurrency: Text | None = None
        accountingCurrencyCode: CurrencyCode | None = None
        reason: Text | None = None

    return _MoneyReversal


# The 20 event types' own classes are built on first use (model_for): each class collects its fields again from its
# bases (up to 64 of them), and building all 20 at import cost the receiver's first delivery ~10 ms of CPU for the
# one type it reads (bench: python -m bench --only cold). The shared bases above are built with the first type made
# of them (the builders run under model_for's lock).
_BUILDERS: dict[EventType, Callable[[], type[WebhookEvent]]] = {}
_BUILT: dict[EventType, type[WebhookEvent]] = {}
_BUILDING = threading.Lock()


def _model(event_type: EventType) -> Callable[[Callable[[], type[WebhookEvent]]], Callable[[], type[WebhookEvent]]]:
    def register(builder: Callable[[], type[WebhookEvent]]) -> Callable[[], type[WebhookEvent]]:
        _BUILDERS[event_type] = builder
        return builder

    return register


@_model(EventType.NEW_SALE_SUCCESS)
def _new_sale_success() -> type[WebhookEvent]:
    class NewSaleSuccessEvent(_sale_success()):
        event_type: ClassVar[EventType | None] = EventType.NEW_SALE_SUCCESS

    return NewSaleSuccessEvent


@_model(EventType.NEW_SALE_FAILURE)
def _new_sale_failure() -> type[WebhookEvent]:
    class NewSaleFailureEvent(_sale_failure()):
        event_type: ClassVar[EventType | None] = EventType.NEW_SALE_FAILURE

    return NewSaleFailureEvent


@_model(EventType.UPGRADE_SUCCESS)
def _upgrade_success() -> type[WebhookEvent]:
    class UpgradeSuccessEvent(_sale_success(), _original_subscription_fields()):
        event_type: ClassVar[EventType | None] = EventType.UPGRADE_SUCCESS

    return UpgradeSuccessEvent


@_model(EventType.UPGRADE_FAILURE)
def _upgrade_failure() -> type[WebhookEvent]:
    class UpgradeFailureEvent(_sale_failure(), _original_subscription_fields()):
        event_type: ClassVar[EventType | None] = EventType.UPGRADE_FAILURE

    return UpgradeFailureEvent


@_model(EventType.UP_SALE_SUCCESS)
def _up_sale_success() -> type[WebhookEvent]:
    class UpSaleSuccessEvent(_sale_success(), _original_subscription_fields()):
        event_type: ClassVar[EventType | None] = EventType.UP_SALE_SUCCESS

    return UpSaleSuccessEvent


@_model(EventType.UP_SALE_FAILURE)
def _up_sale_failure() -> type[WebhookEvent]:
    class UpSaleFailureEvent(_sale_failure(), _original_subscription_fields()):
        event_type: ClassVar[EventType | None] = EventType.UP_SALE_FAILURE

    return UpSaleFailureEvent


@_model(EventType.CROSS_SALE_SUCCESS)
def _cross_sale_success() -> type[WebhookEvent]:
    class CrossSaleSuccessEvent(_sale_success(), _original_subscription_fields()):
        event_type: ClassVar[EventType | None] = EventType.CROSS_SALE_SUCCESS

    return CrossSaleSuccessEvent


@_model(EventType.CROSS_SALE_FAILURE)
def _cross_sale_failure() -> type[WebhookEvent]:
    class CrossSaleFailureEvent(_sale_failure(), _original_subscription_fields()):
        event_type: ClassVar[EventType | None] = EventType.CROSS_SALE_FAILURE

    return CrossSaleFailureEvent


@_model(EventType.RENEWAL_SUCCESS)
def _renewal_success() -> type[WebhookEvent]:
    class RenewalSuccessEvent(_subscription_event(), _card_fields()):
        event_type: ClassVar[EventType | None] = EventType.RENEWAL_SUCCESS

        billedAmount: Amount | None = None
        billedCurrency: Text | None = None
        billedCurrencyCode: CurrencyCode | None = None
        accountingAmount: Amount | None = None
        accountingCurrency: Text | None = None
        accountingCurrencyCode: CurrencyCode | None = None
        nextRenewalDate: CalendarDate | None = None
        renewalDate: CalendarDate | None = None

    return RenewalSuccessEvent


@_model(EventType.RENEWAL_FAILURE)
def _renewal_failure() -> type[WebhookEvent]:
    class RenewalFailureEvent(_subscription_event(), _card_fields()):
        event_type: ClassVar[EventType | None] = EventType.RENEWAL_FAILURE

        failureCode: Text | None = None
        failureReason: Text | None = None
        nextRetryDate: CalendarDate | None = None
        renewalDate: CalendarDate | None = None

    return RenewalFailureEvent


@_model(EventType.CANCELLATION)
def _cancellation() -> type[WebhookEvent]:
    class CancellationEvent(_subscription_event()):
        event_type: ClassVar[EventType | None] = EventType.CANCELLATION

        reason: Text | None = None
        source: Text | None = None

    return CancellationEvent


@_model(EventType.EXPIRATION)
def _expiration() -> type[WebhookEvent]:
    class ExpirationEvent(_subscription_event()):
        event_type: ClassVar[EventType | None] = EventType.EXPIRATION

    return ExpirationEvent


@_model(EventType.BILLING_DATE_CHANGE)
def _billing_date_change() -> type[WebhookEvent]:
    class BillingDateChangeEvent(_subscription_event()):
        event_type: ClassVar[EventType | None] = EventType.BILLING_DATE_CHANGE

        nextRenewalDate: CalendarDate | None = None

    return BillingDateChangeEvent


@_model(EventType.CUSTOMER_DATA_UPDATE)
def _customer_data_update() -> type[WebhookEvent]:
    class CustomerDataUpdateEvent(_subscription_event(), _customer_fields(), _card_fields()):
        event_type: ClassVar[EventType | None] = EventType.CUSTOMER_DATA_UPDATE

    return CustomerDataUpdateEvent


@_model(EventType.USER_REACTIVATION)
def _user_reactivation() -> type[WebhookEvent]:
    class UserReactivationEvent(_subscription_event()):
        event_type: ClassVar[EventType | None] = EventType.USER_REACTIVATION

        price: Text | None = None
        """A description such as "5.95 for 30 days (non-recurring)", not an amount."""
        email: Text | None = None
        username: Text | None = None
        nextRenewalDate: CalendarDate | None = None

    return UserReactivationEvent


@_model(EventType.CHARGEBACK)
def _chargeback() -> type[WebhookEvent]:
    class ChargebackEvent(_money_reversal()):
        event_type: ClassVar[EventType | None] = EventType.CHARGEBACK

    return ChargebackEvent


@_model(EventType.REFUND)
def _refund() -> type[WebhookEvent]:
    class RefundEvent(_money_reversal()):
        event_type: ClassVar[EventType | None] = EventType.REFUND

    return RefundEvent


@_model(EventType.VOID)
def _void() -> type[WebhookEvent]:
    class VoidEvent(_money_reversal()):
        event_type: ClassVar[EventType | None] = EventType.VOID

    return VoidEvent


@_model(EventType.RETURN)
def _return() -> type[WebhookEvent]:
    class ReturnEvent(_money_reversal()):
        event_type: ClassVar[EventType | None] = EventType.RETURN

    return ReturnEvent


@_model(EventType.MANUAL_ADD)
def _manual_add() -> type[WebhookEvent]:
    class ManualAddEvent(WebhookEvent):
        """ManualAdd has no field page: nothing is required; everything is kept as sent."""

        event_type: ClassVar[EventType | None] = EventType.MANUAL_ADD

    return ManualAddEvent

def model_for(event_type: EventType) -> type[WebhookEvent]:
    """The model of a known event type (KeyError for anything else), built on its first use."""
    model = _BUILT.get(event_type)
    if model is None:
        builder = _BUILDERS[event_type]
        with _BUILDING:  # one class per type, even when threads (the local stack) ask at once
            model = _BUILT.get(event_type)
            if model is None:
                model = builder()
                model.__qualname__ = model.__name__  # as when it was a module-level class (repr, pickle)
                _BUILT[EventType(event_type)] = model
    return model


_BY_NAME = {f"{event_type.value}Event": event_type for event_type in EventType}


def __getattr__(name: str) -> Any:
    # ``from billops.webhooks.event_models import RefundEvent`` and ``MODELS`` (every model) still work: they build
    # what they name.
    if name in _BY_NAME:
        return model_for(_BY_NAME[name])
    if name == "MODELS":
        return {event_type: model_for(event_type) for event_type in _BUILDERS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_TYPE_MESSAGES = {
    "missing": "is required",
    "string_type": "must be text",
}


def describe_error(error: Mapping[str, Any]) -> str:
    """What is wrong with a field, from one of pydantic's error details: a fixed text, never the value."""
    kind = str(error.get("type", ""))
    if kind.startswith("billops_"):
        return str(error.get("msg", "has an invalid value"))  # our fixed texts, never the value
    return _TYPE_MESSAGES.get(kind, "has an invalid value")


def _error_from(error: Mapping[str, Any]) -> EventValidationError:
    location = error.get("loc") or ()
    if not location:
        return EventValidationError("The event's fields must be a map of field names to values.")
    param = str(location[0])
    return EventValidationError(f"{param} {describe_error(error)}", param=param)


def parse_event(event_type: EventType, fields: Mapping[str, Any]) -> WebhookEvent:
    """Validate a delivery's decoded fields with its event type's model. Raises EventValidationError (first error)."""
    model = model_for(event_type)
    if not isinstance(fields, Mapping):
        raise EventValidationError("The event's fields must be a map of field names to values.")
    try:
        return model.model_validate(dict(fields))
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        raise _error_from(errors[0]) from None
