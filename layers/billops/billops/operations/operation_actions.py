"""What each operation type sends to CCBill: the plan (checked before anything leaves) and the call.

``plan_for`` turns a record into the exact request, validated against CCBill's rules and what is known of the
subscription; a refusal (``ActionRefused``) ends the operation as failed naming CCBill's parameter, and nothing is
sent. The plan is stored on the record by the claim, so every later attempt - a retry after a certain failure, or a
re-send after an unknown outcome proven harmless - sends the very same request.

Why a discount by amount is sent as a new price: ``discountAmount=2.00`` sent twice lowers the price twice (the
answer to the first may be lost: -7, a timeout). When the current recurring price is known, the amount is turned
into ``newRecurringPrice = current - amount`` before the first call; sending that again cannot lower the price
further. What a repeat does at the sandbox (and, by CCBill's rules, at CCBill): the price already equals the new
one, so -20 (greater than current) cannot apply and the call succeeds again changing nothing; if CCBill counted the
first as a cancel discount, rule -21 refuses the repeat - harmless either way (settlement.py escalates that case).
When the current price is not known the amount is sent as given, and an unknown outcome is escalated, never resent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billops.ccbill.client import CCBillClient
from billops.ccbill.request_builder import RequestBuilder
from billops.ccbill.discount_rules import (
    DISCOUNT_AMOUNT,
    NEW_RECURRING_PRICE,
    DiscountRejected,
    plan_discount,
)
from billops.ccbill.errors import CCBillRequestInvalid
from billops.ccbill.outcomes import CCBillOutcome
from billops.ccbill.subscription_facts import SubscriptionFacts

CHARGE_UPGRADE = "charge_by_previous_transaction"
ALLOW_UPGRADE = "allow_upgrade"


class ActionRefused(Exception):
    """The request breaks a rule CCBill would apply; nothing was sent. ``param`` is CCBill's parameter name."""

    def __init__(self, param: str | None, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code


@dataclass
class Plan:
    """What will be sent, as stored on the record (strings only), and how to send it."""

    details: dict[str, Any]
    send: Callable[[], CCBillOutcome] = field(repr=False)
    charges_money: bool = False
    resend_harmless: bool = False
    """True when an unknown outcome may be settled by sending the same plan again (see settlement.py)."""


def plan_for(record: dict[str, Any], client: CCBillClient | RequestBuilder, facts: SubscriptionFacts,
             current_price: Decimal | None) -> Plan:
    """The plan of ``record``'s operation (reusing ``record["plan"]`` from an earlier attempt when present).

    ``client``: the worker's CCBill client (``send`` sends), or its request builder (the merchant API's check
    before queueing: ``send`` builds the request, with every check, and sends nothing)."""
    kind = record["operation_type"]
    subscription_id = str(record["subscription_id"])
    parameters = record.get("parameters") or {}
    subacc = record.get("client_subacc") or None
    try:
        if kind == "discount":
            return _discount(subscription_id, parameters, record.get("plan"), client, facts, current_price, subacc)
        if kind == "cancel":
            return Plan({"action": "cancelSubscription"},
                        lambda: client.cancel_subscription(subscription_id, client_subacc=subacc),
                        resend_harmless=True)
        if kind == "extend":
            days = int(parameters["days"])
            return Plan({"action": "extendSubscription", "days": days},
                        lambda: client.extend_subscription(subscription_id, days, client_subacc=subacc))
        if kind == "refresh":
            return Plan({"action": "viewSubscriptionStatus"},
                        lambda: client.view_subscription_status(subscription_id, client_subacc=subacc),
                        resend_harmless=True)
        if kind in MONEY_BACK_ACTIONS:
            return _money_back(kind, subscription_id, parameters, client, subacc)
        if kind == "upgrade" and parameters.get("method") == CHARGE_UPGRADE:
            return _charge_upgrade(subscription_id, parameters, client, facts, subacc)
        if kind == "upgrade" and parameters.get("method") == ALLOW_UPGRADE:
            return _allow_upgrade(subscription_id, parameters, client, facts, subacc)
    except DiscountRejected as refusal:
        raise ActionRefused(refusal.param, refusal.message, refusal.ccbill_code) from None
    except CCBillRequestInvalid as refusal:
        raise ActionRefused(refusal.param, refusal.message) from None
    raise ActionRefused("operation_type", f"operation {kind!r} is not supported")


def _discount(subscription_id: str, parameters: dict[str, Any], stored: dict[str, Any] | None,
              client: CCBillClient, facts: SubscriptionFacts, current: Decimal | None,
              subacc: str | None) -> Plan:
    if stored and stored.get("param") in (DISCOUNT_AMOUNT, NEW_RECURRING_PRICE):
        # A later attempt sends exactly what the first one planned; the rules were applied then, and applying
        # them again to a price the first attempt may already have changed would refuse a harmless repeat.
        param, value = stored["param"], stored["value"]
        details = dict(stored)
        facts_for_call = None
    else:
        amount, new_price = parameters.get("discount_amount"), parameters.get("new_recurring_price")
        # The rules first, in the sender's terms, so a refusal names the parameter the sender gave.
        checked = plan_discount(discount_amount=amount, new_recurring_price=new_price, facts=facts)
        details = {"action": "discountSubscription", "requested": dict(parameters),
                   "current_recurring_price": None if current is None else f"{current:.2f}"}
        if checked.param == DISCOUNT_AMOUNT and checked.resulting_price is not None:
            param, value = NEW_RECURRING_PRICE, f"{checked.resulting_price:.2f}"
            details["converted_from_amount"] = True
        else:
            param, value = checked.param, f"{checked.value:.2f}"
        details.update({"param": param, "value": value,
                        "resulting_price": None if checked.resulting_price is None
                        else f"{checked.resulting_price:.2f}"})
        facts_for_call = facts
    keyword = "new_recurring_price" if param == NEW_RECURRING_PRICE else "discount_amount"
    return Plan(details,
                lambda: client.discount_subscription(subscription_id, facts=facts_for_call, client_subacc=subacc,
                                                     **{keyword: value}),
                resend_harmless=param == NEW_RECURRING_PRICE)


MONEY_BACK_ACTIONS = {"refund": "refundTransaction", "void": "voidTransaction"}
"""Operation types that give money back, and CCBill's action for each."""


def _money_back(kind: str, subscription_id: str, parameters: dict[str, Any], client: CCBillClient,
                subacc: str | None) -> Plan:
    """refundTransaction / voidTransaction of one charge: CCBill names the transaction in ``subscriptionId``; the
    initial charge's transaction ID is the subscription ID (so that is the default). Never re-sent after an unknown
    outcome: a second partial refund would refund twice (settlement.py looks for the webhook or the counters)."""
    transaction_id = str(parameters.get("transaction_id") or subscription_id)
    amount = parameters.get("amount") if kind == "refund" else None
    details = _compact({"action": MONEY_BACK_ACTIONS[kind], "transaction_id": transaction_id, "amount": amount})
    if kind == "refund":
        return Plan(details, lambda: client.refund_transaction(transaction_id, amount=amount, client_subacc=subacc),
                    charges_money=True)
    return Plan(details, lambda: client.void_transaction(transaction_id, client_subacc=subacc), charges_money=True)


def _charge_upgrade(subscription_id: str, parameters: dict[str, Any], client: CCBillClient,
                    facts: SubscriptionFacts, subacc: str | None) -> Plan:
    common = {
        "special_offer": parameters.get("special_offer"),
        "shared_authentication": parameters.get("shared_authentication"),
        "facts": facts,
        "client_subacc": subacc,
    }
    if parameters.get("upgrade") is not None:
        option = client.catalogue.get(parameters["upgrade"])
        details = {"action": "chargeByPreviousTransactionId", "upgrade": option.key,
                   "new_client_accnum": option.client_accnum, "new_client_subacc": option.client_subacc,
                   "initial_price": _text(option.initial_price), "initial_period": option.initial_period,
                   "recurring_price": _text(option.recurring_price), "recurring_period": option.recurring_period,
                   "currency_code": option.currency_code}
        return Plan(_compact(details),
                    lambda: client.upgrade_by_previous_transaction(subscription_id, option.key, **common),
                    charges_money=True)
    recurring = parameters.get("recurring_price") is not None
    details = {
        "action": "chargeByPreviousTransactionId",
        "new_client_accnum": parameters["new_client_accnum"],
        "new_client_subacc": str(parameters["new_client_subacc"]).zfill(4),
        "initial_price": parameters["initial_price"],
        "initial_period": parameters["initial_period"],
        "recurring_price": parameters.get("recurring_price"),
        "recurring_period": parameters.get("recurring_period"),
        "rebills": parameters.get("rebills"),
        "currency_code": parameters.get("currency_code"),
    }
    return Plan(
        _compact(details),
        lambda: client.charge_by_previous_transaction_id(
            subscription_id,
            new_client_accnum=parameters["new_client_accnum"],
            new_client_subacc=parameters["new_client_subacc"],
            initial_price=parameters["initial_price"],
            initial_period=parameters["initial_period"],
            recurring_price=parameters.get("recurring_price") if recurring else None,
            recurring_period=parameters.get("recurring_period") if recurring else None,
            rebills=parameters.get("rebills") if recurring else None,
            currency_code=parameters.get("currency_code"),
            **common,
        ),
        charges_money=True,
    )


def _allow_upgrade(subscription_id: str, parameters: dict[str, Any], client: CCBillClient,
                   facts: SubscriptionFacts, subacc: str | None) -> Plan:
    from billops.ccbill.upgrade_security import method_refusal, upgrade_security_from_env

    refusal = method_refusal(upgrade_security_from_env(), "allow_upgrade")
    if refusal is not None:
        raise ActionRefused("method", refusal)
    origin_subacc = subacc or facts.client_subacc
    if not origin_subacc:
        raise ActionRefused("clientSubacc", "the subscription's subaccount is not known yet (no webhook of it was "
                                            "received); give client_subacc in the message")
    upgrade = parameters.get("upgrade")
    if len(client.catalogue):
        client.catalogue.get(upgrade)  # names an unknown upgrade now, before anything is sent
    sealed = parameters.get("username_ciphertext")
    details = _compact({"action": "allowUpgrade", "client_subacc": str(origin_subacc).zfill(4), "upgrade": upgrade,
                        "identity": "username" if sealed else None})

    def send() -> CCBillOutcome:
        if not sealed:
            return client.allow_upgrade(str(origin_subacc), subscription_id=subscription_id, upgrade=upgrade)
        from billops.privacy.upgrade_identity import UpgradeIdentityUnavailable, open_username

        try:  # opened only for the call: the username is in no record, log or event
            username = open_username(subscription_id, str(sealed))
        except UpgradeIdentityUnavailable as problem:
            raise ActionRefused("username_ciphertext", str(problem)) from None
        return client.allow_upgrade(str(origin_subacc), username=username, upgrade=upgrade)

    return Plan(details, send, resend_harmless=True)


def upgrade_form_for(record: dict[str, Any], client: CCBillClient) -> dict[str, Any]:
    """The consumer's step-2 form after a successful allowUpgrade (no call is made). For a post made by username
    the form's ``username`` is left out (personal data: the record and the event must not hold it) and
    ``identity`` says so; the upgrade page fills it in from the sealed username."""
    plan = record.get("plan") or {}
    form = client.upgrade_form(plan["client_subacc"], subscription_id=str(record["subscription_id"]),
                               upgrade=plan.get("upgrade"), method="backend_post")
    fields = dict(form.fields)
    if plan.get("identity") == "username":
        fields.pop("subscriptionId", None)
        return {"url": form.url, "method": "POST", "fields": fields, "identity": "username"}
    return {"url": form.url, "method": "POST", "fields": fields}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return f"{value:.2f}" if isinstance(value, Decimal) else str(value)


def _compact(details: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in details.items() if value is not None}
