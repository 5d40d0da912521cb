"""``billops subscriptions show ID``: a subscription's record as the projector keeps it, and its operations.

Read straight from the tables with the operator's credentials. Personal data (the ``subscriber`` map: names, email,
address, username...) is masked unless ``--reveal``, which decrypts it (billops.privacy.subscriber_view) and so
needs kms:Decrypt on the personal-data key when the values are encrypted.
"""

from __future__ import annotations

import argparse
from typing import Any

from billops_cli.output import EXIT_OK, CliError, Output, render_fields, render_table
from billops_cli.targets import Target

HIDDEN_ATTRIBUTES = ("subscriber_keys", "subscriber_as_of")
"""Never printed: wrapped data keys, and bookkeeping of which event last set each personal field."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("subscriptions", help="look subscriptions up")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="a subscription's record, history and operations")
    show.add_argument("subscription_id", help="CCBill's subscription ID (leading zeros kept)")
    show.add_argument("--reveal", action="store_true",
                      help="show personal data in clear (decrypts it: needs kms:Decrypt on the personal-data key)")
    show.add_argument("--history", type=int, default=10, metavar="N",
                      help="how many of the latest events to list (default 10; --json always has all)")
    show.set_defaults(handler=show_subscription)


def subscription_view(record: dict[str, Any], *, reveal: bool) -> dict[str, Any]:
    """The record fit to print: personal data masked (or revealed), key material and bookkeeping left out."""
    from billops.privacy.subscriber_view import masked_subscriber, revealed_subscriber

    view = {name: value for name, value in record.items() if name not in HIDDEN_ATTRIBUTES}
    if reveal:
        view["subscriber"] = revealed_subscriber(record)
    else:
        view["subscriber"] = masked_subscriber(record)
    return view


def operation_summary(record: dict[str, Any]) -> dict[str, Any]:
    from billops.operation_states import API_STATUS

    status = record.get("status")
    failure = record.get("failure") or {}
    return {
        "operation_id": record.get("operation_id"),
        "operation_type": record.get("operation_type"),
        "idempotency_key": record.get("idempotency_key"),
        "status": API_STATUS.get(str(status), status),
        "record_status": status,
        "escalated": bool(record.get("escalated")),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        "detail": failure.get("message") or record.get("failure_reason") or record.get("unknown_reason")
        or (record.get("plan") or {}).get("action"),
    }


def show_subscription(args: argparse.Namespace, target: Target, out: Output) -> int:
    from billops.storage.operations_table import OperationsTable
    from billops.storage.subscriptions_table import SubscriptionsTable

    target.activate("SubscriptionsTable", "SubscriptionHistoryTable", "OperationsTable")
    subscription_id = args.subscription_id.strip()
    dynamodb = target.client("dynamodb")
    record = SubscriptionsTable(target.table("SubscriptionsTable"), dynamodb,
                                target.table("SubscriptionHistoryTable")).get(subscription_id)
    if record is None:
        raise CliError(f"no subscription {subscription_id} in {target.description} (no webhook of it was stored, "
                       "or the projector has not folded it yet)")
    try:
        operations = OperationsTable(target.table("OperationsTable"), dynamodb).by_subscription(subscription_id)
    except Exception as error:  # noqa: BLE001 - the record itself is still worth showing
        out.note(f"warning: the subscription's operations could not be read ({error})")
        operations = []
    view = subscription_view(record, reveal=args.reveal)
    summaries = [operation_summary(op) for op in operations]
    out.emit({**view, "operations": summaries}, _human(view, summaries, args.history))
    return EXIT_OK


def _human(view: dict[str, Any], operations: list[dict[str, Any]], history_count: int) -> str:
    facts = view.get("operation_facts") or {}
    card = view.get("card") or {}
    ccbill_view = view.get("ccbill_view") or {}
    price = view.get("recurring_price")
    if facts.get("recurring_price") and facts.get("recurring_price") != price:
        price = f"{facts['recurring_price']} (after discount {facts.get('recurring_price_operation_id') or ''}; "\
                f"sale price {view.get('recurring_price')})"
    pairs = [
        ("subscription", view.get("subscription_id")),
        ("status", view.get("status")),
        ("account", f"{view.get('client_accnum') or '-'} / {view.get('client_subacc') or '-'}"),
        ("currency", view.get("currency")),
        ("initial price", _with_period(view.get("initial_price"), view.get("initial_period"))),
        ("recurring price", _with_period(price, view.get("recurring_period"))),
        ("rebills", view.get("rebills")),
        ("signed up", view.get("signed_up_at")),
        ("next renewal", view.get("next_renewal_date")),
        ("times rebilled", view.get("times_rebilled")),
        ("last renewal", view.get("last_renewal_at")),
        ("last renewal failure", (view.get("last_renewal_failure") or {}).get("decline_text")
         or (view.get("last_renewal_failure") or {}).get("failure_reason")),
        ("cancelled", _joined(view.get("cancelled_at"), view.get("cancel_reason"))),
        ("expired", view.get("expired_at")),
        ("chargebacks/refunds/voids/returns", "/".join(str(view.get(name) or 0)
                                                       for name in ("chargebacks", "refunds", "voids", "returns"))),
        ("upgraded from", view.get("original_subscription_id")),
        ("card", _joined(card.get("card_type"), f"…{card['last4']}" if card.get("last4") else None,
                         f"exp {card['exp_date']}" if card.get("exp_date") else None)),
        ("CCBill view", _joined(f"subscriptionStatus={ccbill_view.get('subscriptionStatus')}"
                                if ccbill_view else None, ccbill_view.get("refreshed_at"))),
        ("cancel discount price", view.get("cancel_discount_price")),
        ("events", view.get("event_count")),
        ("last event", view.get("last_event_at")),
        ("updated", view.get("updated_at")),
        ("subscriber", ", ".join(f"{name}={value}" for name, value in sorted((view.get("subscriber") or {}).items()))
         or None),
    ]
    parts = [render_fields(pairs)]
    history = list(view.get("history") or [])
    if history:
        shown = history[-history_count:] if history_count > 0 else []
        parts.append(f"\nHistory (latest {len(shown)} of {len(history)}):")
        parts.append(render_table(
            [{"occurred_at": entry.get("occurred_at") or entry.get("received_at"), "event_type": entry.get("event_type"),
              "key": entry.get("key")} for entry in shown],
            [("occurred_at", "occurred"), ("event_type", "event"), ("key", "delivery key")], max_width=80))
    if operations:
        parts.append(f"\nOperations ({len(operations)}):")
        parts.append(render_table(operations, [("created_at", "created"), ("operation_type", "type"),
                                               ("status", "status"), ("record_status", "record"),
                                               ("idempotency_key", "key"), ("detail", "detail")]))
    return "\n".join(parts)


def _with_period(price: Any, period: Any) -> str | None:
    if price in (None, ""):
        return None
    return f"{price} / {period} days" if period else str(price)


def _joined(*parts: Any) -> str | None:
    text = ", ".join(str(part) for part in parts if part not in (None, ""))
    return text or None
