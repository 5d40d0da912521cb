"""What we know about a subscription before we ask CCBill to change it.

The discount rules and the upgrade checks can only refuse a request early when they know the subscription's state.
The caller fills in what it knows (from the subscription record issue 2 projects from webhooks, or from
``viewSubscriptionStatus``); every field is optional and a rule whose inputs are unknown is left to CCBill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"  # recurring billing stopped, access continues to the end of the paid period
    EXPIRED = "expired"


@dataclass(frozen=True)
class SubscriptionFacts:
    subscription_id: str | None = None
    state: SubscriptionState | None = None
    is_recurring: bool | None = None
    in_trial: bool | None = None
    recurring_price: Decimal | None = None
    cancel_discount_price: Decimal | None = None
    """The recurring price an existing cancel discount brought the subscription to (rule -21)."""
    client_accnum: str | None = None
    client_subacc: str | None = None
    username: str | None = field(default=None, repr=False)
    password_length: int | None = None
    """Only the length is ever needed (destination limits); the password itself is never stored."""


# viewSubscriptionStatus's subscriptionStatus (ccbill-facts.md 2.3): 0 inactive/expired, 1 cancelled (still in its
# paid period) or non-recurring, 2 active recurring. recurringSubscription stays 1 even for a dead subscription.
STATUS_INACTIVE = "0"
STATUS_CANCELLED_OR_NON_RECURRING = "1"
STATUS_ACTIVE_RECURRING = "2"


def facts_from_status(fields: Mapping[str, str], subscription_id: str | None = None) -> SubscriptionFacts:
    """The facts a viewSubscriptionStatus answer gives (no price: CCBill does not return one)."""
    status = (fields.get("subscriptionStatus") or "").strip()
    recurring = (fields.get("recurringSubscription") or "").strip()
    if status == STATUS_ACTIVE_RECURRING:
        return SubscriptionFacts(subscription_id, SubscriptionState.ACTIVE, True)
    if status == STATUS_INACTIVE:
        return SubscriptionFacts(subscription_id, SubscriptionState.EXPIRED, recurring == "1" or None)
    if status == STATUS_CANCELLED_OR_NON_RECURRING:
        if recurring == "0":
            return SubscriptionFacts(subscription_id, SubscriptionState.ACTIVE, False)
        return SubscriptionFacts(subscription_id, SubscriptionState.CANCELLED, True)
    return SubscriptionFacts(subscription_id)


def parse_ccbill_datetime(text: str | None) -> datetime | None:
    """CCBill's ``YYYYMMDDHHMMSS`` / ``YYYYMMDD`` dates as naive datetimes (CCBill does not say which zone)."""
    value = (text or "").strip()
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None
