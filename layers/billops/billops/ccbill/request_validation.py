"""Checks on every value before it is sent to CCBill, each rejection naming CCBill's parameter.

CCBill answers -7 for a non-numeric or badly formatted price or period, a missing argument and a currency it cannot
convert (ccbill-api-error-7-and-upgrades.txt), and -7 is an *unknown* outcome that costs a status check and a
support ticket. Every one of those causes can be seen before the call, so it is refused here with a message a
person understands.

Values come back normalised the way CCBill expects them on the wire: prices as "19.95" (digits, one dot, two
decimals, no currency sign), periods and counts as plain integers, subaccounts zero-filled to four digits,
currencies as the numeric ISO-4217 code of Appendix A.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billops.ccbill.errors import CCBillRequestInvalid
from billops.reference.currencies import NUMERIC_TO_ALPHA, normalise_numeric

CENT = Decimal("0.01")
MIN_PRICE = Decimal("0.01")
MAX_PRICE = Decimal("9999.99")
"""A price above this is a typo, not a subscription (CCBill's own ranges are set per subaccount, far lower)."""
MAX_PERIOD_DAYS = 365 * 10
MAX_REBILLS = 99
"""CCBill's examples use rebills=99 for "until cancelled"; nothing larger is meaningful."""
MAX_EXTEND_DAYS = 365
"""Our limit, not CCBill's: extending a subscription by more than a year is far more likely a slip than a gift."""

_DIGITS = re.compile(r"^\d+$")
_PRICE = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PASS_THROUGH_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def _text(value: object, param: str) -> str:
    if value is None:
        raise CCBillRequestInvalid(param, "is required")
    if isinstance(value, bool):
        raise CCBillRequestInvalid(param, f"must not be a boolean ({value!r})")
    if isinstance(value, float):
        # repr of a float is its shortest round-trip text ("19.95"), which is what the caller meant.
        return repr(value)
    return str(value).strip()


def subscription_id(value: object, param: str = "subscriptionId") -> str:
    """CCBill's subscription and transaction IDs: digits only, leading zeros kept (19 digits in production)."""
    text = _text(value, param)
    if not _DIGITS.match(text) or len(text) > 20:
        raise CCBillRequestInvalid(param, f"must be CCBill's numeric ID (up to 20 digits), got {text[:40]!r}")
    return text


def client_accnum(value: object, param: str = "clientAccnum") -> str:
    text = _text(value, param)
    if not _DIGITS.match(text) or len(text) != 6:
        raise CCBillRequestInvalid(param, f"must be the six-digit CCBill account number, got {text[:40]!r}")
    return text


def client_subacc(value: object, param: str = "clientSubacc") -> str:
    """A subaccount as CCBill writes it: four digits, zero-filled ("1" -> "0001")."""
    text = _text(value, param)
    if not _DIGITS.match(text) or len(text) > 4:
        raise CCBillRequestInvalid(param, f"must be a CCBill subaccount of up to four digits, got {text[:40]!r}")
    return text.zfill(4)


def price(value: object, param: str, *, minimum: Decimal = MIN_PRICE, maximum: Decimal = MAX_PRICE) -> Decimal:
    """A price as a Decimal with two places. Numbers only: no currency sign, no thousands separator, no exponent."""
    text = _text(value, param)
    if not _PRICE.match(text):
        raise CCBillRequestInvalid(
            param, f"must be a number with at most two decimals and no currency sign (like 19.95), got {text[:40]!r}"
        )
    try:
        amount = Decimal(text).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:  # pragma: no cover - the pattern above already excludes this
        raise CCBillRequestInvalid(param, f"is not a number: {text[:40]!r}") from exc
    if amount < minimum:
        raise CCBillRequestInvalid(param, f"must be at least {format_price(minimum)}, got {format_price(amount)}")
    if amount > maximum:
        raise CCBillRequestInvalid(param, f"must be at most {format_price(maximum)}, got {format_price(amount)}")
    return amount


def format_price(amount: Decimal) -> str:
    return f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):.2f}"


def whole_number(value: object, param: str, *, minimum: int, maximum: int) -> int:
    """A period in days, a number of rebills, a number of days to extend: digits only, within bounds."""
    text = _text(value, param)
    if not _DIGITS.match(text):
        raise CCBillRequestInvalid(param, f"must be a whole number, got {text[:40]!r}")
    number = int(text)
    if number < minimum or number > maximum:
        raise CCBillRequestInvalid(param, f"must be between {minimum} and {maximum}, got {number}")
    return number


def period_days(value: object, param: str, *, minimum: int = 1, maximum: int = MAX_PERIOD_DAYS) -> int:
    return whole_number(value, param, minimum=minimum, maximum=maximum)


def rebills(value: object, param: str = "rebills") -> int:
    return whole_number(value, param, minimum=0, maximum=MAX_REBILLS)


def extend_days(value: object, param: str = "extendLength") -> int:
    return whole_number(value, param, minimum=1, maximum=MAX_EXTEND_DAYS)


def currency_code(value: object, param: str = "currencyCode") -> str:
    """The numeric ISO-4217 code CCBill bills in ("840"); "USD" and 840 are accepted and converted."""
    text = _text(value, param)
    numeric = normalise_numeric(text)
    if numeric is None:
        known = ", ".join(f"{code} ({alpha})" for code, alpha in sorted(NUMERIC_TO_ALPHA.items()))
        raise CCBillRequestInvalid(param, f"{text[:10]!r} is not a currency CCBill bills in; use one of {known}")
    return numeric


def flag(value: object, param: str) -> str:
    """CCBill's 0/1 switches (sharedAuthentication, specialOffer)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = _text(value, param)
    if text not in ("0", "1"):
        raise CCBillRequestInvalid(param, f"must be 0 or 1, got {text[:10]!r}")
    return text


def consumer_username(value: object, param: str = "username") -> str:
    """A consumer's username as CCBill knows it (allowUpgrade, enc): printable, no control characters."""
    text = _text(value, param)
    if not text or len(text) > 64 or _CONTROL.search(text):
        raise CCBillRequestInvalid(param, "must be the consumer's CCBill username (1 to 64 printable characters)")
    return text


def pass_through_name(name: str) -> str:
    if not _PASS_THROUGH_NAME.match(name or ""):
        raise CCBillRequestInvalid(str(name)[:64], "is not a usable pass-through variable name")
    return name


def exactly_one(values: dict[str, object]) -> str:
    """The name of the one parameter given among ``values``; refuses none or several."""
    given = [name for name, value in values.items() if value is not None]
    if len(given) != 1:
        names = " or ".join(values)
        first = next(iter(values))
        raise CCBillRequestInvalid(given[1] if len(given) > 1 else first, f"give exactly one of {names}")
    return given[0]
