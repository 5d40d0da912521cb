"""What one stored delivery adds to the daily figures: a pure function of the delivery (an events-table item).

The figures are sums, so they do not depend on the order deliveries are counted in; each delivery is counted once
(billops.storage.reports_table keeps which ones were). Definitions (docs/reports.md):

* the **day** of a delivery is the UTC date of CCBill's ``timestamp`` (``occurred_at``), or of its receipt when it
  carries none; the **scope** is its client account and subaccount;
* **sales** (NewSaleSuccess, UpgradeSuccess, UpSaleSuccess, CrossSaleSuccess): count, and the initial price charged;
  **renewals** (RenewalSuccess): count and amount; **declines** (RenewalFailure and the four failed purchases):
  count, by CCBill decline code and by CCBill's reason; **refunds, voids, returns, chargebacks** (chargebacks also
  by card type): count and amount; **cancellations**, **expirations**: counts; **transactions by card type** (sales
  and renewals): the denominator of the chargeback ratio;
* **active subscriptions and MRR** come from *paid periods*: a sale or a renewal pays for the days from its day (a
  renewal: its ``renewalDate``) up to, not including, the ``nextRenewalDate`` it carries (a sale without one: its
  ``initialPeriod``; a renewal without one: 30 days). On the first day of the period the delivery adds 1 active
  subscription and its recurring amount normalised to 30 days (``price x 30 / period days``, to the cent) to MRR;
  on the day the period ends it takes both away again. "Active at the end of day D" and "MRR at the end of day D"
  are the sums of these changes over every day up to D: a subscription counts while a charge CCBill reported pays
  for it - a cancelled one until its paid time runs out, a renewal that failed and was retried from the day the
  retry succeeded. A non-recurring sale counts as active for its period and adds nothing to MRR.

Every amount is in the report currency (billops.reports.money).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from billops.reports.chargeback_thresholds import card_type_key
from billops.reports.money import Money, cents, report_amount
from billops.webhooks.event_types import EventType

SEPARATOR = "|"

SALES_N, SALES_AMT = "sales_n", "sales_amt"
RENEWALS_N, RENEWALS_AMT = "renewals_n", "renewals_amt"
DECLINES_N, SALE_DECLINES_N, RENEWAL_DECLINES_N = "declines_n", "sale_declines_n", "renewal_declines_n"
DECLINE_CODE_N, DECLINE_REASON_N = "decline_code_n", "decline_reason_n"
REFUNDS_N, REFUNDS_AMT = "refunds_n", "refunds_amt"
VOIDS_N, VOIDS_AMT = "voids_n", "voids_amt"
RETURNS_N, RETURNS_AMT = "returns_n", "returns_amt"
CHARGEBACKS_N, CHARGEBACKS_AMT = "chargebacks_n", "chargebacks_amt"
TRANSACTIONS_N = "transactions_n"
CANCELLATIONS_N, EXPIRATIONS_N = "cancellations_n", "expirations_n"
ACTIVE_CHANGE, MRR_CHANGE = "active_change", "mrr_change"
UNCONVERTED_AMT = "unconverted_amt"

SALE_EVENTS = frozenset({EventType.NEW_SALE_SUCCESS, EventType.UPGRADE_SUCCESS, EventType.UP_SALE_SUCCESS,
                         EventType.CROSS_SALE_SUCCESS})
SALE_DECLINE_EVENTS = frozenset({EventType.NEW_SALE_FAILURE, EventType.UPGRADE_FAILURE, EventType.UP_SALE_FAILURE,
                                 EventType.CROSS_SALE_FAILURE})
REVERSALS = {
    EventType.REFUND.value: (REFUNDS_N, REFUNDS_AMT),
    EventType.VOID.value: (VOIDS_N, VOIDS_AMT),
    EventType.RETURN.value: (RETURNS_N, RETURNS_AMT),
    EventType.CHARGEBACK.value: (CHARGEBACKS_N, CHARGEBACKS_AMT),
}
NORMALISED_DAYS = 30
FALLBACK_RENEWAL_DAYS = 30
MAX_PERIOD_DAYS = 3660
MAX_REASON_CHARS = 80
NO_CODE = "none"


def dimension(figure: str, value: str) -> str:
    """The name of a figure split by a dimension (``chargebacks_n|VISA``)."""
    return f"{figure}{SEPARATOR}{value}"


@dataclass(frozen=True)
class Contribution:
    """What one delivery adds: ``counters`` on its ``day``; a sale or a renewal also opens its paid period
    (``period_counters``: +1 active and +MRR on its first day, the opposite on ``period_end``), all in the scope
    (client account, subaccount) of the delivery."""

    delivery_key: str
    event_type: str
    client_accnum: str
    client_subacc: str
    day: str
    counters: dict[str, Decimal]
    subscription_id: str | None = None
    received_second: str = "unknown"
    """When we received it, to the second (``2026-11-05T10:04:31``): which counted-keys item remembers it."""
    card_type: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    decline_code: str | None = None
    period_start: str | None = None
    period_end: str | None = None
    mrr: Decimal | None = None
    period_counters: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return scope_of(self.client_accnum, self.client_subacc)

    @property
    def month(self) -> str:
        return self.day[:7]

    def by_day(self) -> dict[str, dict[str, Decimal]]:
        """Every day this delivery changes, with what it adds to that day."""
        days: dict[str, dict[str, Decimal]] = {self.day: dict(self.counters)} if self.counters else {}
        for day, counters in self.period_counters.items():
            merged = days.setdefault(day, {})
            for name, value in counters.items():
                merged[name] = merged.get(name, Decimal(0)) + value
        return {day: {name: value for name, value in counters.items() if value}
                for day, counters in days.items() if any(counters.values())}


def scope_of(client_accnum: str, client_subacc: str) -> str:
    return f"{client_accnum}#{client_subacc}"


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _day_of(moment: Any) -> str | None:
    text = _text(moment)[:10]
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def _calendar_date(value: Any) -> date | None:
    """A CCBill date field: ``2026-02-14`` (what CCBill's examples show) or ``20260214``."""
    text = _text(value)
    for candidate in (text[:10], f"{text[:4]}-{text[4:6]}-{text[6:8]}" if text[:8].isdigit() else ""):
        try:
            return date.fromisoformat(candidate)
        except ValueError:
            continue
    return None


def _whole(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text.isdigit() else None


def decline_code(value: Any) -> str:
    """CCBill's decline code as its number (``BE-31`` -> ``31``); ``none`` when the event carries none."""
    digits = "".join(char for char in _text(value).rsplit("-", 1)[-1] if char.isdigit()).lstrip("0")
    return digits[:6] or (NO_CODE if not _text(value) else "0")


def decline_reason(value: Any) -> str:
    text = " ".join(_text(value).replace(SEPARATOR, " ").split())
    return text[:MAX_REASON_CHARS] or "(none)"


class _Counts(defaultdict):
    def __init__(self) -> None:
        super().__init__(Decimal)

    def add(self, name: str, value: Decimal | int = 1) -> None:
        self[name] += Decimal(value)

    def money(self, count_name: str, amount_name: str, money: Money | None) -> Decimal | None:
        self.add(count_name)
        if money is None:
            return None
        if money.amount is not None:
            self.add(amount_name, money.amount)
            return money.amount
        currency, amount = money.unconverted  # type: ignore[misc]
        self.add(dimension(UNCONVERTED_AMT, currency), amount)
        return None


def contribution(item: Mapping[str, Any], currency: str, rates: Mapping[str, Decimal]) -> Contribution | None:
    """The figures ``item`` (an events-table item, deserialized) adds; None if it adds nothing (not a delivery, a
    type that moves no figure, no day)."""
    if item.get("record_type") != "delivery" or not item.get("pk") or item.get("known_type") is False:
        return None
    event_type = _text(item.get("event_type"))
    fields: Mapping[str, Any] = item.get("fields") or {}
    day = _day_of(item.get("occurred_at")) or _day_of(item.get("received_at"))
    if day is None:
        return None
    counts = _Counts()
    card = card_type_key(fields.get("cardType"))
    extra: dict[str, Any] = {}
    if event_type in SALE_EVENTS:
        money = report_amount([(fields.get("accountingInitialPrice"), fields.get("accountingCurrencyCode")),
                               (fields.get("billedInitialPrice"), fields.get("billedCurrencyCode")),
                               (fields.get("subscriptionInitialPrice"), fields.get("subscriptionCurrencyCode"))],
                              currency, rates)
        extra["amount"] = counts.money(SALES_N, SALES_AMT, money)
        counts.add(dimension(TRANSACTIONS_N, card))
        extra.update(_sale_period(day, fields, currency, rates))
    elif event_type == EventType.RENEWAL_SUCCESS:
        money = report_amount([(fields.get("accountingAmount"), fields.get("accountingCurrencyCode")),
                               (fields.get("billedAmount"), fields.get("billedCurrencyCode"))], currency, rates)
        extra["amount"] = counts.money(RENEWALS_N, RENEWALS_AMT, money)
        counts.add(dimension(TRANSACTIONS_N, card))
        extra.update(_renewal_period(day, fields, money))
    elif event_type == EventType.RENEWAL_FAILURE or event_type in SALE_DECLINE_EVENTS:
        code = decline_code(fields.get("failureCode"))
        counts.add(DECLINES_N)
        counts.add(RENEWAL_DECLINES_N if event_type == EventType.RENEWAL_FAILURE else SALE_DECLINES_N)
        counts.add(dimension(DECLINE_CODE_N, code))
        counts.add(dimension(DECLINE_REASON_N, decline_reason(fields.get("failureReason"))))
        extra["decline_code"] = code
    elif event_type in REVERSALS:
        count_name, amount_name = REVERSALS[event_type]
        money = report_amount([(fields.get("accountingAmount"), fields.get("accountingCurrencyCode")),
                               (fields.get("amount"), fields.get("currencyCode"))], currency, rates)
        amount = counts.money(count_name, amount_name, money)
        extra["amount"] = amount
        if event_type == EventType.CHARGEBACK:
            counts.add(dimension(CHARGEBACKS_N, card))
            if amount is not None:
                counts.add(dimension(CHARGEBACKS_AMT, card), amount)
    elif event_type == EventType.CANCELLATION:
        counts.add(CANCELLATIONS_N)
    elif event_type == EventType.EXPIRATION:
        counts.add(EXPIRATIONS_N)
    else:
        return None  # BillingDateChange, CustomerDataUpdate, UserReactivation, ManualAdd, unknown types
    period_counters = extra.pop("period_counters", {})
    return Contribution(
        delivery_key=str(item["pk"]), event_type=event_type,
        client_accnum=_text(item.get("client_accnum") or fields.get("clientAccnum")) or "unknown",
        client_subacc=_text(item.get("client_subacc") or fields.get("clientSubacc")) or "unknown",
        day=day, counters={name: value for name, value in counts.items() if value},
        subscription_id=_text(item.get("subscription_id")) or None,
        received_second=_received_second(item.get("received_at")),
        card_type=card, currency=currency, period_counters=period_counters, **extra)


def _received_second(received_at: Any) -> str:
    text = _text(received_at)
    return text[:19] if len(text) >= 19 else "unknown"


def _period(start: date, end: date | None) -> date | None:
    if end is None or not start < end <= start + timedelta(days=MAX_PERIOD_DAYS):
        return None
    return end


def _open_period(start: date, end: date, mrr: Decimal | None) -> dict[str, Any]:
    opening, closing = {ACTIVE_CHANGE: Decimal(1)}, {ACTIVE_CHANGE: Decimal(-1)}
    if mrr:
        opening[MRR_CHANGE], closing[MRR_CHANGE] = mrr, -mrr
    return {"period_start": start.isoformat(), "period_end": end.isoformat(), "mrr": mrr or Decimal("0.00"),
            "period_counters": {start.isoformat(): opening, end.isoformat(): closing}}


def _sale_period(day: str, fields: Mapping[str, Any], currency: str, rates: Mapping[str, Decimal]
                 ) -> dict[str, Any]:
    start = date.fromisoformat(day)
    initial_days = _whole(fields.get("initialPeriod"))
    end = _period(start, _calendar_date(fields.get("nextRenewalDate"))) or (
        _period(start, start + timedelta(days=initial_days)) if initial_days else None)
    if end is None:
        return {}
    recurring_days = _whole(fields.get("recurringPeriod")) or 0
    rebills = _text(fields.get("rebills"))
    mrr = None
    if recurring_days > 0 and rebills not in ("", "0"):
        price = report_amount([(fields.get("accountingRecurringPrice"), fields.get("accountingCurrencyCode")),
                               (fields.get("billedRecurringPrice"), fields.get("billedCurrencyCode")),
                               (fields.get("subscriptionRecurringPrice"), fields.get("subscriptionCurrencyCode"))],
                              currency, rates)
        if price is not None and price.amount is not None:
            mrr = cents(price.amount * NORMALISED_DAYS / recurring_days)
    return _open_period(start, end, mrr)


def _renewal_period(day: str, fields: Mapping[str, Any], money: Money | None) -> dict[str, Any]:
    start = _calendar_date(fields.get("renewalDate")) or date.fromisoformat(day)
    end = _period(start, _calendar_date(fields.get("nextRenewalDate"))) or start + timedelta(
        days=FALLBACK_RENEWAL_DAYS)
    mrr = None
    if money is not None and money.amount is not None:
        mrr = cents(money.amount * NORMALISED_DAYS / (end - start).days)
    return _open_period(start, end, mrr)
