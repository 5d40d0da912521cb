"""The deployment, the tables, and what webhook intake (and CCBill's postbacks, authenticated alike) reads.

Every setting is documented in the README's configuration table. Secrets are never held here in clear unless the
deployment put them in the environment itself (the local stack does; AWS deployments give a Secrets Manager ARN).
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from billops.settings.base import LOCAL, CommaSeparated, Flag, SettingsError, SettingsModel, Text, Whole

CCBILL_WEBHOOK_CIDRS = ("64.38.212.0/24", "64.38.215.0/24", "64.38.240.0/24", "64.38.241.0/24")
"""CCBill's documented webhook source ranges (ccbill-facts.md section 1.2)."""

LOOPBACK_CIDR = "127.0.0.0/8"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_CCBILL_TIMEZONE = "America/Phoenix"


_ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")


def _environment_name(value: object) -> object:
    if isinstance(value, str):
        value = value.strip().lower() or None
        if value is not None and not _ENVIRONMENT_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment name (local, dev, prod...)")
    return value


EnvironmentName = Annotated[str | None, BeforeValidator(_environment_name)]


class DeploymentSettings(SettingsModel):
    environment: EnvironmentName = Field(None, validation_alias="BILLOPS_ENV")
    """``local`` (the local stack), or the deployment's name (``dev``, ``prod``). Unset: a deployment, never
    local - nothing meant for a laptop is trusted."""

    @property
    def is_local(self) -> bool:
        return self.environment == LOCAL


class TablesSettings(DeploymentSettings):
    events_table: Text = Field("billops-events", validation_alias="BILLOPS_EVENTS_TABLE")
    subscriptions_table: Text = Field("billops-subscriptions", validation_alias="BILLOPS_SUBSCRIPTIONS_TABLE")
    delivery_log_table: Text = Field("billops-delivery-log", validation_alias="BILLOPS_DELIVERY_LOG_TABLE")
    subscription_history_table: Text = Field("billops-subscription-history",
                                             validation_alias="BILLOPS_SUBSCRIPTION_HISTORY_TABLE")
    """A subscription's history entries and personal data, beside its bounded state item (docs/scale.md)."""


