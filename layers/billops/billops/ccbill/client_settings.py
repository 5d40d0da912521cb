"""The CCBill client's settings, from BILLOPS_CCBILL_* environment variables (docs/ccbill-client.md).

Locally (``BILLOPS_ENV=local``, the default) the URLs default to the CCBill sandbox on 127.0.0.1, so a laptop can
never reach the real CCBill by accident; anywhere else they default to CCBill's production hosts, and a URL that is
not https is refused (the DataLink password travels in the request body).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from billops.ccbill.errors import CCBillConfigurationError

SMS_PATH = "/utils/subscriptionManagement.cgi"
BILLING_API_PATH = "/jpost/billingApi.cgi"
UPGRADE_PATH = "/jpost/upgradeSubscription.cgi"

PRODUCTION_SMS_URL = "https://datalink.ccbill.com" + SMS_PATH
PRODUCTION_BILLING_API_URL = "https://bill.ccbill.com" + BILLING_API_PATH
PRODUCTION_UPGRADE_URL = "https://bill.ccbill.com" + UPGRADE_PATH
DEFAULT_SANDBOX_PORT = 4000

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 40.0
"""chargeByPreviousTransactionId waits for the card network; a Lambda calling it needs a timeout above this."""


@dataclass(frozen=True)
class CCBillClientSettings:
    sms_url: str = PRODUCTION_SMS_URL
    billing_api_url: str = PRODUCTION_BILLING_API_URL
    upgrade_url: str = PRODUCTION_UPGRADE_URL
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    response_format: str = "xml"  # "xml" sends returnXML=1; "csv" leaves CCBill's default
    pool_maxsize: int = 10
    status_retries: int = 2  # extra attempts for viewSubscriptionStatus / allowUpgrade only
    credentials_secret_arn: str | None = None
    credentials_max_age: int = 300
    upgrade_catalogue: str | None = None  # JSON or a path (upgrade_catalogue.py)
    subaccounts: str | None = None  # JSON or a path (subaccount_settings.py)
    upgrade_variable_spelling: str = "examples"
    """How the backend-post requests (allowUpgrade, its step-2 form) spell the upgrade variables: the guide's
    examples write ``upgradeClientAccnum/upgradeClientSubacc/upgradeTypeId``, its Option 2 tables
    ``upgradeclientAccnum/upgradeclientSubacc/upgradeTypeID`` (docs/ccbill-assumptions.md). The enc form always
    uses the first: its table and example agree."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CCBillClientSettings:
        env = os.environ if env is None else env
        local = (env.get("BILLOPS_ENV") or "local").strip() == "local"
        if local:
            port = (env.get("BILLOPS_SANDBOX_PORT") or "").strip() or str(DEFAULT_SANDBOX_PORT)
            base = f"http://127.0.0.1:{port}"
            defaults = (base + SMS_PATH, base + BILLING_API_PATH, base + UPGRADE_PATH)
        else:
            defaults = (PRODUCTION_SMS_URL, PRODUCTION_BILLING_API_URL, PRODUCTION_UPGRADE_URL)
        urls = []
        for name, default in zip(("BILLOPS_CCBILL_SMS_URL", "BILLOPS_CCBILL_BILLING_API_URL",
                                  "BILLOPS_CCBILL_UPGRADE_URL"), defaults, strict=True):
            url = (env.get(name) or "").strip() or default
            _check_url(name, url, allow_http=local)
            urls.append(url)
        response_format = (env.get("BILLOPS_CCBILL_RESPONSE_FORMAT") or "xml").strip().lower()
        if response_format not in ("xml", "csv"):
            raise CCBillConfigurationError("BILLOPS_CCBILL_RESPONSE_FORMAT must be xml or csv")
        return cls(
            sms_url=urls[0],
            billing_api_url=urls[1],
            upgrade_url=urls[2],
            connect_timeout=_number(env, "BILLOPS_CCBILL_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            read_timeout=_number(env, "BILLOPS_CCBILL_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
            response_format=response_format,
            pool_maxsize=int(_number(env, "BILLOPS_CCBILL_POOL_SIZE", 10)),
            status_retries=int(_number(env, "BILLOPS_CCBILL_STATUS_RETRIES", 2, minimum=0)),
            credentials_secret_arn=(env.get("BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN") or "").strip() or None,
            credentials_max_age=int(_number(env, "BILLOPS_CCBILL_CREDENTIALS_MAX_AGE", 300)),
            upgrade_catalogue=env.get("BILLOPS_UPGRADE_CATALOGUE") or None,
            subaccounts=env.get("BILLOPS_CCBILL_SUBACCOUNTS") or None,
            upgrade_variable_spelling=_spelling(env),
        )


UPGRADE_VARIABLE_SPELLINGS = {
    "examples": ("upgradeClientAccnum", "upgradeClientSubacc", "upgradeTypeId"),
    "tables": ("upgradeclientAccnum", "upgradeclientSubacc", "upgradeTypeID"),
}


def _spelling(env: Mapping[str, str]) -> str:
    value = (env.get("BILLOPS_UPGRADE_VARIABLE_SPELLING") or "examples").strip().lower()
    if value not in UPGRADE_VARIABLE_SPELLINGS:
        raise CCBillConfigurationError("BILLOPS_UPGRADE_VARIABLE_SPELLING must be examples or tables")
    return value


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.001) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise CCBillConfigurationError(f"{name} must be a number, got {text!r}") from None
    if value < minimum:
        raise CCBillConfigurationError(f"{name} must be at least {minimum}, got {text!r}")
    return value


def _check_url(name: str, url: str, *, allow_http: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CCBillConfigurationError(f"{name} must be an http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise CCBillConfigurationError(f"{name} must use https outside the local stack (credentials are sent)")
    if parts.username or parts.password or parts.query:
        raise CCBillConfigurationError(f"{name} must not carry credentials or a query string")
