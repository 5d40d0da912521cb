"""The CCBill client's settings (docs/ccbill-client.md): the model lives with every other setting, in
billops.settings.ccbill (one parser, one set of rules); its names stay importable from here."""

from billops.settings.ccbill import (
    BILLING_API_PATH,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SANDBOX_PORT,
    PRODUCTION_BILLING_API_URL,
    PRODUCTION_SMS_URL,
    PRODUCTION_UPGRADE_URL,
    SMS_PATH,
    UPGRADE_PATH,
    UPGRADE_VARIABLE_SPELLINGS,
    CCBillClientSettings,
    CCBillSettings,
)

__all__ = ["BILLING_API_PATH", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT", "DEFAULT_SANDBOX_PORT",
           "PRODUCTION_BILLING_API_URL", "PRODUCTION_SMS_URL", "PRODUCTION_UPGRADE_URL", "SMS_PATH", "UPGRADE_PATH",
           "UPGRADE_VARIABLE_SPELLINGS", "CCBillClientSettings", "CCBillSettings"]
