"""A POST on a subscription -> an operation: the message, validated with the worker's own rules, recorded, queued.

1. The subscription must be known (404) and not expired (409); a cancellation of a cancelled one is 409 too.
2. The request's parameters (API names) become an operation message (billops.operations.operation_messages): the
   message model checks formats, exactly as the worker will; a refusal is 400 naming the API's parameter.
3. ``Idempotency-Key``: the operation's ID derives from it (``api:<key>``, operation_records.operation_id_for).
   A record with that ID and the same request hash is the same request: it is answered again, unchanged (and its
   message re-sent if it still waits in ``queued`` - harmless, the record is the arbiter of "exactly once"). Another
   request under the key is refused, 409; the first is kept.
4. The worker's checks run now, before anything is stored: ``operation_actions.plan_for`` and the CCBill client's
   request building (billops.ccbill.request_builder: every check, nothing sent). So a discount
   CCBill would refuse (-18, -19, -20, -21, -22, -11, -2) is refused here with 400 naming the parameter and
   CCBill's code and meaning (409 when the subscription itself is what disqualifies it: -22, -11), as is an upgrade
   to a price point the destination subaccount would answer -7 for.
5. ``billops.operations.operation_submission.record_and_queue``: the record is created ``queued`` (``scheduled``
   when ``run_at`` is in the future: the scheduler sends it when due) by the same conditional put the worker uses,
   then the message goes on the FIFO queue (group = the subscription, deduplication ID = the key). When the send
   fails the answer is 500 and the client repeats the request with the same key; step 3 then sends it again.

Nothing here calls CCBill.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentialsUnavailable
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.request_builder import RequestBuilder
from billops.ccbill.subaccount_settings import SubaccountDirectory
from billops.ccbill.subscription_facts import SubscriptionState
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue
from billops.merchant_api import api_failures as failures
from billops.merchant_api.request_bodies import refuse_unknown
from billops.merchant_api.resources import API_KEY_PREFIX, PARAMETER_NAMES
from billops.operations.operation_actions import ActionRefused, plan_for
from billops.operations.operation_messages import (
    SUBSCRIPTION_ID_PATTERN,
    MessageInvalid,
    parse_message,
)
from billops.operations.operation_records import new_record, operation_id_for, utc_now
from billops.operations.operation_settings import OperationSettings
from billops.operations.operation_submission import (
    NotQueued,
    RequestConflict,
    Submitted,
    record_and_queue,
    submit_again,
)
from billops.operations.subscription_facts_store import SubscriptionFactsStore
from billops.storage.errors import StorageUnavailable
from billops.storage.operations_table import OperationsTable

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,120}$")
_SUBSCRIPTION_ID = re.compile(SUBSCRIPTION_ID_PATTERN)

PRICING = ("initial_price", "initial_period", "recurring_price", "recurring_period", "rebills", "currency_code")
PARAMETERS = {
    "discount": ("discount_amount", "new_recurring_price", "run_at"),
    "cancel": ("run_at",),
    "extend": ("days", "run_at"),
    "upgrade": ("method", "client_accnum", "client_subacc", "upgrade_type_id", "upgrade", *PRICING, "special_offer",
                "shared_authentication", "cancel_original", "force", "run_at"),
    "refund": ("amount", "transaction_id", "run_at"),
    "void": ("transaction_id", "run_at"),
}
MONEY_BACK = frozenset({"refund", "void"})
"""Money goes back on a charge whatever became of the subscription since: an expired one can be refunded."""
UPGRADE_METHODS = {"api": "charge_by_previous_transaction", "upgrade_system": "allow_upgrade"}

CCBILL_PARAMS = {
    "discountAmount": "discount_amount", "newRecurringPrice": "new_recurring_price",
    "newClientAccnum": "client_accnum", "newClientSubacc": "client_subacc",
    "initialPrice": "initial_price", "initialPeriod": "initial_period", "recurringPrice": "recurring_price",
    "recurringPeriod": "recurring_period", "rebills": "rebills", "currencyCode": "currency_code",
    "specialOffer": "special_offer", "sharedAuthentication": "shared_authentication", "extendLength": "days",
    "amount": "amount",
    # The consumer's username / password would not fit the destination subaccount: the destination is the choice.
    "username": "client_subacc", "password": "client_subacc",  # nosec B105  # a parameter-name mapping, not a password
}
"""CCBill's parameter names (in refusals of the worker's checks) -> the API's."""
SUBSCRIPTION_LEVEL = frozenset({"subscriptionId", "clientSubacc"})
"""Refusals about the subscription itself rather than a parameter: answered 409."""


