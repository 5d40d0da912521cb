"""What field-level encryption of personal data reads (billops.privacy, docs/privacy.md)."""

from __future__ import annotations

from pydantic import Field

from billops.settings.base import Number, SettingsModel, Text, Whole

DEFAULT_MAX_AGE_SECONDS = 300.0
DEFAULT_MAX_MESSAGES = 10_000


class PersonalDataSettings(SettingsModel):
    pii_key_id: Text = Field(None, validation_alias="BILLOPS_PII_KEY_ID")
    """The KMS key whose data keys encrypt subscribers' personal data; unset, nothing personal can be stored."""
    pii_data_key_max_age: Number = Field(DEFAULT_MAX_AGE_SECONDS, ge=0, validation_alias="BILLOPS_PII_DATA_KEY_MAX_AGE")
    pii_data_key_max_messages: Whole = Field(DEFAULT_MAX_MESSAGES, ge=1,
                                             validation_alias="BILLOPS_PII_DATA_KEY_MAX_MESSAGES")
