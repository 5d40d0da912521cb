"""Creating a consumer upgrade link: what ``POST /v1/subscriptions/{id}/upgrade_link`` answers.

    from billops.upgrade_page.upgrade_links import create_upgrade_link

    link = create_upgrade_link(subscription_record)        # the deployment's method, or method="enc" / "allow_upgrade"
    # {"url": "https://…/upgrade/<token>", "action_url": "https://bill.ccbill.com/jpost/upgradeSubscription.cgi",
    #  "form_fields": {"clientAccnum": "900100", "clientSubacc": "0000", "action": "upgradeSubscription", …},
    #  "expires_at": "2026-03-04T12:00:00Z", "method": "allow_upgrade", "operation_id": "op_…",
    #  "credential_warning": None}

``url`` is the hosted page to send the consumer to (``GET /upgrade/<token>``, which shows the current plan and the
offer and posts the form to CCBill). ``action_url`` + ``form_fields`` are CCBill's own form, for a merchant who
would rather host the button: exactly what CCBill's ``upgradeSubscription.cgi`` needs and nothing else.

The method defaults to the deployment's upgrade Security Type (billops.ccbill.upgrade_security: allow_upgrade where
the stack has a fixed egress IP, enc elsewhere); the other one is refused (400 naming ``method``), since CCBill
accepts one Security Type per account.

* ``method="enc"``: the fields carry the TripleDES ``enc`` of the subscriber's identity (the KMS-held key,
  billops.ccbill.upgrade_encryption); our page works until ``expires_at`` (``BILLOPS_UPGRADE_LINK_TTL_SECONDS``,
  72 hours by default), but the ``enc`` itself is a permanent credential of the subscription - the answer's
  ``credential_warning`` says so (ENC_CREDENTIAL_WARNING).
* ``method="allow_upgrade"``: CCBill must first receive the allowUpgrade backend post, from our whitelisted IP,
  and then gives the consumer 30 minutes. The post is not made here: an ``upgrade`` operation with
  ``method: allow_upgrade`` is recorded and put on the operations queue
  (billops.operations.operation_submission.record_and_queue, idempotency key ``upgrade-link:<nonce>``), its ID
  in the answer as ``operation_id`` - found by ``GET /v1/operations/{id}`` at once - and the worker makes it
  exactly as for any other operation (docs/operations.md, section 8). With the request's ``Idempotency-Key`` the
  nonce derives from it (link_tokens.nonce_for_request): a repeat - after a 500, or racing the first - names the
  same operation (sent again while it waits unsent), never a second one. The page shows the form only while that
  operation is ``awaiting_consumer`` and its window is open; ``form_fields`` (step 2: ``action=upgradeSubscription``,
  ``subscriptionId``) work only then. A consumer who comes after the window gets the backend post sent again by the
  page (once per link); the link itself expires at ``expires_at``, as an enc link does.

Refusals are ``billops.api_errors.ApiError``: 400 ``param_wrong_value`` naming the parameter (an unknown method, an
upgrade that is not in the catalogue, several upgrades configured and none named, ``enc`` without an upgrade key),
400 ``invalid_request`` when no upgrade is configured at all, 409 ``invalid_state_for_request`` for a subscription
that is expired or cancelled, whose account is not known yet, or that already is the offered plan, 409
``idempotency_key_reused`` when the key's allowUpgrade operation is for another upgrade, 500 ``internal_error`` when
that operation is recorded but could not be queued (repeat with the same key). A missing subscription is the
caller's 404.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from billops.api_errors import ApiError, internal_error, param_wrong_value
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.upgrade_encryption import ENC_CREDENTIAL_WARNING
from billops.ccbill.upgrade_security import method_refusal, upgrade_security_from_env
from billops.upgrade_page.link_tokens import (
    SecretSigningKeys,
    UpgradeLinkClaims,
    new_nonce,
    nonce_for_request,
    sign,
)
from billops.upgrade_page.page_settings import (
    UPGRADE_PATH_PREFIX,
    UpgradeLinkSettings,
    resolve_public_base_url,
)
from billops.upgrade_page.upgrade_offers import (
    choose_upgrade,
    is_current_plan,
    require_upgradable,
    upgrade_configuration,
)

logger = logging.getLogger(__name__)

METHODS = ("enc", "allow_upgrade")
IDENTITIES = ("subscription_id", "username")
"""How CCBill is told who the subscriber is: "subscriptionId OR username" (the guide), for enc and allowUpgrade."""
IDEMPOTENCY_PREFIX = "upgrade-link:"
RESEND_SUFFIX = ":again"

_keys: dict[tuple[str, int], SecretSigningKeys] = {}
_keys_lock = threading.Lock()


def signing_keys(settings: UpgradeLinkSettings) -> SecretSigningKeys:
    """The container's signing keys for the configured secret (one cache per secret)."""
    from billops.upgrade_page.page_settings import UpgradePageConfigurationError

    if not settings.secret_arn:
        raise UpgradePageConfigurationError("BILLOPS_UPGRADE_LINK_SECRET_ARN is not set")
    key = (settings.secret_arn, settings.secret_max_age)
    with _keys_lock:
        if key not in _keys:
            _keys[key] = SecretSigningKeys(settings.secret_arn, max_age=settings.secret_max_age)
        return _keys[key]