@dataclass(frozen=True)
class OperationRequest:
    operation_type: str
    subscription_id: str
    parameters: Mapping[str, Any]
    idempotency_key: str | None = None
    suppress_domain_events: bool = False


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.match(value):
        raise failures.param_wrong_value("Idempotency-Key must be 1-120 printable ASCII characters without spaces.",
                                         "Idempotency-Key")
    return value


# --- the checks the worker makes, without sending -------------------------------------------------------------------


class Validation:
    """The catalogue and subaccount settings the worker uses (BILLOPS_UPGRADE_CATALOGUE, BILLOPS_CCBILL_SUBACCOUNTS),
    read once per container."""

    def __init__(self, settings_factory: Callable[[], CCBillClientSettings] = CCBillClientSettings.from_env) -> None:
        self._settings_factory = settings_factory
        self._loaded: tuple[CCBillClientSettings, UpgradeCatalogue, SubaccountDirectory] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[CCBillClientSettings, UpgradeCatalogue, SubaccountDirectory]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    settings = self._settings_factory()
                    self._loaded = (settings, UpgradeCatalogue.from_config(settings.upgrade_catalogue),
                                    SubaccountDirectory.from_config(settings.subaccounts))
        return self._loaded

    @property
    def catalogue(self) -> UpgradeCatalogue:
        return self._load()[1]

    def builder(self, client_accnum: str | None) -> RequestBuilder:
        """The CCBill client's request builder (every check the worker's client makes before sending; it sends
        nothing), for a subscription of account ``client_accnum`` (None: unknown)."""
        settings, catalogue, subaccounts = self._load()
        return RequestBuilder(settings, catalogue, subaccounts, lambda: _known_account(client_accnum))


def _known_account(client_accnum: str | None) -> str:
    if not client_accnum:
        raise CCBillCredentialsUnavailable("the subscription's account is not known")
    return client_accnum


# --- the requests -------------------------------------------------------------------------------------------------


