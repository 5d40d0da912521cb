"""What the sandbox remembers: subscriptions, every money movement, failed logins, upgrade allowances, the clock.

IDs look like CCBill's (ccbill-facts.md 1.8): 19 digits, station ``01`` + year + Julian day + weekday + payment
method ``02`` (test) + a nine-digit sequence shared by subscriptions and transactions, so IDs increase in the order
things happen. A subscription's initial charge carries the subscription's own ID as its transaction ID, as CCBill's
NewSaleSuccess captures show.

The clock is injectable (``clock=``) and can be moved forward (``advance``), so renewals, the 30-minute upgrade
window and the one-hour login lock-out are testable without waiting.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billops_local.ccbill_sandbox.accounts import SandboxAccount

ACTIVE = "active"
CANCELLED = "cancelled"
EXPIRED = "expired"


@dataclass
class Charge:
    transaction_id: str
    kind: str  # initial | renewal
    amount: Decimal
    currency_code: str
    at: datetime
    refunded: Decimal = Decimal("0.00")
    voided: bool = False
    charged_back: bool = False

    @property
    def reversible_amount(self) -> Decimal:
        if self.voided or self.charged_back:
            return Decimal("0.00")
        return self.amount - self.refunded

    def as_dict(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "kind": self.kind,
            "amount": f"{self.amount:.2f}",
            "currency_code": self.currency_code,
            "at": iso(self.at),
            "refunded": f"{self.refunded:.2f}",
            "voided": self.voided,
            "charged_back": self.charged_back,
        }


@dataclass
class Reversal:
    transaction_id: str
    kind: str  # refund | void | chargeback
    of_transaction_id: str
    amount: Decimal
    currency_code: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "kind": self.kind,
            "of_transaction_id": self.of_transaction_id,
            "amount": f"{self.amount:.2f}",
            "currency_code": self.currency_code,
            "at": iso(self.at),
        }


@dataclass
class Subscription:
    subscription_id: str
    client_accnum: str
    client_subacc: str
    initial_price: Decimal
    initial_period: int
    recurring_price: Decimal
    recurring_period: int
    rebills: int
    currency_code: str
    username: str
    email: str
    password: str = field(repr=False)
    signup_date: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = ACTIVE
    times_rebilled: int = 0
    paid_through: datetime | None = None
    next_billing_date: datetime | None = None
    cancel_date: datetime | None = None
    expiration_date: datetime | None = None
    cancel_discount_price: Decimal | None = None
    subscription_type_id: str = "0000000000"
    charges: list[Charge] = field(default_factory=list)
    reversals: list[Reversal] = field(default_factory=list)
    discounts: list[dict[str, str]] = field(default_factory=list)
    upgraded_from: str | None = None
    upgraded_to: str | None = None
    passthrough: dict[str, str] = field(default_factory=dict)
    """The payment form's pass-through variables (``X-…``), echoed back on the sale's webhook."""

    @property
    def is_recurring(self) -> bool:
        return self.recurring_price > 0 and self.recurring_period > 0 and self.rebills > 0

    @property
    def in_trial(self) -> bool:
        return self.is_recurring and self.times_rebilled == 0 and (
            self.initial_price != self.recurring_price or self.initial_period != self.recurring_period)

    @property
    def status_code(self) -> str:
        """viewSubscriptionStatus's subscriptionStatus: 0 inactive, 1 cancelled or non-recurring, 2 active recurring."""
        if self.status == EXPIRED:
            return "0"
        if self.status == ACTIVE and self.is_recurring:
            return "2"
        return "1"

    def charge(self, transaction_id: str) -> Charge | None:
        return next((c for c in self.charges if c.transaction_id == transaction_id), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "client_accnum": self.client_accnum,
            "client_subacc": self.client_subacc,
            "status": self.status,
            "subscription_status": self.status_code,
            "is_recurring": self.is_recurring,
            "in_trial": self.in_trial,
            "initial_price": f"{self.initial_price:.2f}",
            "initial_period": self.initial_period,
            "recurring_price": f"{self.recurring_price:.2f}",
            "recurring_period": self.recurring_period,
            "rebills": self.rebills,
            "times_rebilled": self.times_rebilled,
            "currency_code": self.currency_code,
            "username": self.username,
            "email": self.email,
            "password_length": len(self.password),
            "subscription_type_id": self.subscription_type_id,
            "signup_date": iso(self.signup_date),
            "paid_through": iso(self.paid_through),
            "next_billing_date": iso(self.next_billing_date),
            "cancel_date": iso(self.cancel_date),
            "expiration_date": iso(self.expiration_date),
            "cancel_discount_price": None if self.cancel_discount_price is None else f"{self.cancel_discount_price:.2f}",
            "charges": [c.as_dict() for c in self.charges],
            "reversals": [r.as_dict() for r in self.reversals],
            "discounts": list(self.discounts),
            "upgraded_from": self.upgraded_from,
            "upgraded_to": self.upgraded_to,
        }


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SandboxClock:
    """``now()`` = the injected clock plus an offset moved by ``advance``."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)

    def now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment + self._offset

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        self._offset += delta
        return self.now()


class SandboxState:
    def __init__(self, accounts: Iterable[SandboxAccount], clock: Callable[[], datetime] | None = None) -> None:
        self.accounts = {account.client_accnum: account for account in accounts}
        self.clock = SandboxClock(clock)
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.subscriptions: dict[str, Subscription] = {}
            self.ledger: list[dict[str, Any]] = []
            self.failed_logins: dict[str, list[datetime]] = {}
            self.upgrade_allowances: dict[tuple[str, str], datetime] = {}
            self._sequence = itertools.count(1)

    def now(self) -> datetime:
        return self.clock.now()

    def new_id(self) -> str:
        now = self.now()
        return f"01{now:%y}{now.timetuple().tm_yday:03d}{now.isoweekday()}02{next(self._sequence):09d}"

    def record_money(self, kind: str, subscription: Subscription, transaction_id: str, amount: Decimal,
                     of_transaction_id: str | None = None) -> None:
        self.ledger.append({
            "kind": kind,
            "transaction_id": transaction_id,
            "subscription_id": subscription.subscription_id,
            "client_accnum": subscription.client_accnum,
            "client_subacc": subscription.client_subacc,
            "amount": f"{amount:.2f}",
            "currency_code": subscription.currency_code,
            "of_transaction_id": of_transaction_id,
            "at": iso(self.now()),
        })
