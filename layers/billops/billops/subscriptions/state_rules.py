"""Where a subscription's state is decided: a pure fold over its event history.

CCBill delivers webhooks at least once and in no guaranteed order. Instead of applying each delivery to the
previous state (which makes the result depend on arrival order), the state is always recomputed from the whole,
deduplicated history sorted by when CCBill says each event happened. Same set of events => same state, whatever
the order and number of deliveries; an event for a subscription not yet seen (a RenewalSuccess before its
NewSaleSuccess) simply waits in the history until the rest arrives.

Status vocabulary: `active`; `cancelled` = recurring billing stopped but paid through (access continues until
expiration); `expired` = access ended; `declined` = known only from declined purchases (NewSaleFailure,
UpgradeFailure, UpSaleFailure, CrossSaleFailure carrying a subscriptionId): CCBill never started it. A declined
purchase changes nothing of a subscription that exists; a subscription known only from later events starts
`active`.

Order: events with CCBill's `timestamp` sort by it; an event without one (UserReactivation) cannot be placed by a
clock it does not carry, so it is placed by facts we have: it happened no earlier than we received it, and after
every event we had received before it (CCBill sent those first, whatever their timestamps say: the time zone of
CCBill's timestamps is an assumption). See `ordered`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billops.reference.currencies import alpha_for, normalise_numeric
from billops.reference.decline_codes import decline_text
from billops.webhooks.event_types import EventType

ACTIVE = "active"
CANCELLED = "cancelled"
EXPIRED = "expired"
DECLINED = "declined"

SALE_EVENTS = {
    EventType.NEW_SALE_SUCCESS.value,
    EventType.UPGRADE_SUCCESS.value,
    EventType.UP_SALE_SUCCESS.value,
    EventType.CROSS_SALE_SUCCESS.value,
    EventType.MANUAL_ADD.value,
}
SALE_FAILURE_EVENTS = {
    EventType.NEW_SALE_FAILURE.value,
    EventType.UPGRADE_FAILURE.value,
    EventType.UP_SALE_FAILURE.value,
    EventType.CROSS_SALE_FAILURE.value,
}
"""Declined purchases: they never make a subscription exist, active or otherwise (issue 11, part 4)."""
COUNTED_REVERSALS = {
    EventType.CHARGEBACK.value: "chargebacks",
    EventType.REFUND.value: "refunds",
    EventType.VOID.value: "voids",
    EventType.RETURN.value: "returns",
}

# When two events carry the same timestamp (CCBill's resolution is one second), the lifecycle order decides.
_PRECEDENCE = {
    **{name: 0 for name in SALE_EVENTS},
    EventType.CUSTOMER_DATA_UPDATE.value: 1,
    EventType.BILLING_DATE_CHANGE.value: 2,
    EventType.RENEWAL_FAILURE.value: 3,
    EventType.RENEWAL_SUCCESS.value: 4,
    EventType.CHARGEBACK.value: 5,
    EventType.REFUND.value: 5,
    EventType.VOID.value: 5,
    EventType.RETURN.value: 5,
    EventType.CANCELLATION.value: 6,
    EventType.USER_REACTIVATION.value: 7,
    EventType.EXPIRATION.value: 8,
}
_UNKNOWN_PRECEDENCE = 9

HISTORY_FIELDS = frozenset(
    {
        "clientAccnum", "clientSubacc", "subscriptionId", "transactionId", "timestamp",
        "originalSubscriptionId", "originalClientAccnum", "originalClientSubacc", "source", "reason",
        "subscriptionInitialPrice", "subscriptionRecurringPrice", "subscriptionCurrencyCode",
        "billedInitialPrice", "billedRecurringPrice", "billedCurrencyCode", "billedAmount",
        "accountingInitialPrice", "accountingRecurringPrice", "accountingCurrencyCode", "accountingAmount",
        "amount", "currencyCode", "currency", "billedCurrency", "price",
        "initialPeriod", "recurringPeriod", "rebills", "nextRenewalDate", "renewalDate", "nextRetryDate",
        "failureCode", "failureReason", "subscriptionTypeId", "lifeTimeSubscription", "prePaid",
        "bin", "last4", "expDate", "paymentAccount", "cardType", "paymentType", "cardSubType",
    }
)
"""The non-personal fields an event keeps in the subscription's history: all the fold needs, nothing personal."""


