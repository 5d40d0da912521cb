"""Where upgrade links point (docs/upgrade-page.md). The settings themselves (BILLOPS_UPGRADE_LINK_*,
BILLOPS_PUBLIC_BASE_URL...) live with every other setting, in billops.settings.upgrade_links; their names stay
importable from here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from billops.settings.upgrade_links import (
    DEFAULT_LOCAL_API_PORT,
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    UpgradeLinkSettings,
    UpgradePageConfigurationError,
)

UPGRADE_PATH_PREFIX = "/upgrade/"


def resolve_public_base_url(settings: UpgradeLinkSettings, *, parameter_reader=None) -> str:
    """The base of link URLs, without a trailing slash: BILLOPS_PUBLIC_BASE_URL, else (deployed) the SSM parameter
    BILLOPS_PUBLIC_BASE_URL_PARAMETER names, else (local) the local stack's API (billops.settings.upgrade_links)."""
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


__all__ = ["DEFAULT_LOCAL_API_PORT", "DEFAULT_TTL_SECONDS", "MAX_TTL_SECONDS", "MIN_TTL_SECONDS",
           "UPGRADE_PATH_PREFIX", "UpgradeLinkSettings", "UpgradePageConfigurationError", "check_base_url",
           "resolve_public_base_url"]
