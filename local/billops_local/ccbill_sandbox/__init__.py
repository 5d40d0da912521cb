"""A stateful CCBill emulator for the local stack and the tests.

It serves CCBill's subscription-management scripts on 127.0.0.1 with CCBill's paths and answer formats, keeps
accounts, subscriptions and every charge, applies CCBill's documented rules and result codes, delivers the matching
webhooks to the receiver, and misbehaves on demand (fault injection). Run it alone with
``python -m billops_local.ccbill_sandbox``; the local stack starts it with ``start_sandbox``.
Admin API and behaviour: docs/ccbill-client.md.
"""

from billops_local.ccbill_sandbox.accounts import (
    DEFAULT_ACCOUNTS,
    DEFAULT_DATALINK_PASSWORD,
    DEFAULT_DATALINK_USERNAME,
    ConfiguredUpgrade,
    DataLinkUser,
    SandboxAccount,
    SandboxSubaccount,
    client_subaccounts_setting,
    client_upgrade_catalogue_setting,
    with_upgrade_security,
)
from billops_local.ccbill_sandbox.server import SandboxHandle, start_sandbox

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_DATALINK_PASSWORD",
    "DEFAULT_DATALINK_USERNAME",
    "ConfiguredUpgrade",
    "DataLinkUser",
    "SandboxAccount",
    "SandboxHandle",
    "SandboxSubaccount",
    "client_subaccounts_setting",
    "client_upgrade_catalogue_setting",
    "start_sandbox",
    "with_upgrade_security",
]
