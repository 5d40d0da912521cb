"""What the CCBill client, its circuit breaker and the upgrade key read (docs/ccbill-client.md).

Locally (``BILLOPS_ENV=local``) the URLs default to the CCBill sandbox on 127.0.0.1, so a laptop can never reach the
real CCBill by accident; anywhere else (``BILLOPS_ENV`` unset included) they default to CCBill's production hosts,
and a URL that is not https is refused (the DataLink password travels in the request body).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit


from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from billops.ccbill.errors import CCBillConfigurationError
from billops.settings.base import Flag, Number, SettingsError, SettingsModel, Text, Whole, _lower_blank_is_default
from billops.settings.webhooks import DeploymentSettings

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
DEFAULT_BREAKER_THRESHOLD = 3

UPGRADE_VARIABLE_SPELLINGS = {
    "examples": ("upgradeClientAccnum", "upgradeClientSubacc", "upgradeTypeId"),
    "tables": ("upgradeclientAccnum", "upgradeclientSubacc", "upgradeTypeID"),
}


class CCBillSettingsError(SettingsError, CCBillConfigurationError):
    """A CCBill setting that cannot be honoured: callers that handle the client's configuration errors at run time
    (an upgrade link answered 503 rather than a crash) catch it as CCBillConfigurationError."""


class _CCBillGroup(SettingsModel):
    settings_error: ClassVar[type[SettingsError]] = CCBillSettingsError


def _choice(*values: str):
    return Annotated[Literal[values], BeforeValidator(_lower_blank_is_default)]  # type: ignore[valid-type]


_URLS = {"sms_url": (PRODUCTION_SMS_URL, SMS_PATH), "billing_api_url": (PRODUCTION_BILLING_API_URL, BILLING_API_PATH),
         "upgrade_url": (PRODUCTION_UPGRADE_URL, UPGRADE_PATH)}


class CCBillClientSettings(DeploymentSettings, _CCBillGroup):
    sandbox_port: Whole = Field(DEFAULT_SANDBOX_PORT, ge=0, le=65535, validation_alias="BILLOPS_SANDBOX_PORT")
    """Locally, where the sandbox answers (the default URLs)."""
    sms_url: Text = Field(None, validation_alias="BILLOPS_CCBILL_SMS_URL", validate_default=True)
    billing_api_url: Text = Field(None, validation_alias="BILLOPS_CCBILL_BILLING_API_URL", validate_default=True)
    upgrade_url: Text = Field(None, validation_alias="BILLOPS_CCBILL_UPGRADE_URL", validate_default=True)
    connect_timeout: Number = Field(DEFAULT_CONNECT_TIMEOUT, ge=0.001, validation_alias="BILLOPS_CCBILL_CONNECT_TIMEOUT")
    read_timeout: Number = Field(DEFAULT_READ_TIMEOUT, ge=0.001, validation_alias="BILLOPS_CCBILL_READ_TIMEOUT")
    response_format: _choice("xml", "csv") = Field("xml", validation_alias="BILLOPS_CCBILL_RESPONSE_FORMAT")
    """"xml" sends returnXML=1; "csv" leaves CCBill's default."""
    pool_maxsize: Whole = Field(10, ge=1, validation_alias="BILLOPS_CCBILL_POOL_SIZE")
    status_retries: Whole = Field(2, ge=0, validation_alias="BILLOPS_CCBILL_STATUS_RETRIES")
    """Extra attempts for viewSubscriptionStatus / allowUpgrade only."""
    credentials_secret_arn: Text = Field(None, validation_alias="BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN")
    credentials_max_age: Whole = Field(300, ge=1, validation_alias="BILLOPS_CCBILL_CREDENTIALS_MAX_AGE")
    upgrade_catalogue: Text = Field(None, validation_alias="BILLOPS_UPGRADE_CATALOGUE")
    """JSON or a path (billops.ccbill.upgrade_catalogue)."""
    subaccounts: Text = Field(None, validation_alias="BILLOPS_CCBILL_SUBACCOUNTS")
    """JSON or a path (billops.ccbill.subaccount_settings)."""
    upgrade_variable_spelling: _choice("examples", "tables") = Field(
        "examples", validation_alias="BILLOPS_UPGRADE_VARIABLE_SPELLING")
    """How the backend-post requests (allowUpgrade, its step-2 form) spell the upgrade variables: the guide's
    examples write ``upgradeClientAccnum/upgradeClientSubacc/upgradeTypeId``, its Option 2 tables
    ``upgradeclientAccnum/upgradeclientSubacc/upgradeTypeID`` (docs/ccbill-assumptions.md). The enc form always
    uses the first: its table and example agree."""

    @field_validator("sms_url", "billing_api_url", "upgrade_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str:
        local = info.data.get("environment") == "local"
        production, path = _URLS[str(info.field_name)]
        if value is None:
            return f"http://127.0.0.1:{info.data.get('sandbox_port', DEFAULT_SANDBOX_PORT)}{path}" if local else production
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        if parts.scheme == "http" and not local:
            raise ValueError("must use https outside the local stack (credentials are sent)")
        if parts.username or parts.password or parts.query:
            raise ValueError("must not carry credentials or a query string")
        return value


class BreakerSettings(_CCBillGroup):
    breaker_threshold: Whole = Field(DEFAULT_BREAKER_THRESHOLD, ge=0,
                                     validation_alias="BILLOPS_CCBILL_BREAKER_THRESHOLD")
    """Consecutive -7 answers that open the circuit breaker (0 = never; billops.ccbill.circuit_breaker)."""


class UpgradeSecuritySettings(_CCBillGroup):
    upgrade_security: _choice("auto", "encryption", "backend_post") = Field(
        "auto", validation_alias="BILLOPS_UPGRADE_SECURITY")
    fixed_egress_ip: Flag = Field(False, validation_alias="BILLOPS_FIXED_EGRESS_IP")
    """Whether the stack can make the allowUpgrade post from a whitelisted address (billops.ccbill.upgrade_security)."""


_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")


class UpgradeKeySettings(_CCBillGroup):
    """The TripleDES key behind ``enc`` (held as KMS ciphertext) and how ``enc`` is made
    (billops.ccbill.upgrade_encryption, docs/ccbill-assumptions.md)."""

    upgrade_key_ciphertext: Text = Field(None, validation_alias="BILLOPS_UPGRADE_KEY_CIPHERTEXT", repr=False)
    upgrade_key_secret_arn: Text = Field(None, validation_alias="BILLOPS_UPGRADE_KEY_SECRET_ARN")
    upgrade_kms_key_id: Text = Field(None, validation_alias="BILLOPS_UPGRADE_KMS_KEY_ID")
    enc_plaintext: _choice("query", "bare") = Field("query", validation_alias="BILLOPS_UPGRADE_ENC_PLAINTEXT")
    enc_key_encoding: _choice("hex", "hexmod", "raw") = Field("hexmod",
                                                              validation_alias="BILLOPS_UPGRADE_ENC_KEY_ENCODING")
    enc_mode: _choice("ecb", "cbc") = Field("ecb", validation_alias="BILLOPS_UPGRADE_ENC_MODE")
    enc_padding: _choice("space", "pkcs7", "zero", "none") = Field("space", validation_alias="BILLOPS_UPGRADE_ENC_PADDING")
    enc_iv: Text = Field(None, validation_alias="BILLOPS_UPGRADE_ENC_IV")

    @field_validator("enc_iv")
    @classmethod
    def _iv(cls, value: str | None) -> str | None:
        if value is not None and not _HEX16.match(value):
            raise ValueError("must be 16 hex digits")
        return value


class CCBillSettings(CCBillClientSettings, BreakerSettings, UpgradeSecuritySettings, UpgradeKeySettings):
    """Everything a function that calls CCBill reads."""
