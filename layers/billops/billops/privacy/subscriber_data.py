"""Subscribers' personal data: which CCBill fields are personal, which are never kept, and card-number scrubbing.

The stored models keep personal fields apart from everything else (the `subscriber` map), so that field-level
encryption (issue 6) changes one place. The consumer's `password` is dropped at decoding: never stored, never logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

NEVER_STORED = frozenset({"password"})
"""Fields dropped on arrival. CCBill sends the consumer's site password on some events; we have no use for it."""

PERSONAL_FIELDS = frozenset(
    {
        "firstName",
        "lastName",
        "address1",
        "address2",
        "city",
        "state",
        "country",
        "postalCode",
        "email",
        "phoneNumber",
        "ipAddress",
        "username",
        "customerFname",
        "customerLname",
    }
)
"""Names, contact data, address, IP address and username: personal data, kept only in the `subscriber` map."""

FORM_VARIABLE_PREFIX = "x-"
"""Merchants add their own variables to CCBill's payment form; CCBill echoes them back as `X-<name>` fields."""
PASS_THROUGH_FIELDS = frozenset({"referringUrl"})
"""CCBill fields that carry what the merchant or the consumer put in a URL (a referring URL can hold a user name)."""

CARD_FIELDS_ALLOWED = frozenset({"bin", "last4", "expDate", "paymentAccount", "cardType", "paymentType", "cardSubType"})
"""Card data CCBill sends that PCI allows us to keep: never more than the BIN, the last four digits and the expiry."""

NUMERIC_ID_FIELDS = frozenset(
    {
        "subscriptionId",
        "transactionId",
        "originalSubscriptionId",
        "reservationId",
        "clientAccnum",
        "clientSubacc",
        "originalClientAccnum",
        "originalClientSubacc",
        "subscriptionTypeId",
        "paymentAccount",
    }
)
"""Fields whose long digit strings are CCBill identifiers, not card numbers (a subscription ID has 19 digits)."""

REDACTED_CARD_NUMBER = "[redacted: looks like a card number]"
_CARD_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def contains_card_number(value: str) -> bool:
    """True when the text holds 13 to 19 digits (spaces or dashes allowed) that pass the Luhn check."""
    for match in _CARD_LIKE.finditer(value):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return True
    return False


def scrub_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The fields without those never stored, and with any value that looks like a full card number redacted."""
    clean: dict[str, str] = {}
    for name, value in fields.items():
        if name in NEVER_STORED:
            continue
        if name not in NUMERIC_ID_FIELDS and contains_card_number(value):
            clean[name] = REDACTED_CARD_NUMBER
        else:
            clean[name] = value
    return clean


def is_pass_through(name: str) -> bool:
    """A pass-through field: `X-...` (any case) or referringUrl. billops cannot know what these hold."""
    return name.lower().startswith(FORM_VARIABLE_PREFIX) or name in PASS_THROUGH_FIELDS


def is_personal(name: str, clear_pass_through: frozenset[str] | set[str] = frozenset()) -> bool:
    """Personal data: CCBill's personal fields, and every pass-through field the merchant did not declare clear
    (BILLOPS_PASSTHROUGH_CLEAR_FIELDS; ``clear_pass_through`` holds those names lower-cased: matched ignoring case)."""
    if name in PERSONAL_FIELDS:
        return True
    return is_pass_through(name) and name.lower() not in clear_pass_through


def split_personal(fields: Mapping[str, str], clear_pass_through: Iterable[str] = ()
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """(non-personal fields, personal fields). Both keep CCBill's names; pass-through fields are personal unless
    named in ``clear_pass_through``."""
    clear = {name.lower() for name in clear_pass_through}
    public: dict[str, str] = {}
    personal: dict[str, str] = {}
    for name, value in fields.items():
        (personal if is_personal(name, clear) else public)[name] = value
    return public, personal


_PASSWORD_IN_FORM = re.compile(r"(?i)(^|&)(password=)[^&]*")
_PASSWORD_IN_JSON = re.compile(r'(?i)("password"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\s]+)')


def redact_raw_body(raw: str) -> str:
    """A raw body fit to keep in quarantine: the password removed (form or JSON), card-like numbers redacted.

    Works on bodies we could not parse, so it is textual and errs on the side of removing too much.
    """
    text = _PASSWORD_IN_FORM.sub(r"\1\2[redacted]", raw)
    text = _PASSWORD_IN_JSON.sub(r'\1"[redacted]"', text)

    def _scrub(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return REDACTED_CARD_NUMBER if _luhn_valid(digits) and not _looks_like_ccbill_id(digits) else match.group()

    return _CARD_LIKE.sub(_scrub, text)


def _looks_like_ccbill_id(digits: str) -> bool:
    # CCBill subscription/transaction IDs are 19 digits (ccbill-facts.md 1.8); card numbers are at most 19 but
    # are normally 15-16. Keeping 19-digit runs preserves the IDs that make a quarantined body useful.
    return len(digits) == 19
