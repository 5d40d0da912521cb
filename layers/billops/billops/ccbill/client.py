"""The one place CCBill is called.

Every action of CCBill's subscription-management APIs, sent as CCBill documents it (form-encoded POST, so the
DataLink password never sits in a URL or an access log), validated before it leaves, answered with a
``CCBillOutcome`` (outcomes.py) - never an exception for something CCBill or the network did.

Money safety:

* No automatic retry of anything that can charge or change a subscription (chargeByPreviousTransactionId,
  upgradeSubscription, refund/void, discount, extend, cancel): the HTTP adapter has ``max_retries=0`` and this
  module sends such a request once. The only repeats are (a) viewSubscriptionStatus and allowUpgrade, which change
  nothing, after a transport failure or an unreadable answer, and (b) any action after CCBill refused the *login*
  (-1, DataLink "Error: 02"), once, when a fresh read of the secret gives other credentials - a refused login
  certainly did nothing.
* A failure that certainly happened before the request was sent (DNS, connection refused, connect timeout, TLS
  handshake) is ``failed``; one after it may have been sent (read timeout, reset, HTTP 5xx) is ``unknown``.
* Redirects are not followed (requests would turn the POST into a GET and drop the body).

Usage::

    client = get_client()                       # from BILLOPS_CCBILL_* settings, once per container
    outcome = client.cancel_subscription("0108123401000000017")
    if outcome.unknown: ...                     # find out (webhooks / view_subscription_status) before retrying
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from billops.ccbill import request_validation as check
from billops.ccbill.answer_interpretation import Expectation, interpret_http
from billops.ccbill.client_settings import UPGRADE_VARIABLE_SPELLINGS, CCBillClientSettings
from billops.ccbill.credentials import (
    CCBillCredentials,
    CCBillCredentialsUnavailable,
    CredentialsProvider,
    SecretsManagerCredentials,
)
from billops.ccbill.discount_rules import plan_discount
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.outcomes import CCBillOutcome, OutcomeKind, OutcomeStatus
from billops.ccbill.subaccount_settings import SubaccountDirectory
from billops.ccbill.subscription_facts import SubscriptionFacts
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue, UpgradeOption

logger = logging.getLogger(__name__)

# CCBill's action names (ccbill-facts.md 2.2).
VIEW_SUBSCRIPTION_STATUS = "viewSubscriptionStatus"
CANCEL_SUBSCRIPTION = "cancelSubscription"
DISCOUNT_SUBSCRIPTION = "discountSubscription"
EXTEND_SUBSCRIPTION = "extendSubscription"
REFUND_TRANSACTION = "refundTransaction"
VOID_TRANSACTION = "voidTransaction"
VOID_OR_REFUND_TRANSACTION = "voidOrRefundTransaction"
CHARGE_BY_PREVIOUS_TRANSACTION_ID = "chargeByPreviousTransactionId"
UPGRADE_SUBSCRIPTION = "upgradeSubscription"
ALLOW_UPGRADE = "allowUpgrade"

SAFE_TO_REPEAT = frozenset({VIEW_SUBSCRIPTION_STATUS, ALLOW_UPGRADE})
"""Actions that change nothing at CCBill, so asking again after a lost answer cannot cost anyone money."""

_CREDENTIAL_PARAMS = frozenset({"username", "password"})
_RESERVED = frozenset({
    "clientAccnum", "clientSubacc", "usingSubacc", "username", "password", "action", "returnXML", "subscriptionId",
    "newClientAccnum", "newClientSubacc", "initialPrice", "initialPeriod", "recurringPrice", "recurringPeriod",
    "rebills", "currencyCode", "specialOffer", "sharedAuthentication", "prorate",
})


SUBMIT_BUTTON = ("submit", "Upgrade Subscription")
"""The upgrade form's button as the guide's example names it: ``<input type="submit" name="submit" value="Upgrade
Subscription">``, posted with the hidden fields."""