def history_entry(delivery: Mapping[str, Any], customer_reference_field: str | None = None) -> dict[str, Any]:
    """The compact history entry of a stored delivery (an events-table item).

    ``customer_reference_field`` (BILLOPS_CUSTOMER_REFERENCE_FIELD, a pass-through field the merchant declared
    clear) is kept as the entry's ``customer_reference`` when the delivery carries it.
    """
    fields = delivery.get("fields") or {}
    entry = {
        "key": delivery["pk"],
        "event_type": delivery["event_type"],
        "occurred_at": delivery.get("occurred_at"),
        "received_at": delivery.get("received_at"),
        "fields": {name: str(value) for name, value in fields.items() if name in HISTORY_FIELDS and value != ""},
    }
    reference = _field_value(fields, customer_reference_field) if customer_reference_field else None
    if reference:
        entry["customer_reference"] = reference
    return entry


def _field_value(fields: Mapping[str, Any], name: str) -> str | None:
    """A field by name, exactly or, failing that, ignoring case (CCBill echoes pass-through names as the form had
    them; the merchant's setting may spell them otherwise)."""
    value = fields.get(name)
    if value is None:
        folded = name.lower()
        value = next((item for key, item in fields.items() if str(key).lower() == folded), None)
    text = str(value).strip() if value is not None else ""
    return text or None


def sort_key(entry: Mapping[str, Any]) -> tuple[str, int, str]:
    """One entry's own place (its moment, then the lifecycle order): what personal fields' "newest wins" uses.

    The fold itself orders the whole history with `ordered`, which places events without a timestamp better.
    """
    moment = entry.get("occurred_at") or entry.get("received_at") or ""
    return (moment, _PRECEDENCE.get(entry["event_type"], _UNKNOWN_PRECEDENCE), entry["key"])


def sort_position(entry: Mapping[str, Any]) -> str:
    """`sort_key` as text that sorts like it (the moment as UTC with microseconds): a history item's sort key."""
    moment = instant(entry.get("occurred_at") or entry.get("received_at"))
    return f"{moment}|{_PRECEDENCE.get(entry['event_type'], _UNKNOWN_PRECEDENCE):02d}|{entry['key']}"


def instant(text: Any) -> str:
    """An ISO-8601 time as UTC text with microseconds, so that `...10:00:00Z` and `...10:00:00.500000Z` compare by
    time (as plain text `.` sorts before `Z`: a delivery received at 10:00:00.5 sorted before an event of 10:00:00)."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


Place = tuple[str, int, str, int, str]
"""Where an entry sorts in the fold: (moment, 0 timed / 1 untimed, received for untimed, type precedence, key)."""


def placements(history: Iterable[Mapping[str, Any]]) -> list[tuple[Place, Mapping[str, Any]]]:
    """The history, deduplicated by key, with each entry's place, in the order the fold applies it.

    An event with CCBill's timestamp sorts by it (the lifecycle order breaks same-second ties). An event without
    one (UserReactivation) sorts at the latest of: when we received it, and the timestamp of every event we had
    received before it - CCBill sent those first, so they happened first, even when their timestamps (in a time
    zone we assume, from a clock we do not control) read later than our clock. It sorts after a timestamped event
    of the same moment. Everything here is a fact stored with each delivery, so the same set of events always
    gives the same order (convergence), whatever the order they arrived or were folded in.
    """
    unique = {entry["key"]: entry for entry in history}
    received_timed = sorted(
        (instant(entry.get("received_at")), instant(entry["occurred_at"]))
        for entry in unique.values() if entry.get("occurred_at"))

    def place(entry: Mapping[str, Any]) -> Place:
        precedence = _PRECEDENCE.get(entry["event_type"], _UNKNOWN_PRECEDENCE)
        if entry.get("occurred_at"):
            return (instant(entry["occurred_at"]), 0, "", precedence, entry["key"])
        received = instant(entry.get("received_at"))
        moment = max([received, *(occurred for seen, occurred in received_timed if seen < received)])
        return (moment, 1, received, precedence, entry["key"])

    return sorted(((place(entry), entry) for entry in unique.values()), key=lambda pair: pair[0])


def ordered(history: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The history, deduplicated by key, in the order the fold applies it (see `placements`)."""
    return [entry for _, entry in placements(history)]


def place_after(entry: Mapping[str, Any], last: Place | None) -> Place | None:
    """The place of ``entry`` received after every entry of a history whose last place is ``last``, if it is
    certain without the history; None when only the whole history can tell (an untimed entry received before the
    last place's moment: the timestamps of the entries received before it decide where it goes).

    A timed entry's place is its own. An untimed one received after everything sorts at its reception, unless an
    entry received before it carries a later timestamp: the last place's moment is the latest of those, so a
    reception after it is certainly its place.
    """
    precedence = _PRECEDENCE.get(entry["event_type"], _UNKNOWN_PRECEDENCE)
    if entry.get("occurred_at"):
        return (instant(entry["occurred_at"]), 0, "", precedence, entry["key"])
    received = instant(entry.get("received_at"))
    if last is not None and received <= last[0]:
        return None
    return (received, 1, received, precedence, entry["key"])


