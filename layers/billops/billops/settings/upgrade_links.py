"""What upgrade links and the consumer upgrade page read (docs/upgrade-page.md).

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

from typing import ClassVar

from pydantic import Field

from billops.settings.base import SettingsError, Text, Whole
from billops.settings.webhooks import DeploymentSettings

DEFAULT_TTL_SECONDS = 72 * 3600
MIN_TTL_SECONDS = 300
MAX_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_LOCAL_API_PORT = 3000


class UpgradePageConfigurationError(RuntimeError):
    """A setting of upgrade links is missing or wrong (the cause is in the message; no secret is ever in it)."""


class UpgradeLinkSettingsError(SettingsError, UpgradePageConfigurationError):
    """An upgrade link setting that cannot be honoured (callers handle it as UpgradePageConfigurationError)."""


class UpgradeLinkSettings(DeploymentSettings):
    settings_error: ClassVar[type[SettingsError]] = UpgradeLinkSettingsError
    secret_arn: Text = Field(None, validation_alias="BILLOPS_UPGRADE_LINK_SECRET_ARN")
    secret_max_age: Whole = Field(300, ge=0, le=86400, validation_alias="BILLOPS_UPGRADE_LINK_SECRET_MAX_AGE")
    ttl_seconds: Whole = Field(DEFAULT_TTL_SECONDS, ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS,
                               validation_alias="BILLOPS_UPGRADE_LINK_TTL_SECONDS")
    public_base_url: Text = Field(None, validation_alias="BILLOPS_PUBLIC_BASE_URL")
    public_base_url_parameter: Text = Field(None, validation_alias="BILLOPS_PUBLIC_BASE_URL_PARAMETER")
    local_api_port: Whole = Field(DEFAULT_LOCAL_API_PORT, ge=0, le=65535, validation_alias="BILLOPS_API_PORT")

    @property
    def local(self) -> bool:
        return self.is_local
