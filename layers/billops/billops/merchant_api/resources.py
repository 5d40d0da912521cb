"""Stored records -> the API's resources: snake_case names (CCBill's, in snake_case), money as decimal strings with
a currency code, times as ISO-8601 UTC text, IDs as strings (leading zeros kept).

Personal data appears only as ``customer``: which personal fields CCBill sent, their values masked (``"***"``,
billops.privacy.subscriber_view.masked_subscriber) - unless the caller's key has the ``pii`` scope and asked for
them (``GET /v1/subscriptions/{id}?include=customer``), when ``customer`` holds the values in clear. Card data is
limited to what PCI lets us keep and show: BIN, last four digits, expiry, card and payment type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billops import operation_states as states
from billops.operations.subscription_facts_store import SubscriptionFactsStore
from billops.privacy.subscriber_view import masked_subscriber

API_KEY_PREFIX = "api:"
"""Operations the API creates carry ``api:<Idempotency-Key>`` as their idempotency key: the API's keys cannot meet
those of other senders (the CLI, the reconciliation job) on one operation record."""

UPGRADE_METHODS = {"charge_by_previous_transaction": "api", "allow_upgrade": "upgrade_system"}
"""The operation's upgrade method -> the API's name for it."""

PARAMETER_NAMES = {"new_client_accnum": "client_accnum", "new_client_subacc": "client_subacc"}
"""Operation message parameters whose API name differs."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """CCBill's camelCase names in snake_case: subscriptionInitialPrice -> subscription_initial_price."""
    return _CAMEL.sub("_", name).lower()


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as int (or decimal text), recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(item) for item in value]
    return value


def _int(value: Any) -> int | None:
    value = _plain(value)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    value = _plain(value)
    return None if value is None or value == "" else str(value)