class ContainerSigningKeys:
    """The signing keys the environment names, looked up at each use (a configuration error surfaces as
    SigningKeyUnavailable when a token is checked, not as a failed cold start)."""

    def _keys(self) -> SecretSigningKeys:
        from billops.upgrade_page.link_tokens import SigningKeyUnavailable
        from billops.upgrade_page.page_settings import UpgradePageConfigurationError

        try:
            return signing_keys(UpgradeLinkSettings.from_env())
        except UpgradePageConfigurationError as exc:
            raise SigningKeyUnavailable(str(exc)) from None

    def signing_key(self) -> bytes:
        return self._keys().signing_key()

    def verification_keys(self) -> list[bytes]:
        return self._keys().verification_keys()


def reset_signing_keys() -> None:
    """Forget the cached keys (tests switch secrets between cases)."""
    with _keys_lock:
        _keys.clear()


def idempotency_key_for(nonce: str) -> str:
    """The idempotency key of the allowUpgrade operation of the link with ``nonce``."""
    return IDEMPOTENCY_PREFIX + nonce


def resend_key_for(nonce: str) -> str:
    """The key of the link's second allowUpgrade operation, made by the page for a consumer who came after the
    first window (consumer_page.py): one per link."""
    return IDEMPOTENCY_PREFIX + nonce + RESEND_SUFFIX


def create_upgrade_link(
    subscription_record: dict,
    *,
    method: str | None = None,
    upgrade_client_accnum: str | None = None,
    upgrade_client_subacc: str | None = None,
    upgrade_type_id: str | None = None,
    idempotency_key: str | None = None,
    identify_by: str | None = None,
    now: datetime | None = None,
) -> dict:
    """A signed, expiring link to the consumer upgrade page, and CCBill's form fields (see the module docstring).
    ``idempotency_key`` (the request's ``Idempotency-Key``) makes the link's nonce, so that a repeated request names
    the same allowUpgrade operation; without one every link is new."""
    if not isinstance(subscription_record, Mapping) or not subscription_record.get("subscription_id"):
        raise ValueError("create_upgrade_link needs the subscription's record (a missing one is the caller's 404)")
    try:
        security = upgrade_security_from_env()
    except CCBillConfigurationError:
        logger.exception("BILLOPS_UPGRADE_SECURITY is misconfigured")
        raise internal_error() from None
    method = method or security.link_method
    if method not in METHODS:
        raise param_wrong_value("method must be one of enc, allow_upgrade.", "method")
    refusal = method_refusal(security, method)
    if refusal is not None:
        raise param_wrong_value(refusal, "method")
    identify_by = identify_by or "subscription_id"
    if identify_by not in IDENTITIES:
        raise param_wrong_value("identify_by must be subscription_id (the default) or username.", "identify_by")
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must carry a time zone")
    record = subscription_record
    require_upgradable(record)
    configuration = upgrade_configuration()
    option = choose_upgrade(configuration.catalogue, upgrade_client_accnum=upgrade_client_accnum,
                            upgrade_client_subacc=upgrade_client_subacc, upgrade_type_id=upgrade_type_id)
    if is_current_plan(record, option):
        raise ApiError(409, "The subscription already is on the plan this upgrade offers.",
                       "invalid_state_for_request", "invalid_request", None)
    settings = UpgradeLinkSettings.from_env()
    subscription_id = str(record["subscription_id"])
    accnum, subacc = str(record["client_accnum"]), str(record["client_subacc"])
    username = _username_of(record) if identify_by == "username" else None
    try:
        form = configuration.form(accnum, subacc, subscription_id, option.key,
                                  "enc" if method == "enc" else "backend_post",
                                  username=username if method == "enc" else None)
    except CCBillRequestInvalid as exc:
        raise param_wrong_value(f"{exc.param} {exc.message}", exc.param) from None
    except CCBillConfigurationError:
        if method == "enc" and configuration.encryptor is None:
            raise param_wrong_value("enc upgrade links need the upgrade key (BILLOPS_UPGRADE_KEY_CIPHERTEXT), "
                                    "which this deployment does not have; use method allow_upgrade.",
                                    "method") from None
        raise
    # An allow_upgrade link lives as long as an enc one: a consumer who comes after CCBill's window gets the backend
    # post sent again by the page (once per link, consumer_page.py).
    ttl = settings.ttl_seconds
    expires_at = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=ttl)
    nonce = nonce_for_request(idempotency_key) if idempotency_key else new_nonce()
    claims = UpgradeLinkClaims(subscription_id=subscription_id, method=method, expires_at=expires_at, nonce=nonce,
                               upgrade=option.key, enc=form.fields["enc"] if username and method == "enc" else None)
    fields = dict(form.fields)
    if username is not None and method == "allow_upgrade":
        fields.pop("subscriptionId", None)  # the consumer's page adds the username; no answer or store holds it
    token = sign(claims, signing_keys(settings).signing_key())
    base_url = resolve_public_base_url(settings)
    link: dict[str, Any] = {
        "url": f"{base_url}{UPGRADE_PATH_PREFIX}{token}",
        "action_url": form.url,
        "form_fields": fields,
        "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": method,
        "identify_by": identify_by,
        # An enc is a bearer credential that outlives the link: every answer that hands one out says so.
        "credential_warning": ENC_CREDENTIAL_WARNING if method == "enc" else None,
    }
    if method == "allow_upgrade":
        # Last, once everything else worked: a refused link leaves no operation behind.
        link["operation_id"] = _record_allow_upgrade(subscription_id, subacc, option.key, nonce, username)
    else:
        _record_offer(subscription_id, option.key, method, moment)
    return link


