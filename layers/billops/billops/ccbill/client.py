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
from functools import lru_cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from billops.ccbill.answer_interpretation import Expectation, interpret_http
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import (
    CCBillCredentials,
    CCBillCredentialsUnavailable,
    CredentialsProvider,
    SecretsManagerCredentials,
)
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.outcomes import CCBillOutcome, OutcomeKind, OutcomeStatus
from billops.ccbill.request_builder import (
    ALLOW_UPGRADE,
    SAFE_TO_REPEAT,
    UPGRADE_SUBSCRIPTION,
    CCBillRequest,
    RequestBuilder,
)
from billops.ccbill.subaccount_settings import SubaccountDirectory
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue, UpgradeOption

logger = logging.getLogger(__name__)

# CCBill's action names, what is safe to repeat: request_builder.py (imported here, the names the client sends).
_CREDENTIAL_PARAMS = frozenset({"username", "password"})


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
        self._credentials = credentials
        self._session = session or new_session(settings.pool_maxsize)
        self.builder = RequestBuilder(
            settings,
            catalogue if catalogue is not None else UpgradeCatalogue.from_config(settings.upgrade_catalogue),
            subaccounts if subaccounts is not None else SubaccountDirectory.from_config(settings.subaccounts),
            lambda: self._load_credentials().client_accnum,
        )
        """Builds and checks each request before it is sent (request_builder.py); sending is this class's job."""
        self._encryptor = encryptor  # an upgrade_encryption.UpgradeEncryptor, for upgrade_form(method="enc")
        self._sleep = sleep
        self._refresh_credentials_next = False
        self.breaker = breaker  # a circuit_breaker.CircuitBreaker shared by every worker, or None

    # The builder's settings, catalogue and subaccounts are the client's: one of each.
    @property
    def settings(self) -> CCBillClientSettings:
        return self.builder.settings

    @settings.setter
    def settings(self, settings: CCBillClientSettings) -> None:
        self.builder.settings = settings

    @property
    def catalogue(self) -> UpgradeCatalogue:
        return self.builder.catalogue

    @property
    def subaccounts(self) -> SubaccountDirectory:
        return self.builder.subaccounts

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
        return self.send(self.builder.view_subscription_status(subscription_id, client_subacc=client_subacc))

    def cancel_subscription(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillOutcome:
        return self.send(self.builder.cancel_subscription(subscription_id, client_subacc=client_subacc))

    def discount_subscription(self, subscription_id: str, **arguments: Any) -> CCBillOutcome:
        """Lower the recurring price (RequestBuilder.discount_subscription: the arguments and rules)."""
        return self.send(self.builder.discount_subscription(subscription_id, **arguments))

    def extend_subscription(self, subscription_id: str, days: int, *,
                            client_subacc: str | None = None) -> CCBillOutcome:
        """Push the subscription's next billing date ``days`` later (``extendLength``)."""
        return self.send(self.builder.extend_subscription(subscription_id, days, client_subacc=client_subacc))

    def refund_transaction(self, subscription_id: str, **arguments: Any) -> CCBillOutcome:
        """Refund a transaction (its ID in ``subscriptionId``); no amount means CCBill's full refund."""
        return self.send(self.builder.refund_transaction(subscription_id, **arguments))

    def void_transaction(self, subscription_id: str, **arguments: Any) -> CCBillOutcome:
        return self.send(self.builder.void_transaction(subscription_id, **arguments))

    def void_or_refund_transaction(self, subscription_id: str, **arguments: Any) -> CCBillOutcome:
        """Void if CCBill still can, otherwise refund (beware: a void may cover more than ``amount``)."""
        return self.send(self.builder.void_or_refund_transaction(subscription_id, **arguments))

    def charge_by_previous_transaction_id(self, subscription_id: str, **arguments: Any) -> CCBillOutcome:
        """Charge the card behind ``subscription_id`` for a new subscription (RequestBuilder's method: the
        arguments). On success ``outcome.data["subscriptionId"]`` is the new subscription; the original one is left
        as it is. Never retried: on ``unknown`` look for the UpSaleSuccess webhook or ask CCBill before charging
        again."""
        return self.send(self.builder.charge_by_previous_transaction_id(subscription_id, **arguments))

    def upgrade_by_previous_transaction(self, subscription_id: str, upgrade: str | None = None,
                                        **arguments: Any) -> CCBillOutcome:
        """chargeByPreviousTransactionId with the price point of catalogue upgrade ``upgrade``."""
        return self.send(self.builder.upgrade_by_previous_transaction(subscription_id, upgrade, **arguments))

    def upgrade_subscription(self, subscription_id: str, upgrade: str | None = None,
                             **arguments: Any) -> CCBillOutcome:
        """billingApi's upgradeSubscription (Advanced Dynamic Upgrades) to catalogue upgrade ``upgrade``."""
        return self.send(self.builder.upgrade_subscription(subscription_id, upgrade, **arguments))

    def allow_upgrade(self, client_subacc: str, **identity: Any) -> CCBillOutcome:
        """The backend ``allowUpgrade`` post: the consumer may then use the upgrade form for 30 minutes."""
        try:
            request = self.builder.allow_upgrade(client_subacc, **identity)
        except CCBillCredentialsUnavailable as exc:  # only clientAccnum is needed from the secret, but still
            return self._log(CCBillOutcome(ALLOW_UPGRADE, OutcomeStatus.FAILED, f"{exc}; the request was not sent.",
                                           True, OutcomeKind.CREDENTIALS_UNAVAILABLE), {})
        return self.send(request)

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
            identity = self.builder.upgrade_identity(client_subacc, subscription_id, username, upgrade)
            return UpgradeForm(self.settings.upgrade_url, {**identity, "action": UPGRADE_SUBSCRIPTION})
        if method != "enc":
            raise CCBillRequestInvalid("method", "must be 'enc' or 'backend_post'")
        identity = self.builder.upgrade_identity(client_subacc, subscription_id, username, upgrade, spelling="examples")
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

    def _load_credentials(self, force_refresh: bool = False) -> CCBillCredentials:
        if self._refresh_credentials_next:
            # The last call got -7, which may be a rotated password: read the secret afresh this time.
            self._refresh_credentials_next = False
            force_refresh = True
        return self._credentials.get(force_refresh=force_refresh)

    def send(self, request: CCBillRequest) -> CCBillOutcome:
        """Send a built request (RequestBuilder), with the login when it is authenticated: the one place a request
        leaves for CCBill (see the module docstring for what is repeated, and when)."""
        action, url, action_params, expectation = request.action, request.url, request.params, request.expectation
        target_subacc, authenticated, param_hints = request.target_subacc, request.authenticated, request.param_hints
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