class OperationRequests:
    def __init__(self, table: OperationsTable, facts_store: SubscriptionFactsStore, settings: OperationSettings,
                 validation: Validation | None = None, *, sqs: Any = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.table = table
        self.facts_store = facts_store
        self.settings = settings
        self.validation = validation or Validation()
        self.sqs = sqs
        self.clock = clock

    # --- reading ------------------------------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription record, or 404."""
        record = self.facts_store.get(subscription_id) if _SUBSCRIPTION_ID.match(subscription_id or "") else None
        if record is None:
            raise failures.not_found(f"Subscription {subscription_id[:40]} not found.")
        return record

    def operation(self, operation_id: str) -> dict[str, Any]:
        record = self.table.get(operation_id) if re.match(r"^op_[a-z0-9_]{1,40}$", operation_id or "") else None
        if record is None:
            raise failures.not_found(f"Operation {operation_id[:40]} not found.")
        return record

    # --- submitting ---------------------------------------------------------------------------------------------

    def submit(self, request: OperationRequest) -> Submitted:
        key = check_idempotency_key(request.idempotency_key) or f"auto-{uuid.uuid4().hex}"
        subscription = self.subscription(request.subscription_id)
        parameters = {name: value for name, value in request.parameters.items() if value is not None and value != ""}
        refuse_unknown(parameters, PARAMETERS[request.operation_type])
        document = self._message_document(request, parameters, subscription, API_KEY_PREFIX + key)
        try:
            message = parse_message(document)
        except MessageInvalid as problem:
            raise _message_refusal(problem, parameters) from None

        existing = self.table.get(operation_id_for(message.idempotency_key))
        if existing is not None:
            return self._queued(lambda: submit_again(existing, message, settings=self.settings, sqs=self.sqs))

        facts = self.facts_store.facts(request.subscription_id, subscription)
        if subscription.get("status") == "declined":
            raise failures.invalid_state(f"Subscription {request.subscription_id} is known only from declined "
                                         "purchases: CCBill never started it, so no operation can change it.")
        if facts.state is SubscriptionState.EXPIRED and request.operation_type not in MONEY_BACK:
            raise failures.invalid_state(f"Subscription {request.subscription_id} has expired; no operation can "
                                         "change it.")
        if request.operation_type == "cancel" and facts.state is SubscriptionState.CANCELLED:
            raise failures.invalid_state(f"Subscription {request.subscription_id} is already cancelled.")
        now = self.clock()
        record = new_record(message, now, max_attempts=self.settings.max_attempts)
        plan = self._validate(record, subscription, facts, parameters)
        if request.operation_type == "upgrade":
            self._one_upgrade_at_a_time(record, plan)

        return self._queued(lambda: record_and_queue(message, table=self.table, settings=self.settings,
                                                     sqs=self.sqs, clock=lambda: now))

    @staticmethod
    def _queued(submit: Callable[[], Submitted]) -> Submitted:
        try:
            return submit()
        except RequestConflict:
            raise failures.idempotency_conflict() from None
        except NotQueued:  # logged; the client repeats the request with the same key, which sends it again
            raise failures.service_unavailable() from None
        except StorageUnavailable:
            logger.exception("the operation could not be recorded")
            raise failures.service_unavailable() from None

    # --- the message ----------------------------------------------------------------------------------------------

    def _message_document(self, request: OperationRequest, parameters: dict[str, Any], subscription: dict[str, Any],
                          idempotency_key: str) -> dict[str, Any]:
        given = dict(parameters)
        run_at = given.pop("run_at", None)
        if request.operation_type == "upgrade":
            operation_parameters = self._upgrade_parameters(given, subscription)
        else:
            operation_parameters = given
        document: dict[str, Any] = {
            "operation_type": request.operation_type,
            "subscription_id": request.subscription_id,
            "idempotency_key": idempotency_key,
            "parameters": operation_parameters,
            "suppress_domain_events": request.suppress_domain_events,
        }
        if run_at is not None:
            document["run_at"] = run_at
        return document

    def _upgrade_parameters(self, given: dict[str, Any], subscription: dict[str, Any]) -> dict[str, Any]:
        method_name = given.pop("method", None)
        if method_name is None:
            raise failures.param_wrong_value("method is required: api (chargeByPreviousTransactionId) or "
                                             "upgrade_system (CCBill's Subscription Upgrade System).", "method")
        method = UPGRADE_METHODS.get(str(method_name))
        if method is None:
            raise failures.param_wrong_value("method must be api or upgrade_system.", "method")
        pricing = [name for name in PRICING if name in given]
        extras = [name for name in ("special_offer", "shared_authentication") if name in given]
        by_catalogue = "upgrade" in given or "upgrade_type_id" in given
        flags = {name: _flag(given[name], name) for name in ("cancel_original", "force") if name in given}
        if method == "allow_upgrade":
            if pricing or extras or "cancel_original" in flags:
                name = (pricing + extras + ["cancel_original"])[0]
                raise failures.param_wrong_value(f"{name} applies to method=api only; the Subscription Upgrade "
                                                 "System uses the upgrades CCBill set up.", name)
            return {"method": method, "upgrade": self._catalogue_key(given, by_accounts=True),
                    **({"force": True} if flags.get("force") else {})}
        flags = {name: True for name, value in flags.items() if value}  # false is the default: not stored
        if by_catalogue:
            if pricing:
                which = "upgrade_type_id" if "upgrade_type_id" in given else "upgrade"
                raise failures.param_wrong_value(f"give either {which} or the pricing ({', '.join(PRICING)}), not "
                                                 "both.", pricing[0])
            return {"method": method, "upgrade": self._catalogue_key(given, by_accounts=False),
                    **{name: given[name] for name in extras}, **flags}
        return {
            "method": method,
            "new_client_accnum": given.get("client_accnum", subscription.get("client_accnum")),
            "new_client_subacc": given.get("client_subacc"),
            **{name: given[name] for name in (*pricing, *extras)},
            **flags,
        }

    def _catalogue_key(self, given: dict[str, Any], *, by_accounts: bool) -> str | None:
        """The catalogue upgrade named by ``upgrade``, ``upgrade_type_id`` (+ accounts), or - for the Upgrade
        System - the destination ``client_accnum`` / ``client_subacc``; None when nothing names one."""
        try:
            catalogue = self.validation.catalogue
        except CCBillConfigurationError:
            logger.exception("the upgrade catalogue is misconfigured")
            raise failures.service_unavailable() from None
        upgrade, type_id = given.get("upgrade"), given.get("upgrade_type_id")
        accnum, subacc = given.get("client_accnum"), given.get("client_subacc")
        if upgrade is not None:
            if type_id is not None:
                raise failures.param_wrong_value("give either upgrade or upgrade_type_id, not both.", "upgrade_type_id")
            try:
                return catalogue.get(str(upgrade)).key
            except CCBillRequestInvalid as refusal:
                raise failures.param_wrong_value(refusal.message, "upgrade") from None
        if type_id is None and not (by_accounts and (accnum is not None or subacc is not None)):
            return None
        if type_id is not None and not str(type_id).isdigit():
            raise failures.param_wrong_value("upgrade_type_id must be CCBill's numeric subscription type ID.",
                                             "upgrade_type_id")
        matches = [
            option for option in catalogue
            if (type_id is None or (option.subscription_type_id or "").lstrip("0") == str(type_id).lstrip("0"))
            and (accnum is None or option.client_accnum == str(accnum))
            and (subacc is None or option.client_subacc == str(subacc).zfill(4))
        ]
        param = "upgrade_type_id" if type_id is not None else "client_subacc"
        if not matches:
            raise failures.param_wrong_value("No upgrade CCBill set up for this merchant matches (the upgrades are "
                                             "configured in BILLOPS_UPGRADE_CATALOGUE).", param)
        if len(matches) > 1:
            raise failures.param_wrong_value("Several configured upgrades match; name one with upgrade_type_id (and "
                                             "client_accnum / client_subacc).", param)
        return matches[0].key

    # --- the worker's checks, now ---------------------------------------------------------------------------------

    def _one_upgrade_at_a_time(self, record: dict[str, Any], plan: Mapping[str, Any]) -> None:
        """409 naming the operation when the subscription already has an upgrade to this destination in flight or
        recently succeeded (billops.operations.upgrade_guard), unless the request says force."""
        from billops.operations.upgrade_guard import UpgradeGuard, refusal_message

        guard = UpgradeGuard(self.table, self.settings.upgrade_repeat_window_seconds, self.clock)
        try:
            blocking = guard.admit(record["operation_id"], record["subscription_id"], record["parameters"],
                                   self.validation.catalogue, plan)
        except StorageUnavailable:
            logger.exception("the subscription's upgrades could not be read")
            raise failures.service_unavailable() from None
        if blocking is not None:
            raise failures.upgrade_already_requested(refusal_message(record["subscription_id"], blocking),
                                                     str(blocking.get("operation_id")))

    def _validate(self, record: dict[str, Any], subscription: dict[str, Any], facts: Any,
                  given: Mapping[str, Any]) -> dict[str, Any]:
        try:
            plan = plan_for(record, self.validation.builder(facts.client_accnum), facts,
                            self.facts_store.current_recurring_price(subscription))
            try:
                plan.send()  # builds the request: every check, nothing sent
            except CCBillCredentialsUnavailable:
                pass  # the subscription's account is unknown: the worker's client reads it from its secret
            return dict(plan.details)
        except ActionRefused as refusal:
            raise _refusal(refusal.param, refusal.message, refusal.code, given) from None
        except CCBillRequestInvalid as refusal:
            raise _refusal(refusal.param, refusal.message, getattr(refusal, "ccbill_code", None), given) from None
        except CCBillConfigurationError:
            logger.exception("the CCBill client's configuration is broken")
            raise failures.service_unavailable() from None


def _flag(value: Any, name: str) -> bool:
    """A boolean request parameter: JSON true/false, or the form's "true"/"false"."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise failures.param_wrong_value(f"{name} must be true or false.", name)


def _refusal(param: str | None, message: str, code: int | None, given: Mapping[str, Any]
             ) -> failures.MerchantApiError:
    message = message[:1].upper() + message[1:]
    if param in SUBSCRIPTION_LEVEL:
        return failures.invalid_state(message, code)
    if param == "upgrade":
        api_param = "upgrade" if "upgrade" in given else "upgrade_type_id"
    else:
        api_param = CCBILL_PARAMS.get(param or "", param)
    return failures.param_wrong_value(message, api_param, code)


_PRICES = ("discount_amount", "new_recurring_price", "initial_price", "recurring_price", "amount")
_FRIENDLY = {
    # A JSON number is a binary float to most senders: prices travel as strings.
    "Input should be a valid string": {name: 'must be a decimal string like "19.95" (not a JSON number)'
                                       for name in _PRICES},
    "String should match pattern": {
        **{name: 'must be a price like "19.95": digits, at most two decimals, no currency sign'
           for name in _PRICES},
        "client_accnum": "must be CCBill's six-digit account number",
        "client_subacc": "must be a subaccount of up to four digits",
        "currency_code": "must be an ISO-4217 currency code, numeric (840) or alphabetic (USD)",
        "upgrade": "must be the key of an upgrade of BILLOPS_UPGRADE_CATALOGUE",
        "transaction_id": "must be CCBill's transaction ID (digits, leading zeros kept)",
    },
}
_KNOWN_API_PARAMS = frozenset(name for names in PARAMETERS.values() for name in names)


def _message_refusal(problem: MessageInvalid, given: Mapping[str, Any]) -> failures.MerchantApiError:
    """A message-model refusal in the API's terms, naming the parameter as the API names it."""
    path = [part for part in (problem.param or "").split(".") if part]
    if path and path[0] == "parameters":
        path = path[1:]
    text = re.sub(r"^[A-Za-z_.]+: ", "", problem.message)
    for internal, api in PARAMETER_NAMES.items():
        text = text.replace(internal, api)
    if path:
        param = PARAMETER_NAMES.get(path[0], path[0])
        for prefix, friendly in _FRIENDLY.items():
            if text.startswith(prefix) and param in friendly:
                text = friendly[param]
        return failures.param_wrong_value(f"{param} {text}" if text.startswith("must") else f"{param}: {text}",
                                          param)
    # A rule over several parameters ("exactly one of", "missing: ...", "go together"): name the first involved -
    # a missing one when something is missing, else the first one given.
    names = [name for name in re.findall(r"[a-z][a-z_]+", text) if name in _KNOWN_API_PARAMS]
    if "missing:" in text:
        missing = [name for name in re.findall(r"[a-z][a-z_]+", text.split("missing:", 1)[1])
                   if name in _KNOWN_API_PARAMS]
        param = missing[0] if missing else None
    else:
        param = next((name for name in names if name in given), names[0] if names else None)
    return failures.param_wrong_value(text[:1].upper() + text[1:] + ".", param)
