"""``GET /upgrade/<token>``: what the consumer sees, decided from the token, the subscription and the operation.

| situation | status | page |
|---|---|---|
| token malformed or its signature wrong | 404 | "This link doesn’t work" (nothing says which, or why) |
| token genuine but past its expiry | 410 | "This upgrade link has expired" |
| subscription unknown, expired or cancelled | 410 | "This subscription can’t be upgraded" |
| the offer is no longer in the catalogue, or already the current plan | 410 | "This offer is no longer available" |
| ``enc`` link | 200 | the current plan, the offer, the form (with ``enc``) posting to CCBill |
| ``allow_upgrade``: the operation not yet recorded, queued, in progress, retried | 200 | "We’re preparing your upgrade", reloads every 5 s |
| ``allow_upgrade``: ``awaiting_consumer`` with at least a minute of the window left | 200 | the offer page with the step-2 form |
| ``allow_upgrade``: window over, or the operation failed (``upgrade_window_expired``) | 410 | "This upgrade link has expired" |
| the subscription was already upgraded to the offer (a sale with it as original, ``allow_upgrade`` succeeded) | 410 | "Your subscription has already been upgraded" |
| ``allow_upgrade``: failed otherwise, rejected, or escalated | 410 / 503 | "not available" / "try again later" |
| signing key, tables or KMS unavailable | 503 | "temporarily unavailable" |

Only a token with a valid signature leads to any read: a forged token costs one HMAC, not a DynamoDB or KMS call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.upgrade_encryption import UpgradeKeyUnavailable
from billops.operations import operation_states as states
from billops.operations.operation_records import operation_id_for, parse_iso
from billops.storage.errors import StorageUnavailable
from billops.upgrade_page.link_tokens import (
    LinkTokenError,
    LinkTokenExpired,
    SigningKeyUnavailable,
    UpgradeLinkClaims,
    verify,
)
from billops.upgrade_page.page_rendering import (
    OfferPage,
    render_message_page,
    render_offer_page,
    security_headers,
)
from billops.upgrade_page.upgrade_links import idempotency_key_for
from billops.upgrade_page.upgrade_offers import (
    UpgradeConfiguration,
    current_plan,
    is_current_plan,
    offer_summary,
)

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5
MIN_WINDOW_REMAINING = timedelta(seconds=60)
"""Less than this left of CCBill’s 30 minutes: too little to read the page and complete CCBill’s form."""
PREPARING = frozenset({states.SCHEDULED, states.QUEUED, states.IN_PROGRESS, states.RETRY_WAIT})

ASK_FOR_A_NEW_LINK = "If you still want to upgrade, ask for a new upgrade link."


@dataclass(frozen=True)
class PageResult:
    status: int
    html: str
    outcome: str
    """What happened, for logs and metrics: shown, preparing, invalid, expired, unavailable, used, error."""
    headers: dict[str, str] = field(default_factory=security_headers)
    operation_id: str | None = None


def message(status: int, outcome: str, title: str, text: str, *, hint: str | None = None,
            refresh: bool = False, operation_id: str | None = None) -> PageResult:
    html = render_message_page(title, text, hint=hint, refresh_seconds=REFRESH_SECONDS if refresh else None)
    return PageResult(status, html, outcome, operation_id=operation_id)


def invalid_link() -> PageResult:
    return message(404, "invalid", "This link doesn’t work",
                   "We couldn’t find an upgrade offer at this address.",
                   hint="Check that you opened the whole link from your message. " + ASK_FOR_A_NEW_LINK)


def expired_link(operation_id: str | None = None) -> PageResult:
    return message(410, "expired", "This upgrade link has expired",
                   "The time to use this upgrade offer has passed, so nothing was changed or charged.",
                   hint=ASK_FOR_A_NEW_LINK, operation_id=operation_id)


def already_upgraded(operation_id: str | None = None) -> PageResult:
    return message(410, "used", "Your subscription has already been upgraded",
                   "This upgrade offer has been used, so there is nothing more to do here.",
                   operation_id=operation_id)


def temporarily_unavailable() -> PageResult:
    return message(503, "error", "Upgrades are temporarily unavailable",
                   "We couldn’t load your upgrade offer just now. Nothing was changed or charged.",
                   hint="Please try this link again in a few minutes.")


class UpgradePage:
    """Renders the page for a token. Collaborators are passed in, so tests can use fakes or moto."""

    def __init__(self, keys: Any, subscriptions: Any, operations: Any | None,
                 configuration: Callable[[], UpgradeConfiguration],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sales_from: Callable[[str], list[dict[str, Any]] | None] | None = None) -> None:
        self.keys = keys
        self.subscriptions = subscriptions
        self.operations = operations
        self.configuration = configuration
        self.clock = clock
        self.sales_from = sales_from
        """The subscriptions sold as upgrades of a subscription (the by_original_subscription index), if given."""

    def render(self, token: str) -> PageResult:
        now = self.clock()
        try:
            claims = verify(token, self.keys.verification_keys(), now=now)
        except LinkTokenExpired:
            return expired_link()
        except LinkTokenError:
            return invalid_link()
        except SigningKeyUnavailable:
            logger.error("the upgrade link signing key is unavailable")
            return temporarily_unavailable()
        try:
            return self._render(claims, now)
        except (StorageUnavailable, UpgradeKeyUnavailable, CCBillConfigurationError, CCBillRequestInvalid) as exc:
            logger.error("the upgrade page could not be built: %s", exc, extra={"error_type": type(exc).__name__})
            return temporarily_unavailable()

    def _render(self, claims: UpgradeLinkClaims, now: datetime) -> PageResult:
        record = self.subscriptions.get(claims.subscription_id)
        if record is None or record.get("status") in ("expired", "cancelled", "declined"):
            return message(410, "unavailable", "This subscription can’t be upgraded",
                           "The subscription this offer was made for is no longer active, so it can’t be upgraded.",
                           hint="Nothing was changed or charged.")
        if not record.get("client_accnum") or not record.get("client_subacc"):
            return temporarily_unavailable()
        configuration = self.configuration()
        try:
            option = configuration.catalogue.get(claims.upgrade)
        except CCBillRequestInvalid:
            return _offer_gone()
        if is_current_plan(record, option):
            return _offer_gone()
        if self._already_upgraded(claims.subscription_id, option):
            # CCBill sends no Expiration for the original when it is upgraded: the new sale is the evidence.
            return already_upgraded()
        current = current_plan(record)
        offer = offer_summary(option, configuration.names,
                              fallback_currency=record.get("currency_code") or record.get("currency"))
        if claims.method == "enc":
            form = configuration.form(str(record["client_accnum"]), str(record["client_subacc"]),
                                      claims.subscription_id, option.key, "enc")
            page = OfferPage(current, offer, form.url, form.fields, claims.expires_at)
            return PageResult(200, render_offer_page(page), "shown")
        return self._allow_upgrade(claims, now, current, offer)

    def _already_upgraded(self, subscription_id: str, option: Any) -> bool:
        if self.sales_from is None:
            return False
        sales = self.sales_from(subscription_id) or []
        return any(str(sale.get("client_accnum")) == option.client_accnum
                   and str(sale.get("client_subacc") or "").zfill(4) == option.client_subacc for sale in sales)

    def _allow_upgrade(self, claims: UpgradeLinkClaims, now: datetime, current: Any, offer: Any) -> PageResult:
        operation_id = operation_id_for(idempotency_key_for(claims.nonce))
        if self.operations is None:
            raise CCBillConfigurationError("BILLOPS_OPERATIONS_TABLE is not set: allow_upgrade links cannot be shown")
        operation = self.operations.get(operation_id)
        status = (operation or {}).get("status")
        if operation is None or status in PREPARING or (status == states.UNKNOWN and not operation.get("escalated")):
            return message(200, "preparing", "We’re preparing your upgrade",
                           "Your upgrade offer will be ready in a moment.", refresh=True, operation_id=operation_id)
        if status == states.AWAITING_CONSUMER:
            window = parse_iso(operation.get("window_expires_at"))
            form = operation.get("upgrade_form") or {}
            fields = form.get("fields") or {}
            if window is None or window - now < MIN_WINDOW_REMAINING:
                return expired_link(operation_id)
            if not isinstance(fields, Mapping) or str(fields.get("subscriptionId")) != claims.subscription_id:
                logger.error("allowUpgrade operation %s has no usable form for its subscription", operation_id)
                return temporarily_unavailable()
            page = OfferPage(current, offer, str(form.get("url") or ""), {str(k): str(v) for k, v in fields.items()},
                             min(window, claims.expires_at))
            return PageResult(200, render_offer_page(page), "shown", operation_id=operation_id)
        if status == states.SUCCEEDED:
            return already_upgraded(operation_id)
        if status == states.FAILED and operation.get("failure_reason") == states.WINDOW_EXPIRED:
            return expired_link(operation_id)
        if status == states.UNKNOWN:  # escalated: a person is looking at it
            return message(503, "error", "We couldn’t prepare your upgrade",
                           "Something went wrong on our side while preparing your upgrade. Nothing was charged.",
                           hint="Please try again later, or ask for a new upgrade link.", operation_id=operation_id)
        return message(410, "unavailable", "This upgrade offer isn’t available",
                       "This upgrade can’t be made for your subscription. Nothing was changed or charged.",
                       hint=ASK_FOR_A_NEW_LINK, operation_id=operation_id)


def _offer_gone() -> PageResult:
    return message(410, "unavailable", "This offer is no longer available",
                   "The upgrade this link was made for is not offered any more.", hint=ASK_FOR_A_NEW_LINK)


__all__ = ["PageResult", "UpgradePage"]