def _money(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return f"{Decimal(str(value)):.2f}"
    except ArithmeticError:
        return None


# --- subscriptions ------------------------------------------------------------------------------------------------


def customer_fields(subscriber: Mapping[str, str]) -> dict[str, str]:
    """CCBill's personal fields in snake_case; pass-through fields (the merchant's own ``X-...`` names) as named."""
    return {name if name[:2].lower() == "x-" else snake(name): value for name, value in sorted(subscriber.items())}


def subscription_resource(record: Mapping[str, Any], *, customer: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The subscription resource; ``customer`` replaces the masked personal fields (already revealed by the caller)."""
    card = record.get("card") or {}
    billed = record.get("billed") or None
    failure = record.get("last_renewal_failure") or None
    current_price = SubscriptionFactsStore.current_recurring_price(dict(record))
    return {
        "id": str(record["subscription_id"]),
        "object": "subscription",
        "status": record.get("status"),
        "client_accnum": _text(record.get("client_accnum")),
        "client_subacc": _text(record.get("client_subacc")),
        "initial_price": _money(record.get("initial_price")),
        "recurring_price": None if current_price is None else f"{current_price:.2f}",
        "currency": _text(record.get("currency")),
        "currency_code": _text(record.get("currency_code")),
        "initial_period": _int(record.get("initial_period")),
        "recurring_period": _int(record.get("recurring_period")),
        "rebills": _int(record.get("rebills")),
        "recurring": record.get("recurring") if isinstance(record.get("recurring"), bool) else None,
        "subscription_type_id": _text(record.get("subscription_type_id")),
        "times_rebilled": _int(record.get("times_rebilled")) or 0,
        "next_renewal_date": _text(record.get("next_renewal_date")),
        "signed_up_at": _text(record.get("signed_up_at")),
        "last_renewal_at": _text(record.get("last_renewal_at")),
        "last_renewal_failure": None if not failure else {
            "transaction_id": _text(failure.get("transaction_id")),
            "failure_code": _text(failure.get("failure_code")),
            "failure_reason": _text(failure.get("failure_reason")),
            "decline_text": _text(failure.get("decline_text")),
            "renewal_date": _text(failure.get("renewal_date")),
            "next_retry_date": _text(failure.get("next_retry_date")),
            "occurred_at": _text(failure.get("occurred_at")),
        },
        "cancelled_at": _text(record.get("cancelled_at")),
        "cancel_reason": _text(record.get("cancel_reason")),
        "expired_at": _text(record.get("expired_at")),
        "reactivated_at": _text(record.get("reactivated_at")),
        "original_subscription_id": _text(record.get("original_subscription_id")),
        "original_client_accnum": _text(record.get("original_client_accnum")),
        "original_client_subacc": _text(record.get("original_client_subacc")),
        "card": None if not card else {
            "bin": _text(card.get("bin")),
            "last4": _text(card.get("last4")),
            "exp_date": _text(card.get("exp_date")),
            "card_type": _text(card.get("card_type")),
            "payment_type": _text(card.get("payment_type")),
        },
        "billed": None if not billed else {
            "initial_price": _money(billed.get("initial_price")),
            "recurring_price": _money(billed.get("recurring_price")),
            "currency": _text(billed.get("currency")),
            "currency_code": _text(billed.get("currency_code")),
        },
        "chargebacks": _int(record.get("chargebacks")) or 0,
        "refunds": _int(record.get("refunds")) or 0,
        "voids": _int(record.get("voids")) or 0,
        "returns": _int(record.get("returns")) or 0,
        "customer": customer_fields(customer if customer is not None else masked_subscriber(record)),
        "customer_reference": _text(record.get("customer_reference")),
        "created_at": _text(record.get("created_at")),
        "updated_at": _text(record.get("updated_at")),
    }


# --- a subscription's history -------------------------------------------------------------------------------------


def history_event_resource(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One webhook of a subscription's history (non-personal fields only: that is all the history keeps)."""
    return {
        "id": str(entry["key"]),
        "object": "subscription_event",
        "event_type": entry.get("event_type"),
        "occurred_at": _text(entry.get("occurred_at")),
        "received_at": _text(entry.get("received_at")),
        "fields": {snake(name): str(value) for name, value in sorted((entry.get("fields") or {}).items())},
    }


# --- webhook deliveries -------------------------------------------------------------------------------------------


def delivery_resource(item: Mapping[str, Any]) -> dict[str, Any]:
    """A webhook delivery as the events table's recent-deliveries index holds it (no body, no personal data)."""
    quarantined = item.get("record_type") == "quarantine"
    return {
        "id": str(item["pk"]),
        "object": "event",
        "status": "quarantined" if quarantined else "received",
        "event_type": _text(item.get("event_type")),
        "known_type": item.get("known_type") if isinstance(item.get("known_type"), bool) else None,
        "subscription_id": _text(item.get("subscription_id")),
        "transaction_id": _text(item.get("transaction_id")),
        "client_accnum": _text(item.get("client_accnum")),
        "client_subacc": _text(item.get("client_subacc")),
        "occurred_at": _text(item.get("occurred_at")),
        "received_at": _text(item.get("received_at")),
        "body_format": _text(item.get("body_format")),
        "quarantine": {"reason": _text(item.get("reason")), "param": _text(item.get("param"))} if quarantined
        else None,
    }


# --- operations ---------------------------------------------------------------------------------------------------


def api_idempotency_key(stored: str | None) -> str | None:
    if stored is None:
        return None
    return stored.removeprefix(API_KEY_PREFIX)


def api_parameters(record: Mapping[str, Any]) -> dict[str, Any]:
    """The operation's parameters in the API's names."""
    parameters = {PARAMETER_NAMES.get(name, name): _plain(value)
                  for name, value in (record.get("parameters") or {}).items()}
    if "method" in parameters:
        parameters["method"] = UPGRADE_METHODS.get(parameters["method"], parameters["method"])
    return parameters


def _ccbill_result(record: Mapping[str, Any]) -> dict[str, Any] | None:
    summary = record.get("ccbill") or None
    if not summary:
        return None
    return {
        "action": _text(summary.get("action")),
        "status": _text(summary.get("status")),
        "code": _int(summary.get("code")),
        "meaning": _text(summary.get("meaning")),
        "at": _text(summary.get("at")),
    }


def _failure(record: Mapping[str, Any]) -> dict[str, Any] | None:
    failure = record.get("failure") or None
    if not failure:
        return None
    code = _int(failure.get("code"))
    meaning = _text(failure.get("meaning"))
    if code is not None and meaning is None:
        from billops.ccbill.result_codes import result_code

        meaning = result_code(code).meaning
    resource = {
        "reason": _text(failure.get("reason")),
        "message": _text(failure.get("message")),
        "param": _text(failure.get("param")),
        "ccbill_code": code,
        "ccbill_meaning": meaning,
    }
    if failure.get("existing_operation_id"):  # duplicate_upgrade: the upgrade that stands in the way
        resource["existing_operation_id"] = _text(failure.get("existing_operation_id"))
    return resource


def _original_subscription(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Upgrades by API: whether the original keeps billing, or which operation cancels it (cancel_original)."""
    from billops.operations.upgrade_follow_ups import original_subscription_note

    note = original_subscription_note(record)
    if note is not None and record.get("cancel_original_operation_id"):
        note["cancel_operation_id"] = _text(record.get("cancel_original_operation_id"))
    return note


def operation_resource(record: Mapping[str, Any]) -> dict[str, Any]:
    status = str(record.get("status"))
    form = record.get("upgrade_form") or None
    return {
        "id": str(record["operation_id"]),
        "object": "operation",
        "type": _text(record.get("operation_type")),
        "subscription_id": _text(record.get("subscription_id")),
        "status": states.API_STATUS.get(status, "unknown"),
        "idempotency_key": api_idempotency_key(_text(record.get("idempotency_key"))),
        "parameters": api_parameters(record),
        "run_at": _text(record.get("run_at")),
        "suppress_domain_events": bool(record.get("suppress_domain_events")),
        "attempts": _int(record.get("attempt")) or 0,
        "escalated": bool(record.get("escalated")),
        "status_reason": _text(record.get("unknown_reason")) if status == states.UNKNOWN else None,
        "ccbill_result": _ccbill_result(record),
        "failure": _failure(record),
        "new_subscription_id": _text(record.get("new_subscription_id")),
        "original_subscription": _original_subscription(record),
        "upgrade_form": None if not form or status != states.AWAITING_CONSUMER else {
            "url": _text(form.get("url")),
            "method": _text(form.get("method")) or "POST",
            "fields": {str(name): str(_plain(value)) for name, value in (form.get("fields") or {}).items()},
            "expires_at": _text(record.get("window_expires_at")),
        },
        "created_at": _text(record.get("created_at")),
        "updated_at": _text(record.get("updated_at")),
        "completed_at": _text(record.get("completed_at")),
    }
