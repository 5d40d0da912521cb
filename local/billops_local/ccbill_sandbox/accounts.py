"""The merchant accounts the sandbox knows: subaccounts with their settings, DataLink users, configured upgrades.

The defaults give the local stack one merchant (900100) with a main subaccount and an upgrade subaccount, and two
upgrades configured - ``gold`` into its own subaccount 0001, ``platinum`` into another account, 900300 - so that the
Subscription Upgrade System's "more than one upgrade is configured" rules apply by default (the upgrade variables
are then required); a second account (900200) whose User Management settings demand 10-character usernames, so
that the -7 'Password too short' of a cross-account upgrade can be shown (ccbill-api-error-7-and-upgrades.txt).

Each account has one upgrade Security Type, as CCBill's Admin Portal has (Account Admin -> Advanced -> Upgrade
Security Setup; the guide: "Merchants must choose between two different authorization methods"): ``encryption``
accepts the ``enc`` form and answers allowUpgrade 0 (authorization denied); ``backend_post`` accepts allowUpgrade
from ``upgrade_allowed_ips`` and refuses any ``enc``. The local stack sets it from BILLOPS_UPGRADE_SECURITY.
``client_subaccounts_setting()`` and ``client_upgrade_catalogue_setting()`` give the same facts in the shape of the
client's BILLOPS_CCBILL_SUBACCOUNTS and BILLOPS_UPGRADE_CATALOGUE, so the local stack configures both alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

DEFAULT_DATALINK_USERNAME = "billopsapi"
DEFAULT_DATALINK_PASSWORD = "sandbox-datalink-password"  # nosec B105  # the local sandbox's made-up login
"""The sandbox's DataLink login; the local stack puts the same values in its Secrets Manager secret."""


@dataclass(frozen=True)
class DataLinkUser:
    username: str
    password: str = field(repr=False)
    subacc: str | None = None  # bound to this subaccount (then it sends clientSubacc), or main-account level
    permissions: frozenset[str] | None = None  # SMS subsystems granted; None = every action
    allowed_ips: tuple[str, ...] | None = None  # None = any caller (CCBill whitelists IPs per user)


@dataclass(frozen=True)
class SandboxSubaccount:
    subacc: str
    # CCBill's dynamic-pricing defaults (ccbill-facts.md 2.6): $2.95-$100, initial 2-365 days, rebill 30/60/90.
    min_price: Decimal = Decimal("2.95")
    max_price: Decimal = Decimal("100.00")
    min_initial_period: int = 2
    max_initial_period: int = 365
    recurring_periods: tuple[int, ...] = (30, 60, 90)
    currencies: tuple[str, ...] = ("036", "124", "392", "826", "840", "978")
    username_min_length: int = 6
    username_max_length: int = 16
    password_min_length: int = 6
    password_max_length: int = 30


@dataclass(frozen=True)
class ConfiguredUpgrade:
    """An upgrade CCBill staff set up: where it leads and at what price point."""

    key: str
    client_accnum: str
    client_subacc: str
    subscription_type_id: str
    initial_price: Decimal
    initial_period: int
    recurring_price: Decimal
    recurring_period: int
    rebills: int = 99
    currency_code: str = "840"


@dataclass(frozen=True)
class SandboxAccount:
    client_accnum: str
    subaccounts: tuple[SandboxSubaccount, ...]
    datalink_users: tuple[DataLinkUser, ...] = ()
    upgrades: tuple[ConfiguredUpgrade, ...] = ()
    datalink_enabled: bool = True
    upgrade_allowed_ips: tuple[str, ...] | None = None  # allowUpgrade posts must come from these (None = any)
    upgrade_security: str = "encryption"  # "encryption" (enc) or "backend_post" (allowUpgrade): one per account

    def subaccount(self, subacc: str | None) -> SandboxSubaccount | None:
        if subacc is None:
            return None
        return next((s for s in self.subaccounts if s.subacc == subacc.zfill(4)), None)