def place_text(place: Place) -> str:
    """A place as stored on the record (read back by `parse_place`)."""
    moment, untimed, received, precedence, key = place
    return f"{moment}|{untimed}|{received}|{precedence:02d}|{key}"


def parse_place(text: str | None) -> Place | None:
    if not text:
        return None
    moment, untimed, received, precedence, key = str(text).split("|", 4)
    return (moment, int(untimed), received, int(precedence), key)


def _money(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError):
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _currency(code: str | None) -> dict[str, str] | None:
    numeric = normalise_numeric(code)
    return {"currency": alpha_for(numeric), "currency_code": numeric} if numeric else None


def _date(value: str | None) -> str | None:
    return value[:10] if value else None


def initial_state(subscription_id: str) -> dict[str, Any]:
    return {
        "subscription_id": subscription_id,
        "status": ACTIVE,
        "client_accnum": None,
        "client_subacc": None,
        "initial_price": None,
        "recurring_price": None,
        "currency": None,
        "currency_code": None,
        "billed": None,
        "initial_period": None,
        "recurring_period": None,
        "rebills": None,
        "recurring": None,
        "subscription_type_id": None,
        "next_renewal_date": None,
        "times_rebilled": 0,
        "last_renewal_at": None,
        "last_renewal_failure": None,
        "chargebacks": 0,
        "refunds": 0,
        "voids": 0,
        "returns": 0,
        "original_subscription_id": None,
        "original_client_accnum": None,
        "original_client_subacc": None,
        "sale_source": None,
        "card": None,
        "signed_up_at": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "expired_at": None,
        "reactivated_at": None,
        "last_event_at": None,
        "known_from_sale": False,
        "customer_reference": None,
    }


def _apply_card(state: dict[str, Any], fields: Mapping[str, str]) -> None:
    card = {
        "bin": fields.get("bin"),
        "last4": fields.get("last4"),
        "exp_date": fields.get("expDate"),
        "payment_account": fields.get("paymentAccount"),
        "card_type": fields.get("cardType"),
        "payment_type": fields.get("paymentType"),
        "card_sub_type": fields.get("cardSubType"),
    }
    if any(card.values()):
        merged = dict(state.get("card") or {})
        merged.update({name: value for name, value in card.items() if value})
        state["card"] = merged


def _apply_sale(state: dict[str, Any], event_type: str, fields: Mapping[str, str], moment: str | None) -> None:
    state["known_from_sale"] = True
    state["status"] = ACTIVE
    state["signed_up_at"] = moment
    state["cancelled_at"] = state["cancel_reason"] = state["expired_at"] = None
    state["initial_price"] = _money(fields.get("subscriptionInitialPrice") or fields.get("billedInitialPrice"))
    state["recurring_price"] = _money(fields.get("subscriptionRecurringPrice") or fields.get("billedRecurringPrice"))
    currency = _currency(fields.get("subscriptionCurrencyCode") or fields.get("billedCurrencyCode"))
    if currency:
        state.update(currency)
    billed_currency = _currency(fields.get("billedCurrencyCode"))
    if fields.get("billedInitialPrice") or fields.get("billedRecurringPrice"):
        state["billed"] = {
            "initial_price": _money(fields.get("billedInitialPrice")),
            "recurring_price": _money(fields.get("billedRecurringPrice")),
            **(billed_currency or {}),
        }
    state["initial_period"] = _int(fields.get("initialPeriod"))
    state["recurring_period"] = _int(fields.get("recurringPeriod"))
    state["rebills"] = _int(fields.get("rebills"))
    state["recurring"] = bool(state["recurring_period"]) and (state["rebills"] or 0) != 0
    state["subscription_type_id"] = fields.get("subscriptionTypeId") or state["subscription_type_id"]
    if fields.get("nextRenewalDate"):
        state["next_renewal_date"] = _date(fields.get("nextRenewalDate"))
    if event_type != EventType.NEW_SALE_SUCCESS.value:
        state["original_subscription_id"] = fields.get("originalSubscriptionId") or state["original_subscription_id"]
        state["original_client_accnum"] = fields.get("originalClientAccnum") or state["original_client_accnum"]
        state["original_client_subacc"] = fields.get("originalClientSubacc") or state["original_client_subacc"]
    state["sale_source"] = fields.get("source") or state["sale_source"]
    _apply_card(state, fields)