def _record_offer(subscription_id: str, upgrade: str, method: str, moment: datetime) -> None:
    """Note the offer on the subscription record before the enc leaves: an UpgradeSuccess for a subscription never
    offered one raises UnexpectedUpgradeSale (billops.operations.settlement). No note, no link."""
    from billops.operations.subscription_facts_store import SubscriptionFactsStore
    from billops.settings import get_settings
    from billops.storage.errors import RevisionConflict, StorageUnavailable
    from billops.storage.subscriptions_table import SubscriptionsTable

    try:
        noted = SubscriptionFactsStore(SubscriptionsTable(get_settings().subscriptions_table)).record_upgrade_offer(
            subscription_id, upgrade, method, moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    except (StorageUnavailable, RevisionConflict):
        logger.exception("the upgrade offer could not be noted on the subscription")
        raise internal_error() from None
    if not noted:
        raise ApiError(409, "The subscription's record is not stored yet; try again in a moment.",
                       "invalid_state_for_request", "invalid_request", None)


def _username_of(record: Mapping[str, Any]) -> str:
    """The subscriber's username as CCBill knows it (from its webhooks; revealed with the merchant API's right to
    read personal data), or 409 when no webhook brought one."""
    from billops.privacy.subscriber_view import revealed_subscriber

    try:
        username = revealed_subscriber(record).get("username")
    except Exception:  # noqa: BLE001 - KMS or a damaged ciphertext: logged without the data
        logger.exception("the subscriber's username could not be read")
        raise internal_error() from None
    if not username:
        raise ApiError(409, "The subscription's username is not known (no webhook carried one); identify it by "
                            "subscription_id.", "invalid_state_for_request", "invalid_request", "identify_by")
    return str(username)


def _record_allow_upgrade(subscription_id: str, client_subacc: str, upgrade: str, nonce: str,
                          username: str | None = None) -> str:
    """Record the link's allowUpgrade operation and queue it: recorded first, so the ID the answer names can be
    looked up at once, however long the message waits behind the subscription's other operations. A username is
    sealed for the operation (billops.privacy.upgrade_identity); a repeat reuses the sealed value recorded first
    (a new seal would differ, and make the repeat look like another request)."""
    from billops.operations.operation_records import operation_id_for
    from billops.operations.operation_submission import NotQueued, RequestConflict, record_and_queue

    parameters: dict[str, Any] = {"method": "allow_upgrade", "upgrade": upgrade}
    if username is not None:
        parameters["username_ciphertext"] = _sealed_username(operation_id_for(idempotency_key_for(nonce)),
                                                             subscription_id, username)
    try:
        submitted = record_and_queue({
            "operation_type": "upgrade",
            "subscription_id": subscription_id,
            "idempotency_key": idempotency_key_for(nonce),
            "client_subacc": client_subacc,
            "parameters": parameters,
        })
    except NotQueued:  # logged; the merchant repeats the request with its Idempotency-Key, which sends it again
        raise internal_error() from None
    except RequestConflict:  # the key's operation is for another upgrade (a request that failed before answering)
        raise ApiError(409, "This Idempotency-Key was already used for a different request; the first request is "
                            "kept. Use a new key for a new request.", "idempotency_key_reused", "invalid_request",
                       "Idempotency-Key") from None
    return str(submitted.record["operation_id"])


def _sealed_username(operation_id: str, subscription_id: str, username: str) -> str:
    from billops.operations.operation_settings import operation_settings_from_env
    from billops.privacy.upgrade_identity import UpgradeIdentityUnavailable, seal_username
    from billops.storage.operations_table import OperationsTable

    existing = OperationsTable(operation_settings_from_env().operations_table).get(operation_id)
    sealed = ((existing or {}).get("parameters") or {}).get("username_ciphertext")
    if sealed:
        return str(sealed)
    try:
        return seal_username(subscription_id, username)
    except UpgradeIdentityUnavailable:
        logger.exception("the username could not be sealed for the upgrade")
        raise internal_error() from None


__all__ = ["ContainerSigningKeys", "create_upgrade_link", "idempotency_key_for", "reset_signing_keys", "signing_keys"]