@dataclass(frozen=True)
class UpgradeForm:
    """Where to send the consumer for a Subscription Upgrade System upgrade, and the hidden fields of the form."""

    url: str
    fields: dict[str, str] = field(default_factory=dict)


def redact(params: Mapping[str, str]) -> dict[str, str]:
    """A copy of request parameters safe for a log line."""
    return {name: ("***" if name in _CREDENTIAL_PARAMS else value) for name, value in params.items()}


def new_session(pool_maxsize: int = 10) -> requests.Session:
    """A pooled session that never retries on its own (urllib3's Retry(0, read=False))."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "billops-ccbill-client/1"
    return session


def classify_transport_error(action: str, exc: BaseException, settings: CCBillClientSettings) -> CCBillOutcome:
    """Was the request certainly not sent (failed, retryable) or perhaps applied (unknown)?"""
    import urllib3.exceptions as u3

    def outcome(status: OutcomeStatus, meaning: str, retryable: bool) -> CCBillOutcome:
        return CCBillOutcome(action, status, meaning, retryable, OutcomeKind.TRANSPORT)

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return outcome(OutcomeStatus.FAILED, f"Could not connect to CCBill within {settings.connect_timeout:g}s; the "
                       "request was not sent.", True)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return outcome(OutcomeStatus.UNKNOWN, f"CCBill did not answer within {settings.read_timeout:g}s; the request "
                       "was sent and may have been applied.", True)
    if isinstance(exc, requests.exceptions.SSLError):
        return outcome(OutcomeStatus.FAILED, "The TLS handshake with CCBill failed; the request was not sent.", False)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return outcome(OutcomeStatus.FAILED, "The configured CCBill URL is invalid; the request was not sent.", False)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the connect-time error
        if isinstance(reason, (u3.NewConnectionError, u3.ConnectTimeoutError)):
            # NameResolutionError is a NewConnectionError: DNS, refused, unreachable - nothing was written.
            return outcome(OutcomeStatus.FAILED, "Could not connect to CCBill (DNS, refused or unreachable); the "
                           "request was not sent.", True)
        return outcome(OutcomeStatus.UNKNOWN, "The connection to CCBill broke after the request was sent; it may "
                       "have been applied.", True)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return outcome(OutcomeStatus.UNKNOWN, "CCBill's answer was cut off; the request may have been applied.", True)
    return outcome(OutcomeStatus.UNKNOWN, f"Calling CCBill failed unexpectedly ({type(exc).__name__}); the request "
                   "may have been sent.", False)


class CCBillClient:
    def __init__(
        self,
        settings: CCBillClientSettings,
        credentials: CredentialsProvider,
        *,
        session: requests.Session | None = None,
        catalogue: UpgradeCatalogue | None = None,
        subaccounts: SubaccountDirectory | None = None,
        encryptor: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker: Any = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._session = session or new_session(settings.pool_maxsize)
        self.catalogue = catalogue if catalogue is not None else UpgradeCatalogue.from_config(
            settings.upgrade_catalogue)
        self.subaccounts = subaccounts if subaccounts is not None else SubaccountDirectory.from_config(
            settings.subaccounts)
        self._encryptor = encryptor  # an upgrade_encryption.UpgradeEncryptor, for upgrade_form(method="enc")
        self._sleep = sleep
        self._refresh_credentials_next = False
        self.breaker = breaker  # a circuit_breaker.CircuitBreaker shared by every worker, or None

    def __repr__(self) -> str:
        return f"CCBillClient(sms_url={self.settings.sms_url!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, breaker: Any = None) -> CCBillClient:
        settings = CCBillClientSettings.from_env(env)
        if not settings.credentials_secret_arn:
            raise CCBillConfigurationError("BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN is not set")
        from billops.ccbill.upgrade_encryption import UpgradeEncryptor

        return cls(
            settings,
            SecretsManagerCredentials(settings.credentials_secret_arn, max_age=settings.credentials_max_age),
            encryptor=UpgradeEncryptor.from_env(env),
            breaker=breaker,
        )

    # --- Subscription Management (subscriptionManagement.cgi) ------------------------------------------------

    def view_subscription_status(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillOutcome:
        """The subscription's status document (``outcome.data``; see subscription_facts.facts_from_status)."""
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        return self._call(VIEW_SUBSCRIPTION_STATUS, self.settings.sms_url, params, Expectation.STATUS_DOCUMENT,
                          target_subacc=_subacc(client_subacc))

    def cancel_subscription(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillOutcome:
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        return self._call(CANCEL_SUBSCRIPTION, self.settings.sms_url, params, Expectation.RESULT_CODE,
                          target_subacc=_subacc(client_subacc))

    def discount_subscription(
        self,
        subscription_id: str,
        *,
        discount_amount: Decimal | str | None = None,
        new_recurring_price: Decimal | str | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
    ) -> CCBillOutcome:
        """Lower the recurring price by ``discount_amount`` or to ``new_recurring_price`` (exactly one).

        ``facts`` (what is known of the subscription) lets the rules -2, -11, -18 ... -22 refuse early.
        """
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        plan = plan_discount(discount_amount=discount_amount, new_recurring_price=new_recurring_price, facts=facts)
        params.update(plan.wire_params())
        hints = {code: plan.param for code in (-18, -19, -20, -21)}
        return self._call(DISCOUNT_SUBSCRIPTION, self.settings.sms_url, params, Expectation.RESULT_CODE,
                          target_subacc=_subacc(client_subacc or (facts.client_subacc if facts else None)),
                          param_hints=hints)

    def extend_subscription(self, subscription_id: str, days: int, *,
                            client_subacc: str | None = None) -> CCBillOutcome:
        """Push the subscription's next billing date ``days`` later (``extendLength``)."""
        params = {"subscriptionId": check.subscription_id(subscription_id), "extendLength": str(check.extend_days(days))}
        return self._call(EXTEND_SUBSCRIPTION, self.settings.sms_url, params, Expectation.RESULT_CODE,
                          target_subacc=_subacc(client_subacc))

    def refund_transaction(self, subscription_id: str, *, amount: Decimal | str | None = None,
                           client_subacc: str | None = None) -> CCBillOutcome:
        """Refund a transaction (its ID in ``subscriptionId``); no amount means CCBill's full refund."""
        return self._money_back(REFUND_TRANSACTION, subscription_id, amount, client_subacc)

    def void_transaction(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillOutcome:
        return self._money_back(VOID_TRANSACTION, subscription_id, None, client_subacc)

    def void_or_refund_transaction(self, subscription_id: str, *, amount: Decimal | str | None = None,
                                   client_subacc: str | None = None) -> CCBillOutcome:
        """Void if CCBill still can, otherwise refund (beware: a void may cover more than ``amount``)."""
        return self._money_back(VOID_OR_REFUND_TRANSACTION, subscription_id, amount, client_subacc)

    def _money_back(self, action: str, subscription_id: str, amount: Any, client_subacc: str | None) -> CCBillOutcome:
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        if amount is not None:
            params["amount"] = check.format_price(check.price(amount, "amount"))
        return self._call(action, self.settings.sms_url, params, Expectation.RESULT_CODE,
                          target_subacc=_subacc(client_subacc))

    # --- billingApi.cgi ----------------------------------------------------------------------------------------

    def charge_by_previous_transaction_id(
        self,
        subscription_id: str,
        *,
        new_client_accnum: str,
        new_client_subacc: str,
        initial_price: Decimal | str,
        initial_period: int,
        recurring_price: Decimal | str | None = None,
        recurring_period: int | None = None,
        rebills: int | None = None,
        currency_code: str | None = None,
        special_offer: bool | None = None,
        shared_authentication: bool | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
        pass_through: Mapping[str, str] | None = None,
    ) -> CCBillOutcome:
        """Charge the card behind ``subscription_id`` for a new subscription in ``new_client_accnum/subacc``.

        On success ``outcome.data["subscriptionId"]`` is the new subscription. The original one is left as it is
        (cancel it separately if this is an upgrade). Never retried: on ``unknown`` look for the UpSaleSuccess
        webhook or ask CCBill before charging again.
        """
        params: dict[str, str] = {"subscriptionId": check.subscription_id(subscription_id)}
        accnum = check.client_accnum(new_client_accnum, "newClientAccnum")
        subacc = check.client_subacc(new_client_subacc, "newClientSubacc")
        initial = check.price(initial_price, "initialPrice")
        period = check.period_days(initial_period, "initialPeriod")
        recurring, recurring_days, rebill_count = self._recurring_terms(recurring_price, recurring_period, rebills)
        currency = None if currency_code is None else check.currency_code(currency_code)

        destination = self.subaccounts.get(accnum, subacc)
        if destination is None:
            raise CCBillRequestInvalid(
                "newClientSubacc",
                f"no settings are configured for the destination subaccount {accnum}/{subacc}; add its price range "
                "and username/password lengths to BILLOPS_CCBILL_SUBACCOUNTS so the upgrade can be checked before "
                "CCBill answers -7",
            )
        destination.check_pricing(initial_price=initial, initial_period=period, recurring_price=recurring,
                                  recurring_period=recurring_days, currency=currency)
        self._check_carried_credentials(destination, facts)

        params.update({
            "newClientAccnum": accnum,
            "newClientSubacc": subacc,
            "initialPrice": check.format_price(initial),
            "initialPeriod": str(period),
            # A single-charge price point still names its recurring terms as zeros: a missing argument is a -7.
            "recurringPrice": check.format_price(recurring) if recurring is not None else "0.00",
            "recurringPeriod": str(recurring_days or 0),
            "rebills": str(rebill_count or 0),
        })
        if currency is not None:
            params["currencyCode"] = currency
        if special_offer is not None:
            params["specialOffer"] = check.flag(special_offer, "specialOffer")
        if shared_authentication is not None:
            params["sharedAuthentication"] = check.flag(shared_authentication, "sharedAuthentication")
        for name, value in (pass_through or {}).items():
            if check.pass_through_name(name) in _RESERVED:
                raise CCBillRequestInvalid(name, "is a CCBill parameter, not a pass-through variable")
            params[name] = str(value)
        return self._call(CHARGE_BY_PREVIOUS_TRANSACTION_ID, self.settings.billing_api_url, params,
                          Expectation.APPROVAL, target_subacc=_subacc(client_subacc))

    def upgrade_by_previous_transaction(
        self,
        subscription_id: str,
        upgrade: str | None = None,
        *,
        special_offer: bool | None = None,
        shared_authentication: bool | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
    ) -> CCBillOutcome:
        """chargeByPreviousTransactionId with the price point of catalogue upgrade ``upgrade``."""
        option = self.catalogue.get(upgrade)
        if not option.has_price_point:
            raise CCBillRequestInvalid("upgrade", f"upgrade {option.key!r} has no price point in the catalogue "
                                                  "(use upgrade_subscription for a CCBill-configured upgrade)")
        return self.charge_by_previous_transaction_id(
            subscription_id,
            new_client_accnum=option.client_accnum,
            new_client_subacc=option.client_subacc,
            initial_price=option.initial_price,  # type: ignore[arg-type]
            initial_period=option.initial_period,  # type: ignore[arg-type]
            recurring_price=option.recurring_price,
            recurring_period=option.recurring_period,
            rebills=option.rebills if option.is_recurring else None,
            currency_code=option.currency_code,
            special_offer=special_offer,
            shared_authentication=shared_authentication,
            facts=facts,
            client_subacc=client_subacc,
        )

    def upgrade_subscription(
        self,
        subscription_id: str,
        upgrade: str | None = None,
        *,
        special_offer: bool | None = None,
        shared_authentication: bool | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
    ) -> CCBillOutcome:
        """billingApi's upgradeSubscription (Advanced Dynamic Upgrades) to catalogue upgrade ``upgrade``."""
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        option = self.catalogue.get(upgrade)
        params.update(self.catalogue.upgrade_variables(option, always=True))
        destination = self.subaccounts.get(option.client_accnum, option.client_subacc)
        if destination is not None:
            self._check_carried_credentials(destination, facts)
        if special_offer is not None:
            params["specialOffer"] = check.flag(special_offer, "specialOffer")
        if shared_authentication is not None:
            params["sharedAuthentication"] = check.flag(shared_authentication, "sharedAuthentication")
        return self._call(UPGRADE_SUBSCRIPTION, self.settings.billing_api_url, params, Expectation.APPROVAL,
                          target_subacc=_subacc(client_subacc))

    # --- Subscription Upgrade System (upgradeSubscription.cgi) ----------------------------------------------

    def allow_upgrade(
        self,
        client_subacc: str,
        *,
        subscription_id: str | None = None,
        username: str | None = None,
        upgrade: str | None = None,
    ) -> CCBillOutcome:
        """The backend ``allowUpgrade`` post: the consumer may then use the upgrade form for 30 minutes.

        ``client_subacc`` is the original subscription's subaccount. CCBill authenticates this post by the
        caller's IP address only; no DataLink login is sent.
        """
        try:
            params = self._upgrade_identity(client_subacc, subscription_id, username, upgrade)
        except CCBillCredentialsUnavailable as exc:  # only clientAccnum is needed from the secret, but still
            return self._log(CCBillOutcome(ALLOW_UPGRADE, OutcomeStatus.FAILED, f"{exc}; the request was not sent.",
                                           True, OutcomeKind.CREDENTIALS_UNAVAILABLE), {})
        params["action"] = ALLOW_UPGRADE
        return self._call(ALLOW_UPGRADE, self.settings.upgrade_url, params, Expectation.ALLOW_UPGRADE,
                          target_subacc=None, authenticated=False)

    def upgrade_form(
        self,
        client_subacc: str,
        *,
        subscription_id: str | None = None,
        username: str | None = None,
        upgrade: str | None = None,
        method: str = "enc",
        enc: str | None = None,
    ) -> UpgradeForm:
        """The form that sends the consumer to CCBill's upgrade page (no call to CCBill is made here).

        ``method="enc"``: Option 1, ``clientAccnum``, ``clientSubacc``, the TripleDES ``enc`` of the identity alone
        (the key comes from KMS) and, when several upgrades are configured, the three upgrade variables as fields of
        their own. ``method="backend_post"``: Option 2 step 2, after a successful allow_upgrade within the last 30
        minutes. The consumer's browser posts these fields and the form's button, ``submit`` (SUBMIT_BUTTON).
        ``enc``: an enc computed earlier for this identity (a link made for the subscriber's username, whose page
        may not read the username to compute it again).
        """
        if method == "backend_post":
            identity = self._upgrade_identity(client_subacc, subscription_id, username, upgrade)
            return UpgradeForm(self.settings.upgrade_url, {**identity, "action": UPGRADE_SUBSCRIPTION})
        if method != "enc":
            raise CCBillRequestInvalid("method", "must be 'enc' or 'backend_post'")
        identity = self._upgrade_identity(client_subacc, subscription_id, username, upgrade, spelling="examples")
        if enc is None:
            if self._encryptor is None:
                raise CCBillConfigurationError("no upgrade key is configured (BILLOPS_UPGRADE_KEY_CIPHERTEXT or "
                                               "BILLOPS_UPGRADE_KEY_SECRET_ARN)")
            enc = self._encryptor.enc(subscription_id=identity.get("subscriptionId"),
                                      username=identity.get("username"))
        variables = {k: v for k, v in identity.items() if k.startswith("upgrade")}
        fields = {"clientAccnum": identity["clientAccnum"], "clientSubacc": identity["clientSubacc"], "enc": enc,
                  **variables}
        return UpgradeForm(self.settings.upgrade_url, fields)

    def _upgrade_identity(self, client_subacc: str, subscription_id: str | None, username: str | None,
                          upgrade: str | None, *, spelling: str | None = None) -> dict[str, str]:
        which = check.exactly_one({"subscriptionId": subscription_id, "username": username})
        params = {
            "clientAccnum": self._load_credentials().client_accnum,
            "clientSubacc": check.client_subacc(client_subacc),
        }
        if which == "subscriptionId":
            params["subscriptionId"] = check.subscription_id(subscription_id)
        else:
            params["username"] = check.consumer_username(username)
        if len(self.catalogue):
            variables = self.catalogue.upgrade_variables(self.catalogue.get(upgrade))
            names = UPGRADE_VARIABLE_SPELLINGS[spelling or self.settings.upgrade_variable_spelling]
            params.update({name: variables[canonical]
                           for name, canonical in zip(names, UPGRADE_VARIABLE_SPELLINGS["examples"], strict=True)
                           if canonical in variables})
        elif upgrade is not None:
            raise CCBillRequestInvalid("upgrade", "no upgrades are configured (BILLOPS_UPGRADE_CATALOGUE)")
        return params

    # --- helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _recurring_terms(price: Any, period: Any, rebills: Any) -> tuple[Decimal | None, int | None, int | None]:
        if price is None and period is None and rebills is None:
            return None, None, None
        if price is None:
            raise CCBillRequestInvalid("recurringPrice", "is required with recurringPeriod and rebills")
        if period is None:
            raise CCBillRequestInvalid("recurringPeriod", "is required with recurringPrice")
        if rebills is None:
            raise CCBillRequestInvalid("rebills", "is required with recurringPrice (99 for until cancelled)")
        return (check.price(price, "recurringPrice"), check.period_days(period, "recurringPeriod"),
                check.rebills(rebills))

    def _check_carried_credentials(self, destination: Any, facts: SubscriptionFacts | None) -> None:
        facts = facts or SubscriptionFacts()
        origin = None
        if facts.client_subacc is not None:
            origin_accnum = facts.client_accnum
            if origin_accnum is None:
                try:
                    origin_accnum = self._load_credentials().client_accnum
                except CCBillCredentialsUnavailable:
                    origin_accnum = None  # the call itself will report the missing credentials as its outcome
            origin = self.subaccounts.get(origin_accnum, facts.client_subacc)
        destination.check_carried_credentials(username=facts.username, password_length=facts.password_length,
                                              origin=origin)

    def _load_credentials(self, force_refresh: bool = False) -> CCBillCredentials:
        if self._refresh_credentials_next:
            # The last call got -7, which may be a rotated password: read the secret afresh this time.
            self._refresh_credentials_next = False
            force_refresh = True
        return self._credentials.get(force_refresh=force_refresh)

    def _call(
        self,
        action: str,
        url: str,
        action_params: dict[str, str],
        expectation: Expectation,
        *,
        target_subacc: str | None,
        authenticated: bool = True,
        param_hints: dict[int, str] | None = None,
    ) -> CCBillOutcome:
        started = time.monotonic()
        refusal = self.breaker.refusal(action) if self.breaker is not None else None
        if refusal is not None:  # calls are paused after a run of -7 (circuit_breaker.py): nothing is sent
            return self._log(refusal, action_params)
        try:
            credentials = self._load_credentials()
        except CCBillCredentialsUnavailable as exc:
            return self._log(CCBillOutcome(action, OutcomeStatus.FAILED, f"{exc}; the request was not sent.", True,
                                           OutcomeKind.CREDENTIALS_UNAVAILABLE), action_params)

        def build(creds: CCBillCredentials) -> dict[str, str]:
            params = dict(creds.auth_params(target_subacc)) if authenticated else {}
            params.update(action_params)
            if authenticated:
                params["action"] = action
                if self.settings.response_format == "xml":
                    params["returnXML"] = "1"
            return params

        params = build(credentials)  # may raise CCBillRequestInvalid (subaccount scope): nothing sent yet
        attempts = 0
        refreshed = False
        while True:
            attempts += 1
            outcome = self._send_once(action, url, params, expectation, param_hints)
            if authenticated and not refreshed and _login_refused(outcome):
                refreshed = True
                fresh = self._refresh(credentials)
                if fresh is not None:
                    credentials, params = fresh, build(fresh)
                    self._log(outcome, params, attempt=attempts)
                    continue
            if (action in SAFE_TO_REPEAT and not outcome.succeeded and outcome.retryable
                    and outcome.kind in (OutcomeKind.TRANSPORT, OutcomeKind.HTTP_STATUS,
                                         OutcomeKind.UNREADABLE_RESPONSE)
                    and attempts <= self.settings.status_retries):
                # Not after -7 or a DataLink error: those may be a wrong password, and three in an hour lock us out.
                self._log(outcome, params, attempt=attempts)
                self._sleep(0.25 * 2 ** (attempts - 1))
                continue
            break
        if authenticated and outcome.code == -7 and outcome.kind is OutcomeKind.RESULT_CODE:
            # Never resent (it may have been applied), but the next call will not reuse a possibly stale password.
            self._refresh_credentials_next = True
        if self.breaker is not None:
            self.breaker.record(outcome, authenticated=authenticated)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return self._log(replace(outcome, attempts=attempts, elapsed_ms=elapsed_ms), params)

    def _refresh(self, used: CCBillCredentials) -> CCBillCredentials | None:
        """Fresh credentials if the secret changed since ``used`` was read (rotation), else None."""
        try:
            fresh = self._load_credentials(force_refresh=True)
        except CCBillCredentialsUnavailable:
            return None
        if (fresh.username, fresh.password, fresh.client_accnum) == (used.username, used.password, used.client_accnum):
            return None
        return fresh

    def _send_once(self, action: str, url: str, params: dict[str, str], expectation: Expectation,
                   param_hints: dict[int, str] | None) -> CCBillOutcome:
        try:
            response = self._session.post(
                url,
                data=params,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                allow_redirects=False,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome; exc text may hold the URL only
            return classify_transport_error(action, exc, self.settings)
        return interpret_http(action, expectation, response.status_code, response.content, param_hints=param_hints,
                              location=response.headers.get("Location"))

    @staticmethod
    def _log(outcome: CCBillOutcome, params: Mapping[str, str], attempt: int | None = None) -> CCBillOutcome:
        level = logging.INFO if outcome.succeeded else logging.WARNING
        details = {
            "ccbill_action": outcome.action,
            "ccbill_status": outcome.status.value,
            "ccbill_kind": outcome.kind.value,
            "ccbill_code": outcome.code,
            "ccbill_http_status": outcome.http_status,
            "ccbill_retryable": outcome.retryable,
            "ccbill_attempt": attempt or outcome.attempts,
            "ccbill_elapsed_ms": outcome.elapsed_ms,
            "ccbill_params": redact(params),
        }
        logger.log(level, "CCBill %s %s%s: %s", outcome.action, outcome.status.value,
                   "" if outcome.code is None else f" ({outcome.code})", outcome.meaning, extra=details)
        return outcome


def _subacc(value: str | None) -> str | None:
    return None if value is None else check.client_subacc(value)


def _login_refused(outcome: CCBillOutcome) -> bool:
    if outcome.kind is OutcomeKind.RESULT_CODE and outcome.code == -1:
        return True
    return outcome.kind is OutcomeKind.DATALINK_ERROR and outcome.data.get("datalinkError") == "02"


@lru_cache(maxsize=1)
def get_client() -> CCBillClient:
    """The container's client (pooled session, cached credentials, decrypted key): built once, reused."""
    return CCBillClient.from_env()


__all__ = [
    "SUBMIT_BUTTON",
    "CCBillClient",
    "UpgradeForm",
    "UpgradeOption",
    "classify_transport_error",
    "get_client",
    "new_session",
    "redact",
]
