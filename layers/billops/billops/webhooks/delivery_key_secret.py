"""The HMAC key of delivery keys that hash a payload (delivery_keys.py): held like the other secrets.

In AWS it lives in Secrets Manager (the template's DeliveryKeySecret, generated at deploy); Powertools Parameters
caches it per container, so a warm delivery makes no AWS call for it, and it is only fetched when a delivery needs a
hash (no transactionId, or a reversal). ``BILLOPS_DELIVERY_KEY_SECRET`` (plain) exists for setups without Secrets
Manager and wins when both are set. The local environment, given neither, uses a fixed development key.

Never rotate it: the key is part of every hash-keyed delivery's identity, so a new key would store a re-sent
delivery a second time.
"""

from __future__ import annotations

from billops.settings import Settings

KEY_CACHE_SECONDS = 24 * 3600
"""The key never changes; re-read once a day per container at most."""
LOCAL_DEVELOPMENT_KEY = b"billops-local-delivery-key (not a secret: BILLOPS_ENV=local only)"


class DeliveryKeyUnavailable(RuntimeError):
    """The key is not configured (outside the local environment) or could not be read right now."""


def delivery_key_secret(settings: Settings) -> bytes:
    """The configured HMAC key. Raises DeliveryKeyUnavailable (the receiver answers 503: CCBill delivers again)."""
    if settings.delivery_key_secret:
        return settings.delivery_key_secret.encode("utf-8")
    if not settings.delivery_key_secret_arn:
        if settings.is_local:
            return LOCAL_DEVELOPMENT_KEY
        raise DeliveryKeyUnavailable("BILLOPS_DELIVERY_KEY_SECRET_ARN is not set")
    from billops.storage.aws_clients import secrets_provider

    try:
        value = secrets_provider().get(settings.delivery_key_secret_arn, max_age=KEY_CACHE_SECONDS)
    except Exception as error:  # Powertools wraps every AWS failure in GetParameterError
        raise DeliveryKeyUnavailable(type(error).__name__) from error
    key = value.strip() if isinstance(value, str) else ""
    if not key:
        raise DeliveryKeyUnavailable("the delivery key secret is empty")
    return key.encode("utf-8")