DEFAULT_ACCOUNTS: tuple[SandboxAccount, ...] = (
    SandboxAccount(
        client_accnum="900100",
        subaccounts=(SandboxSubaccount("0000"), SandboxSubaccount("0001")),
        datalink_users=(DataLinkUser(DEFAULT_DATALINK_USERNAME, DEFAULT_DATALINK_PASSWORD),),
        upgrades=(
            ConfiguredUpgrade("gold", "900100", "0001", "0015", Decimal("19.95"), 30, Decimal("19.95"), 30),
            ConfiguredUpgrade("platinum", "900300", "0000", "0020", Decimal("29.95"), 30, Decimal("29.95"), 30),
        ),
    ),
    SandboxAccount(
        client_accnum="900200",
        subaccounts=(SandboxSubaccount("0000", username_min_length=10, password_min_length=10),),
        datalink_users=(DataLinkUser(DEFAULT_DATALINK_USERNAME, DEFAULT_DATALINK_PASSWORD),),
    ),
    SandboxAccount(  # the destination of 900100's cross-account upgrade "platinum"
        client_accnum="900300",
        subaccounts=(SandboxSubaccount("0000"),),
        datalink_users=(DataLinkUser(DEFAULT_DATALINK_USERNAME, DEFAULT_DATALINK_PASSWORD),),
    ),
)


UPGRADE_SECURITY_TYPES = ("encryption", "backend_post")


def with_upgrade_security(accounts: tuple[SandboxAccount, ...], security: str,
                          allowed_ips: tuple[str, ...] | None = None) -> tuple[SandboxAccount, ...]:
    """``accounts`` with every account's upgrade Security Type (and, for backend_post, the allowed IPs) set."""
    from dataclasses import replace

    if security not in UPGRADE_SECURITY_TYPES:
        raise ValueError(f"upgrade security must be one of {', '.join(UPGRADE_SECURITY_TYPES)}")
    return tuple(replace(account, upgrade_security=security,
                         upgrade_allowed_ips=allowed_ips if allowed_ips is not None else account.upgrade_allowed_ips)
                 for account in accounts)


def client_subaccounts_setting(accounts: tuple[SandboxAccount, ...] = DEFAULT_ACCOUNTS) -> str:
    """BILLOPS_CCBILL_SUBACCOUNTS for a client pointed at this sandbox."""
    entries = []
    for account in accounts:
        for sub in account.subaccounts:
            entries.append({
                "client_accnum": account.client_accnum,
                "client_subacc": sub.subacc,
                "min_price": str(sub.min_price),
                "max_price": str(sub.max_price),
                "min_initial_period": sub.min_initial_period,
                "max_initial_period": sub.max_initial_period,
                "recurring_periods": list(sub.recurring_periods),
                "currencies": list(sub.currencies),
                "username_min_length": sub.username_min_length,
                "username_max_length": sub.username_max_length,
                "password_min_length": sub.password_min_length,
                "password_max_length": sub.password_max_length,
            })
    return json.dumps(entries)


def client_upgrade_catalogue_setting(accounts: tuple[SandboxAccount, ...] = DEFAULT_ACCOUNTS,
                                     client_accnum: str = "900100") -> str:
    """BILLOPS_UPGRADE_CATALOGUE for a client pointed at this sandbox (the upgrades of ``client_accnum``)."""
    account = next(a for a in accounts if a.client_accnum == client_accnum)
    return json.dumps({"upgrades": [{
        "key": up.key,
        "client_accnum": up.client_accnum,
        "client_subacc": up.client_subacc,
        "subscription_type_id": up.subscription_type_id,
        "initial_price": str(up.initial_price),
        "initial_period": up.initial_period,
        "recurring_price": str(up.recurring_price),
        "recurring_period": up.recurring_period,
        "rebills": up.rebills,
        "currency_code": up.currency_code,
    } for up in account.upgrades]})
