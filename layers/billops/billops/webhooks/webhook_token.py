"""Where the webhook URL's secret token comes from.

In AWS the token lives in Secrets Manager (the template generates it); Powertools Parameters caches it per
container for `max_age` seconds, so the warm path makes no AWS call and a rotated token is picked up without a
redeploy. BILLOPS_WEBHOOK_TOKEN (plain) exists for setups without Secrets Manager; it wins when both are set.
"""

from __future__ import annotations

from billops.settings import Settings

TOKEN_CACHE_SECONDS = 300


class TokenUnavailable(RuntimeError):
    """The secret is configured but could not be read right now (a transient AWS failure)."""


def expected_token(settings: Settings) -> str | None:
    """The configured token, or None when none is configured (which rejects every delivery)."""
    if settings.webhook_token:
        return settings.webhook_token
    if not settings.webhook_token_secret_arn:
        return None
    from billops.storage.aws_clients import secrets_provider

    try:
        value = secrets_provider().get(settings.webhook_token_secret_arn, max_age=TOKEN_CACHE_SECONDS)
    except Exception as error:  # Powertools wraps every AWS failure in GetParameterError
        raise TokenUnavailable(type(error).__name__) from error
    token = value.strip() if isinstance(value, str) else ""
    return token or None
