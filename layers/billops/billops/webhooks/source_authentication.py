"""Who may post a webhook. CCBill signs nothing, so two independent checks must both pass (failing closed):

1. the TCP source address, as API Gateway saw it (`requestContext.http.sourceIp`, never X-Forwarded-For, which
   anyone can write), lies in CCBill's published ranges (or the configured list);
2. the `token` query parameter of the URL entered in CCBill's admin equals the configured secret, compared in
   constant time so its value cannot be found by timing.
Optionally, the account and subaccount on the delivery must be the merchant's own.
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


__all__ = ["ApiError", "check_account", "check_source"]
