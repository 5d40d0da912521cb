"""Who is calling: HTTP Basic authentication with the API key as the user name and an empty password (ChargeBee's
``curl -u <key>:``), or ``Authorization: Bearer <key>`` (Stripe's), then the key's scopes.

Missing, malformed, unknown and revoked keys are all answered 401 ``api_authentication_failed`` (which one is not
said: that would help a guesser); repeated failures from one source 429 (failed_auth_limits.py). A valid key never
costs an AWS call while its lookup is cached (api_keys.KeyStore).
"""

from __future__ import annotations

import base64
import binascii
import logging

from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_keys import MAX_SECRET_LENGTH, ApiKey, KeyStore
from billops.merchant_api.failed_auth_limits import FailedAuthLimits
from billops.storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)


def presented_key(authorization: str | None) -> str | None:
    """The key in an Authorization header value, or None when there is none or it cannot be read."""
    value = (authorization or "").strip()
    if not value or len(value) > 4 * MAX_SECRET_LENGTH:
        return None
    scheme, _, credentials = value.partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "bearer":
        return credentials or None
    if scheme != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, _, password = decoded.partition(":")
    # The key is the user name; a client that put it in the password field is understood too.
    return user.strip() or password.strip() or None


class Authenticator:
    def __init__(self, keys: KeyStore, limits: FailedAuthLimits) -> None:
        self.keys = keys
        self.limits = limits

    def authenticate(self, authorization: str | None, source_ip: str) -> ApiKey:
        """The caller's key, or MerchantApiError 401 / 429 (500 when the keys table cannot be read)."""
        secret = presented_key(authorization)
        blocked = self.limits.blocked_here(source_ip or "unknown")
        if blocked is not None:
            # Checked before any lookup: a blocked source's keys are not read (each distinct bad key would cost a
            # DynamoDB read). A key this container already knows to be valid still passes.
            known = self.keys.known(secret)
            if known is not None:
                return known
            logger.info("API authentication refused: the source is blocked",
                        extra={"source_ip": source_ip, "key_presented": secret is not None, "throttled": True})
            raise failures.request_limit_exceeded(blocked.retry_after_seconds)
        key = None
        if secret is not None:
            try:
                key = self.keys.find(secret)
            except StorageUnavailable:
                logger.exception("the API keys table could not be read")
                raise failures.service_unavailable() from None
        if key is not None:
            return key
        verdict = self.limits.record_failure(source_ip or "unknown")
        logger.info("API authentication failed", extra={"source_ip": source_ip, "key_presented": secret is not None,
                                                        "throttled": verdict.blocked})
        if verdict.blocked:
            raise failures.request_limit_exceeded(verdict.retry_after_seconds)
        if secret is None:
            raise failures.authentication_failed(
                "Sorry, authentication failed. Send the API key as the user name of HTTP Basic authentication "
                "(curl -u <key>:).")
        raise failures.authentication_failed()


def require_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise failures.authorization_failed(scope)
