"""What the merchant API reads (BILLOPS_API_*; docs/merchant-api.md lists them)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from billops.settings.base import Number, Text, Whole
from billops.settings.webhooks import DeploymentSettings

DEFAULT_KEYS_TABLE = "billops-api-keys"


class ApiSettings(DeploymentSettings):
    keys_table: Text = Field(None, validation_alias="BILLOPS_API_KEYS_TABLE", validate_default=True)
    """Fail closed: outside the local stack a missing BILLOPS_API_KEYS_TABLE means no key is valid (every request is
    refused), never a lookup in some other table that happens to carry the default name."""
    key_cache_seconds: Number = Field(60.0, ge=0, validation_alias="BILLOPS_API_KEY_CACHE_SECONDS")
    """How long a container trusts what it read of a key (a revoked key keeps working this long, at most)."""
    failure_limit: Whole = Field(10, ge=1, validation_alias="BILLOPS_API_AUTH_FAILURE_LIMIT")
    """Authentication failures one source may make per window before it is answered 429."""
    failure_window_seconds: Whole = Field(300, ge=1, validation_alias="BILLOPS_API_AUTH_FAILURE_WINDOW_SECONDS")
    max_body_bytes: Whole = Field(64 * 1024, ge=1024, validation_alias="BILLOPS_API_MAX_BODY_BYTES")
    events_lookback_days: Whole = Field(7, ge=1, le=31, validation_alias="BILLOPS_API_EVENTS_LOOKBACK_DAYS")
    """GET /v1/events looks this many days back by default (``days`` changes it, up to 31)."""

    @field_validator("keys_table")
    @classmethod
    def _keys_table(cls, value: str | None, info: ValidationInfo) -> str:
        if value is None:
            return DEFAULT_KEYS_TABLE if info.data.get("environment") == "local" else ""
        return value
