"""Settings of upgrade links and the consumer upgrade page (docs/upgrade-page.md), from BILLOPS_* variables.

| variable | default | |
|---|---|---|
| ``BILLOPS_UPGRADE_LINK_SECRET_ARN`` | - (required) | the secret whose SecretString is the HMAC key |
| ``BILLOPS_UPGRADE_LINK_SECRET_MAX_AGE`` | 300 | seconds the key is cached per container |
| ``BILLOPS_UPGRADE_LINK_TTL_SECONDS`` | 259200 (72 h) | lifetime of an ``enc`` link (300 s to 30 days) |
| ``BILLOPS_PUBLIC_BASE_URL`` | - | the base of link URLs (``<base>/upgrade/<token>``), e.g. a custom domain |
| ``BILLOPS_PUBLIC_BASE_URL_PARAMETER`` | - | else: the SSM parameter holding it (the template's ``PublicBaseUrlParameter``) |
| local (``BILLOPS_ENV=local``) | ``http://127.0.0.1:$BILLOPS_API_PORT`` (3000) | the local stack's API |

Why an SSM parameter rather than the API's URL in the environment: a function that is an integration of the HTTP
API cannot name the API in its own environment (the API's definition names the function: a circular dependency
that ``sam validate`` does not see, but CloudFormation refuses). The parameter breaks the cycle: it depends on the
API, and the functions know it only by its name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_TTL_SECONDS = 72 * 3600
MIN_TTL_SECONDS = 300
MAX_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_LOCAL_API_PORT = "3000"
UPGRADE_PATH_PREFIX = "/upgrade/"


class UpgradePageConfigurationError(RuntimeError):
    """A setting of upgrade links is missing or wrong (the cause is in the message; no secret is ever in it)."""


@dataclass(frozen=True)
class UpgradeLinkSettings:
    secret_arn: str | None = None
    secret_max_age: int = 300
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    public_base_url: str | None = None
    public_base_url_parameter: str | None = None
    local: bool = True
    local_api_port: str = DEFAULT_LOCAL_API_PORT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UpgradeLinkSettings:
        env = os.environ if env is None else env
        return cls(
            secret_arn=(env.get("BILLOPS_UPGRADE_LINK_SECRET_ARN") or "").strip() or None,
            secret_max_age=_whole(env, "BILLOPS_UPGRADE_LINK_SECRET_MAX_AGE", 300, 0, 86400),
            ttl_seconds=_whole(env, "BILLOPS_UPGRADE_LINK_TTL_SECONDS", DEFAULT_TTL_SECONDS, MIN_TTL_SECONDS,
                               MAX_TTL_SECONDS),
            public_base_url=(env.get("BILLOPS_PUBLIC_BASE_URL") or "").strip() or None,
            public_base_url_parameter=(env.get("BILLOPS_PUBLIC_BASE_URL_PARAMETER") or "").strip() or None,
            local=(env.get("BILLOPS_ENV") or "local").strip() == "local",
            local_api_port=(env.get("BILLOPS_API_PORT") or "").strip() or DEFAULT_LOCAL_API_PORT,
        )


def resolve_public_base_url(settings: UpgradeLinkSettings, *, parameter_reader=None) -> str:
    """The base of link URLs, without a trailing slash (see the module docstring for the order)."""
    value = settings.public_base_url
    source = "BILLOPS_PUBLIC_BASE_URL"
    if value is None and settings.public_base_url_parameter and not settings.local:
        source = f"SSM parameter {settings.public_base_url_parameter}"
        value = (parameter_reader or _read_parameter)(settings.public_base_url_parameter)
    if value is None and settings.local:
        value = f"http://127.0.0.1:{settings.local_api_port}"
    if not value:
        raise UpgradePageConfigurationError("the public base URL of upgrade links is not configured "
                                            "(BILLOPS_PUBLIC_BASE_URL or BILLOPS_PUBLIC_BASE_URL_PARAMETER)")
    return check_base_url(value, source, allow_http=settings.local)


def check_base_url(value: str, source: str, *, allow_http: bool) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UpgradePageConfigurationError(f"{source} must be an http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise UpgradePageConfigurationError(f"{source} must use https outside the local stack")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UpgradePageConfigurationError(f"{source} must not carry credentials, a query or a fragment")
    return value.strip().rstrip("/")


def _read_parameter(name: str) -> str | None:
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_parameter(name, max_age=3600)
    except parameters.exceptions.GetParameterError:
        raise UpgradePageConfigurationError(f"cannot read the SSM parameter {name}") from None
    return str(value).strip() or None


def _whole(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UpgradePageConfigurationError(f"{name} must be a whole number of seconds, got {text!r}") from None
    if not minimum <= value <= maximum:
        raise UpgradePageConfigurationError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value