def _apply(state: dict[str, Any], entry: Mapping[str, Any]) -> None:
    event_type = entry["event_type"]
    fields: Mapping[str, str] = entry.get("fields") or {}
    moment = entry.get("occurred_at") or entry.get("received_at")
    state["customer_reference"] = entry.get("customer_reference") or state["customer_reference"]
    if event_type in SALE_FAILURE_EVENTS:
        # A declined purchase is kept in the history and changes nothing else: not the status (never active,
        # never reactivated), not the account (a declined up-sale may name another subaccount).
        state["client_accnum"] = state["client_accnum"] or fields.get("clientAccnum")
        state["client_subacc"] = state["client_subacc"] or fields.get("clientSubacc")
        state["last_event_at"] = moment
        return
    state["client_accnum"] = fields.get("clientAccnum") or state["client_accnum"]
    state["client_subacc"] = fields.get("clientSubacc") or state["client_subacc"]
    if event_type in SALE_EVENTS:
        _apply_sale(state, event_type, fields, moment)
    elif event_type == EventType.RENEWAL_SUCCESS.value:
        # Money was collected: billing is running, whatever an earlier cancellation said (a missed reactivation).
        state["status"] = ACTIVE
        state["cancelled_at"] = state["cancel_reason"] = state["expired_at"] = None
        state["times_rebilled"] += 1
        state["last_renewal_at"] = moment
        if fields.get("nextRenewalDate"):
            state["next_renewal_date"] = _date(fields["nextRenewalDate"])
        _apply_card(state, fields)
    elif event_type == EventType.RENEWAL_FAILURE.value:
        state["last_renewal_failure"] = {
            "transaction_id": fields.get("transactionId"),
            "failure_code": fields.get("failureCode"),
            "failure_reason": fields.get("failureReason"),
            "decline_text": decline_text(fields.get("failureCode")),
            "renewal_date": _date(fields.get("renewalDate")),
            "next_retry_date": _date(fields.get("nextRetryDate")),
            "occurred_at": moment,
        }
    elif event_type == EventType.CANCELLATION.value:
        if state["status"] != EXPIRED:
            state["status"] = CANCELLED
        state["cancelled_at"] = moment
        state["cancel_reason"] = fields.get("reason")
    elif event_type == EventType.USER_REACTIVATION.value:
        state["status"] = ACTIVE
        state["cancelled_at"] = state["cancel_reason"] = state["expired_at"] = None
        state["reactivated_at"] = moment
        if fields.get("nextRenewalDate"):
            state["next_renewal_date"] = _date(fields["nextRenewalDate"])
    elif event_type == EventType.EXPIRATION.value:
        state["status"] = EXPIRED
        state["expired_at"] = moment
        state["next_renewal_date"] = None
    elif event_type == EventType.BILLING_DATE_CHANGE.value:
        if fields.get("nextRenewalDate"):
            state["next_renewal_date"] = _date(fields["nextRenewalDate"])
    elif event_type == EventType.CUSTOMER_DATA_UPDATE.value:
        _apply_card(state, fields)
    elif event_type in COUNTED_REVERSALS:
        state[COUNTED_REVERSALS[event_type]] += 1
    state["last_event_at"] = moment


def fold_step(state: Mapping[str, Any] | None, subscription_id: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The state after ``entry``, folded onto ``state`` (the state of the entries placed before it; None: none).

    `derive_state` is this step over the ordered history, so a record that applies its newest entry alone reaches
    the state the whole history gives. A history of declined purchases only is `declined`; the status underneath is
    the initial one (a declined purchase never moves it), which the next entry starts from.
    """
    step = initial_state(subscription_id) if state is None else dict(state)
    declined_so_far = state is None or step["status"] == DECLINED
    if step["status"] == DECLINED:
        step["status"] = ACTIVE
    _apply(step, entry)
    if declined_so_far and entry["event_type"] in SALE_FAILURE_EVENTS:
        step["status"] = DECLINED
    return step


def derive_state(subscription_id: str, history: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The subscription's state from its history. Pure: depends only on the set of entries, not their order."""
    state: dict[str, Any] | None = None
    for entry in ordered(history):
        state = fold_step(state, subscription_id, entry)
    return state if state is not None else initial_state(subscription_id)


STATE_FIELDS = frozenset(initial_state("").keys())
"""The attributes the fold derives (a record's other attributes are bookkeeping or carried facts)."""
