"""The card schemes' chargeback monitoring levels, per card type, and the month-to-date ratios compared with them.

Each card type has two levels: ``warning`` (early warning) and ``breach`` (the programme's level). A level is a
ratio (chargebacks / transactions) and a least number of chargebacks in the month: the schemes flag a merchant only
when both are reached. The denominator is the same calendar month's sales and rebills (Visa) or the previous
month's (Mastercard's ECP divides a month's chargebacks by the previous month's transactions).

Defaults (docs/reports.md names the sources; BILLOPS_CHARGEBACK_THRESHOLDS replaces them):

* VISA: warning 0.65 % and 75 chargebacks - the early-warning level of Visa's dispute monitoring programme as
  CCBill publishes it (VDMP; Visa folded it into VAMP on 2025-04-01, which publishes no merchant early warning);
  breach 1.5 % and 1,500 - VAMP's "excessive" merchant ratio in force since 2026-04-01 (2.2 % before). VAMP also
  counts fraud reports (TC40) that never reach billops, so Visa's own ratio can only be higher than this one.
* MASTERCARD: warning 1.0 % and 100 - Chargeback-Monitored Merchant; breach 1.5 % and 100 - Excessive Chargeback
  Merchant (Mastercard's Excessive Chargeback Program as CCBill's knowledge base describes it), previous month's
  transactions as the denominator.

The setting is JSON, percentages as decimal strings::

    {"VISA": {"warning": {"percent": "0.65", "min_chargebacks": 75},
              "breach": {"percent": "1.5", "min_chargebacks": 1500}, "denominator": "same_month"}, ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

WARNING = "warning"
BREACH = "breach"
LEVELS = (WARNING, BREACH)
SAME_MONTH = "same_month"
PREVIOUS_MONTH = "previous_month"
DENOMINATORS = (SAME_MONTH, PREVIOUS_MONTH)
_HUNDRED = Decimal(100)


class ThresholdsError(ValueError):
    """BILLOPS_CHARGEBACK_THRESHOLDS cannot be honoured (the function refuses to start, naming the problem)."""


@dataclass(frozen=True)
class Level:
    percent: Decimal
    min_chargebacks: int

    @property
    def ratio(self) -> Decimal:
        return self.percent / _HUNDRED


@dataclass(frozen=True)
class CardThresholds:
    warning: Level
    breach: Level
    denominator: str = SAME_MONTH

    def level(self, name: str) -> Level:
        return self.warning if name == WARNING else self.breach


DEFAULT_THRESHOLDS: dict[str, CardThresholds] = {
    "VISA": CardThresholds(Level(Decimal("0.65"), 75), Level(Decimal("1.5"), 1500), SAME_MONTH),
    "MASTERCARD": CardThresholds(Level(Decimal("1.0"), 100), Level(Decimal("1.5"), 100), PREVIOUS_MONTH),
}

_CARD_ALIASES = {"MC": "MASTERCARD", "MASTER": "MASTERCARD", "AMERICANEXPRESS": "AMEX", "DINERSCLUB": "DINERS"}
UNKNOWN_CARD = "UNKNOWN"


def card_type_key(value: Any) -> str:
    """CCBill's ``cardType`` as one key: upper case, letters and digits only (``Master Card`` -> ``MASTERCARD``);
    absent -> ``UNKNOWN``. CCBill documents ``VISA``; other spellings are an assumption (docs/ccbill-assumptions.md)."""
    text = "".join(char for char in str(value or "").upper() if char.isalnum())[:24]
    return _CARD_ALIASES.get(text, text) or UNKNOWN_CARD


def _level(value: Any, where: str) -> Level:
    if not isinstance(value, Mapping):
        raise ThresholdsError(f"{where} must be an object with percent and min_chargebacks")
    unknown = set(value) - {"percent", "min_chargebacks"}
    if unknown:
        raise ThresholdsError(f"{where} has unknown keys {sorted(unknown)}")
    try:
        percent = Decimal(str(value.get("percent")))
    except (InvalidOperation, ValueError):
        raise ThresholdsError(f"{where}.percent must be a number like \"0.65\"") from None
    if not percent.is_finite() or not Decimal(0) < percent <= _HUNDRED:
        raise ThresholdsError(f"{where}.percent must be above 0 and at most 100")
    minimum = value.get("min_chargebacks", 1)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise ThresholdsError(f"{where}.min_chargebacks must be a whole number of at least 1")
    return Level(percent, minimum)


def parse_thresholds(text: str | None) -> dict[str, CardThresholds]:
    """The thresholds the setting names (all of them: it replaces the defaults), or the defaults when empty."""
    if text is None or not text.strip():
        return dict(DEFAULT_THRESHOLDS)
    try:
        document = json.loads(text)
    except ValueError:
        raise ThresholdsError("BILLOPS_CHARGEBACK_THRESHOLDS is not valid JSON") from None
    if not isinstance(document, Mapping):
        raise ThresholdsError("BILLOPS_CHARGEBACK_THRESHOLDS must be a JSON object: card type -> levels")
    thresholds: dict[str, CardThresholds] = {}
    for card, value in document.items():
        where = f"BILLOPS_CHARGEBACK_THRESHOLDS[{card!r}]"
        key = card_type_key(card)
        if key == UNKNOWN_CARD or not isinstance(value, Mapping):
            raise ThresholdsError(f"{where} must name a card type and hold an object")
        unknown = set(value) - {WARNING, BREACH, "denominator"}
        if unknown:
            raise ThresholdsError(f"{where} has unknown keys {sorted(unknown)}")
        denominator = value.get("denominator", SAME_MONTH)
        if denominator not in DENOMINATORS:
            raise ThresholdsError(f"{where}.denominator must be one of {', '.join(DENOMINATORS)}")
        warning, breach = _level(value.get(WARNING), f"{where}.warning"), _level(value.get(BREACH), f"{where}.breach")
        if warning.percent > breach.percent:
            raise ThresholdsError(f"{where}: the warning level is above the breach level")
        thresholds[key] = CardThresholds(warning, breach, denominator)
    return thresholds


@dataclass(frozen=True)
class MonthRatio:
    """One card type's month-to-date ratio, as a level sees it."""

    card_type: str
    month: str  # YYYY-MM
    chargebacks: int
    transactions: int  # the denominator: this month's or the previous month's sales and rebills
    denominator: str

    @property
    def ratio(self) -> Decimal | None:
        return Decimal(self.chargebacks) / Decimal(self.transactions) if self.transactions else None

    def reaches(self, level: Level) -> bool:
        """Both the ratio and the count of the level are reached (a month without transactions reaches nothing)."""
        ratio = self.ratio
        return ratio is not None and self.chargebacks >= level.min_chargebacks and ratio >= level.ratio


def previous_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def month_ratios(month: str, chargebacks: Mapping[str, int], transactions: Mapping[str, Mapping[str, int]],
                 thresholds: Mapping[str, CardThresholds]) -> list[MonthRatio]:
    """The ratio of every card type with thresholds that had chargebacks in ``month``.

    ``chargebacks``: card type -> chargebacks in the month; ``transactions``: month -> card type -> sales + rebills.
    """
    ratios = []
    for card, card_thresholds in sorted(thresholds.items()):
        count = int(chargebacks.get(card, 0))
        if not count:
            continue
        source = previous_month(month) if card_thresholds.denominator == PREVIOUS_MONTH else month
        ratios.append(MonthRatio(card, month, count, int((transactions.get(source) or {}).get(card, 0)),
                                 card_thresholds.denominator))
    return ratios


def crossings(ratios: list[MonthRatio], thresholds: Mapping[str, CardThresholds]) -> list[tuple[MonthRatio, str]]:
    """(ratio, level) for every level a ratio reaches."""
    return [(ratio, level) for ratio in ratios for level in LEVELS
            if ratio.reaches(thresholds[ratio.card_type].level(level))]
