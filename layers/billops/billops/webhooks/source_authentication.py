"""Who may post a webhook. CCBill signs nothing, so two independent checks must both pass (failing closed):

1. the TCP source address, as API Gateway saw it (`requestContext.http.sourceIp`, never X-Forwarded-For, which
   anyone can write), lies in CCBill's published ranges (or the configured list);
2. the `token` query parameter of the URL entered in CCBill's admin equals the configured secret, compared in
   constant time so its value cannot be found by timing.
Optionally, the account and subaccount on the delivery must be the merchant's own. An upgrade, up-sale or
cross-sale may land in "the same or a completely different account/sub-account" (Subscription Upgrade System): such
a delivery for another account is the merchant's when its original subscription's account and subaccount
(``originalClientAccnum`` / ``originalClientSubacc``) are the merchant's, or when its destination is one the upgrade
catalogue (BILLOPS_UPGRADE_CATALOGUE) names. Everything else from another account stays 403.
Missing configuration rejects everything: a receiver with no token or no ranges accepts nothing.
"""

from __future__ import annotations

import hmac
import ipaddress

from billops.api_errors import ApiError, authorization_failed
from billops.settings import Settings


def check_source(source_ip: str | None, token: str | None, expected_token: str | None, settings: Settings) -> None:
    """Raises ApiError(403) unless the delivery comes from an allowed address with the right token."""
    if not expected_token:
        raise authorization_failed("Webhook authentication is not configured: no token is set, so nothing is accepted.")
    if not settings.allowed_networks:
        raise authorization_failed("Webhook authentication is not configured: no source ranges are allowed.")
    try:
        address = ipaddress.ip_address((source_ip or "").strip())
    except ValueError:
        raise authorization_failed("The request's source address is not allowed to post webhooks.") from None
    if not any(address in network for network in settings.allowed_networks):
        raise authorization_failed("The request's source address is not allowed to post webhooks.")
    presented = (token or "").encode("utf-8")
    if not hmac.compare_digest(presented, expected_token.encode("utf-8")):
        raise authorization_failed("The webhook URL's token is missing or wrong.")


def check_account(client_accnum: str | None, client_subacc: str | None, settings: Settings) -> None:
    """Raises ApiError(403) when the merchant configured its account and the delivery is for another one."""
    if settings.client_accnum and (client_accnum or "").strip() != settings.client_accnum:
        raise authorization_failed("The delivery's clientAccnum is not this merchant's account.")
    allowed_subaccs = {subacc.zfill(4) for subacc in settings.client_subaccs}
    if allowed_subaccs and (client_subacc or "").strip().zfill(4) not in allowed_subaccs:
        raise authorization_failed("The delivery's clientSubacc is not one of this merchant's subaccounts.")


CROSS_ACCOUNT_TYPES = frozenset(
    {
        "UpgradeSuccess",
        "UpgradeFailure",
        "UpSaleSuccess",
        "UpSaleFailure",
        "CrossSaleSuccess",
        "CrossSaleFailure",
    }
)
"""Purchases made from an existing subscription, possibly into another account or subaccount."""


def check_delivery_account(event_type: str, fields: dict[str, str], settings: Settings) -> None:
    """check_account for a decoded delivery, with the upgrades into another account or subaccount let through."""
    accnum, subacc = fields.get("clientAccnum"), fields.get("clientSubacc")
    try:
        check_account(accnum, subacc, settings)
    except ApiError:
        if event_type not in CROSS_ACCOUNT_TYPES:
            raise
        if _originals_are_merchants(fields.get("originalClientAccnum"), fields.get("originalClientSubacc"), settings):
            return
        if _in_upgrade_catalogue(accnum, subacc, settings):
            return
        raise


def _originals_are_merchants(accnum: str | None, subacc: str | None, settings: Settings) -> bool:
    """Both original fields inside the configured set (a missing one proves nothing where a check is configured)."""
    accnum, subacc = (accnum or "").strip(), (subacc or "").strip()
    if settings.client_accnum and accnum != settings.client_accnum:
        return False
    allowed_subaccs = {value.zfill(4) for value in settings.client_subaccs}
    return not allowed_subaccs or (bool(subacc) and subacc.zfill(4) in allowed_subaccs)


def _in_upgrade_catalogue(client_accnum: str | None, client_subacc: str | None, settings: Settings) -> bool:
    if not settings.upgrade_catalogue:
        return False
    from billops.ccbill.errors import CCBillConfigurationError

    try:
        catalogue = _catalogue(settings.upgrade_catalogue)
    except CCBillConfigurationError:
        return False  # a broken catalogue lets nothing more through (the merchant API reports it)
    accnum, subacc = (client_accnum or "").strip(), (client_subacc or "").strip().zfill(4)
    return any(option.client_accnum == accnum and option.client_subacc.zfill(4) == subacc
               for option in catalogue)


_catalogues: dict[str, object] = {}
"""The parsed catalogue of this container (its setting does not change while the container runs)."""


def _catalogue(value: str):
    from billops.ccbill.upgrade_catalogue import UpgradeCatalogue  # only on this rare path: kept off the cold start

    if value not in _catalogues:
        _catalogues.clear()
        _catalogues[value] = UpgradeCatalogue.from_config(value)
    return _catalogues[value]


__all__ = ["ApiError", "CROSS_ACCOUNT_TYPES", "check_account", "check_delivery_account", "check_source"]
