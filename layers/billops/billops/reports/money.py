"""Amounts in the report currency.

CCBill gives most money events an *accounting* amount (``accountingAmount``, ``accountingInitialPrice``,
``accountingRecurringPrice`` with ``accountingCurrencyCode``): the amount converted by CCBill into the merchant's
accounting currency. That amount is used when its currency is the report currency (BILLOPS_REPORT_CURRENCY).
Otherwise the first amount of the event whose currency has a rate in BILLOPS_REPORT_EXCHANGE_RATES is converted
(rounded half up to the cent), accounting amount first, then billed, then the subscription's. An amount none of
which can be converted is kept apart, by its currency (``unconverted``): never counted at a guessed rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billops.reference.currencies import alpha_for

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def decimal_or_none(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class Money:
    """An amount in the report currency (``amount``), or one that could not be converted (``unconverted``)."""

    amount: Decimal | None = None
    unconverted: tuple[str, Decimal] | None = None


def report_amount(candidates: Iterable[tuple[object, object]], currency: str,
                  rates: Mapping[str, Decimal]) -> Money | None:
    """``candidates``: (amount, currency code) pairs in order of preference. None when none has an amount."""
    usable = []
    for amount, code in candidates:
        number = decimal_or_none(amount)
        if number is not None:
            usable.append((number, alpha_for(str(code)) if code not in (None, "") else None))
    if not usable:
        return None
    for number, alpha in usable:
        if alpha == currency:
            return Money(amount=cents(number))
    for number, alpha in usable:
        if alpha is not None and alpha in rates:
            return Money(amount=cents(number * rates[alpha]))
    number, alpha = usable[0]
    return Money(unconverted=(alpha or "unknown", cents(number)))
