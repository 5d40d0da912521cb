"""What the receiver reads of a delivery's fields, what it restores, and what it flags instead of refusing.

Only what identifies a delivery can make it malformed (an unreadable body, a missing or contradictory eventType,
a missing subscriptionId where the event cannot exist without one: intake.py and this module). Any other field
that does not fit its event's model is stored exactly as received and flagged: ``warnings`` maps the field to why
(a fixed text naming the problem, never the value), the receiver puts them on the item (``field_warnings``), counts
them (metric ``WebhookFieldWarnings``) and answers 200. A real sale is never refused for a card field.

Restored (the stored value is the restored one): CCBill's zero-filled columns (``smallint(4) unsigned zerofill``:
clientSubacc, originalClientSubacc, expDate, last4) that arrive shorter, e.g. a JSON number ``317`` is ``0317``;
IDs sent as JSON numbers, which lost the leading zeros of CCBill's 19-digit IDs (flagged too, so it can be checked).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from billops.webhooks.delivery_decoding import MalformedDelivery
from billops.webhooks.event_types import FAILURE_TYPES, SALE_TYPES, EventType

ZERO_FILLED = {"clientSubacc": 4, "originalClientSubacc": 4, "expDate": 4, "last4": 4}
"""smallint(4) unsigned zerofill in CCBill's field tables (ccbill-facts.md 1.6; UpSaleSuccess tables)."""
CCBILL_ID_DIGITS = 19
"""Subscription and transaction IDs since 2006: station, year, Julian day, weekday, method, sequence (ccbill-facts 1.8)."""
ID_FIELDS = ("subscriptionId", "transactionId", "originalSubscriptionId")

REQUIRES_SUBSCRIPTION_ID = frozenset(set(EventType) - FAILURE_TYPES - {EventType.MANUAL_ADD})
"""Events about an existing subscription: without a subscriptionId they cannot be anything (malformed)."""

ALWAYS_CARRIED: dict[EventType, frozenset[str]] = {
    event_type: frozenset({"clientAccnum", "clientSubacc"} | ({"transactionId"} if event_type in SALE_TYPES else set()))
    for event_type in EventType
}
"""Fields whose absence is flagged (never refused): the account (CCBill appends it to every URL) and an approved
sale's transaction. Other documented fields may be absent in real deliveries (public captures show RenewalFailure
and UserReactivation without a transactionId): a delivery without one is keyed by its payload."""

MISSING = "is missing (CCBill documents it on every delivery of this type)"
MAX_PASSES = 4


@dataclass(frozen=True)
class CheckedFields:
    fields: dict[str, str]
    """The fields to store: as received, with the restorations above."""
    warnings: dict[str, str] = field(default_factory=dict)
    """Field name -> why it is stored as received (or restored and worth a look). Never holds a value."""

    @property
    def transaction_id(self) -> str | None:
        """The transactionId that can key the delivery: digits, present, not flagged."""
        value = (self.fields.get("transactionId") or "").strip()
        return value if value.isdigit() and value.isascii() and "transactionId" not in self.warnings else None


def _digits(value: str | None) -> bool:
    text = (value or "").strip()
    return text.isascii() and text.isdigit()


def restore_zero_fill(fields: Mapping[str, str], json_numbers: Collection[str] = ()) -> tuple[dict[str, str],
                                                                                                 dict[str, str]]:
    """(fields with CCBill's zero-filling restored, warnings for the IDs restored from JSON numbers)."""
    restored = dict(fields)
    warnings: dict[str, str] = {}
    for name, width in ZERO_FILLED.items():
        value = (restored.get(name) or "").strip()
        if _digits(value) and len(value) < width:
            restored[name] = value.zfill(width)
    for name in ID_FIELDS:
        value = (restored.get(name) or "").strip()
        if name in json_numbers and _digits(value) and len(value) < CCBILL_ID_DIGITS:
            restored[name] = value.zfill(CCBILL_ID_DIGITS)
            warnings[name] = f"sent as a JSON number: zero-filled to CCBill's {CCBILL_ID_DIGITS} digits"
    return restored, warnings


def check_fields(event_type: EventType, fields: Mapping[str, str], json_numbers: Collection[str] = ()) -> CheckedFields:
    """Restore, check the identity (MalformedDelivery when it is missing or unreadable), flag the rest."""
    stored, warnings = restore_zero_fill(fields, json_numbers)
    if event_type in REQUIRES_SUBSCRIPTION_ID:
        subscription_id = (stored.get("subscriptionId") or "").strip()
        if not subscription_id:
            raise MalformedDelivery("subscriptionId is required", "subscriptionId")
        if not _digits(subscription_id):
            raise MalformedDelivery("subscriptionId must be a string of digits", "subscriptionId")
    warnings.update(_model_problems(event_type, stored))
    for name in sorted(ALWAYS_CARRIED[event_type]):
        if not (stored.get(name) or "").strip():
            warnings.setdefault(name, MISSING)
    return CheckedFields(stored, warnings)


def _model_problems(event_type: EventType, fields: Mapping[str, str]) -> dict[str, str]:
    """Every field the event's model cannot read, with the model's reason (validated again without them)."""
    from pydantic import ValidationError

    from billops.webhooks.event_models import describe_error, model_for

    model = model_for(event_type)
    data = dict(fields)
    problems: dict[str, str] = {}
    for _ in range(MAX_PASSES):
        try:
            model.model_validate(data)
            return problems
        except ValidationError as error:
            found = False
            for detail in error.errors(include_url=False, include_input=False):
                location = detail.get("loc") or ()
                if not location or str(location[0]) not in data:
                    continue
                name = str(location[0])
                problems[name] = describe_error(detail)
                data.pop(name)
                found = True
            if not found:  # pragma: no cover - every model field is optional but subscriptionId, checked above
                return problems
    return problems  # pragma: no cover - each pass removes at least one field