class PassThroughSettings(DeploymentSettings):
    """Which pass-through fields are kept in clear, and which one becomes the customer reference."""

    passthrough_clear_fields: CommaSeparated = Field((), validation_alias="BILLOPS_PASSTHROUGH_CLEAR_FIELDS")
    """Pass-through fields (X-..., referringUrl) the merchant declared safe to keep in clear; every other one is
    personal data (billops.privacy.subscriber_data)."""
    customer_reference_field: Text = Field(None, validation_alias="BILLOPS_CUSTOMER_REFERENCE_FIELD")
    """The clear pass-through field that becomes a subscription's customer_reference (e.g. X-user_id)."""

    @field_validator("passthrough_clear_fields")
    @classmethod
    def _only_pass_through_fields(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from billops.privacy.subscriber_data import is_pass_through

        for name in names:
            if not is_pass_through(name):
                raise ValueError(f"names {name!r}, which is not a pass-through field: only X-... fields (and "
                                 "referringUrl) can be declared safe to keep in clear.")
        return names

    @model_validator(mode="after")
    def _reference_is_declared_clear(self) -> PassThroughSettings:
        reference = self.customer_reference_field
        if reference is not None and reference.lower() not in {name.lower() for name in self.passthrough_clear_fields}:
            raise ValueError(f"BILLOPS_CUSTOMER_REFERENCE_FIELD is {reference!r}, which "
                             "BILLOPS_PASSTHROUGH_CLEAR_FIELDS does not declare clear: a customer reference is stored "
                             f"and indexed in clear, so add {reference} to BILLOPS_PASSTHROUGH_CLEAR_FIELDS (if it "
                             "holds no personal data) or unset BILLOPS_CUSTOMER_REFERENCE_FIELD.")
        return self


class WebhookSourceSettings(DeploymentSettings):
    """Who may post a webhook or a postback (billops.webhooks.source_authentication)."""

    webhook_token: Text = Field(None, validation_alias="BILLOPS_WEBHOOK_TOKEN", repr=False)
    webhook_token_secret_arn: Text = Field(None, validation_alias="BILLOPS_WEBHOOK_TOKEN_SECRET_ARN")
    allowed_cidrs: CommaSeparated = Field(CCBILL_WEBHOOK_CIDRS, validation_alias="BILLOPS_ALLOWED_CIDRS")
    trust_loopback: Flag = Field(True, validation_alias="BILLOPS_LOCAL_ALLOW_LOOPBACK")
    """Locally (only), 127.0.0.0/8 may post too: the sandbox and curl post from there. ``false`` lets a refusal by
    source address be seen over HTTP."""
    client_accnum: Text = Field(None, validation_alias="BILLOPS_CLIENT_ACCNUM")
    client_subaccs: CommaSeparated = Field((), validation_alias="BILLOPS_CLIENT_SUBACCS")
    max_body_bytes: Whole = Field(DEFAULT_MAX_BODY_BYTES, ge=1, validation_alias="BILLOPS_MAX_BODY_BYTES")
    upgrade_catalogue: Text = Field(None, validation_alias="BILLOPS_UPGRADE_CATALOGUE")
    """BILLOPS_UPGRADE_CATALOGUE: upgrades into these accounts/subaccounts are accepted from another account."""

    @field_validator("allowed_cidrs")
    @classmethod
    def _networks(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        wrong = []
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                wrong.append(cidr)
        if wrong:
            # Refused rather than dropped: a typo must neither widen access nor silently narrow it.
            raise ValueError(f"not address ranges: {', '.join(repr(cidr) for cidr in wrong)}")
        return cidrs

    @cached_property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        cidrs = self.allowed_cidrs
        if self.is_local and self.trust_loopback and LOOPBACK_CIDR not in cidrs:
            cidrs = (*cidrs, LOOPBACK_CIDR)
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


class Settings(TablesSettings, PassThroughSettings, WebhookSourceSettings):
    """What webhook intake reads (billops.webhooks.intake): the receiver's settings, less personal data's."""

    ccbill_timezone: Text = Field(DEFAULT_CCBILL_TIMEZONE, validation_alias="BILLOPS_CCBILL_TIMEZONE")
    """The zone of CCBill's webhook timestamps (billops.webhooks.ccbill_time, docs/ccbill-assumptions.md)."""
    delivery_key_secret: Text = Field(None, validation_alias="BILLOPS_DELIVERY_KEY_SECRET", repr=False)
    """The HMAC key of hashed delivery keys, given in clear (setups without Secrets Manager); wins over the ARN."""
    delivery_key_secret_arn: Text = Field(None, validation_alias="BILLOPS_DELIVERY_KEY_SECRET_ARN")
    check_legacy_delivery_keys: Flag = Field(True, validation_alias="BILLOPS_CHECK_LEGACY_DELIVERY_KEYS")
    """Look for a hash-keyed delivery under its pre-HMAC key too (deliveries stored before the upgrade)."""

    @field_validator("ccbill_timezone")
    @classmethod
    def _zone(cls, value: str, info: ValidationInfo) -> str:
        from billops.webhooks.ccbill_time import ccbill_zone

        try:
            ccbill_zone(value)
        except ValueError as error:
            raise ValueError(str(error)) from None
        return value


WebhookSettings = Settings


def settings_from_env(env=None) -> Settings:
    """The webhook path's settings from ``env`` (default os.environ); raises SettingsError."""
    from billops.settings.base import load

    return load(Settings, env)


__all__ = ["CCBILL_WEBHOOK_CIDRS", "DEFAULT_MAX_BODY_BYTES", "LOOPBACK_CIDR", "DeploymentSettings",
           "PassThroughSettings", "Settings", "SettingsError", "TablesSettings", "WebhookSettings",
           "WebhookSourceSettings", "settings_from_env"]
