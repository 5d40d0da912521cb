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
| ``allow_upgrade``: window over (or ``upgrade_window_expired``), the link still valid, not re-sent yet | 200 | the backend post is sent again (a second operation), "We’re preparing your upgrade" |
| ``allow_upgrade``: the second window over too | 410 | "This upgrade link has expired" |
| the subscription was already upgraded to the offer (a sale with it as original, ``allow_upgrade`` succeeded) | 410 | "Your subscription has already been upgraded" |
| ``allow_upgrade``: failed otherwise, rejected, or escalated | 410 / 503 | "not available" / "try again later" |
| signing key, tables or KMS unavailable | 503 | "temporarily unavailable" |

Only a token with a valid signature leads to any read: a forged token costs one HMAC, not a DynamoDB or KMS call.

The consumer who comes late: "The consumer must be sent to the upgrade form within 30 minutes of the Backend HTTPS
Post. If the consumer is not sent within 30 minutes, the Backend HTTPS Post must be sent again"
(ccbill-subscription-upgrade-system.txt). When the link's operation's window is over and the link itself has not
expired, the page records and queues the backend post again - once per link: a second ``upgrade`` operation with
the idempotency key ``upgrade-link:<nonce>:again`` (upgrade_links.resend_key_for), so reloads and concurrent visits
land on that one operation - and shows the form when it is ``awaiting_consumer``. A GET that queues an operation:
a link scanner that opens an old link uses the one re-send; the consumer then gets the "expired" page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.upgrade_encryption import UpgradeKeyUnavailable
from billops import operation_states as states
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
from billops.upgrade_page.upgrade_links import idempotency_key_for, resend_key_for
from billops.upgrade_page.upgrade_offers import (
    UpgradeConfiguration,
    current_plan,
    is_current_plan,
    offer_summary,
)

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5
MIN_WINDOW_REMAINING = timedelta(seconds=60)
"""Less than this left of CCBill’s 30 minutes: too little to read the page and complete CCBill’s form (a quarter of
the window when BILLOPS_UPGRADE_WINDOW_SECONDS is shorter, as in tests: min_window_remaining_for)."""


def min_window_remaining_for(window_seconds: float) -> timedelta:
    return min(MIN_WINDOW_REMAINING, timedelta(seconds=window_seconds / 4))
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
                 sales_from: Callable[[str], list[dict[str, Any]] | None] | None = None,
                 submit: Callable[[dict[str, Any]], Any] | None = None,
                 min_window_remaining: timedelta = MIN_WINDOW_REMAINING) -> None:
        self.keys = keys
        self.subscriptions = subscriptions
        self.operations = operations
        self.configuration = configuration
        self.clock = clock
        self.sales_from = sales_from
        """The subscriptions sold as upgrades of a subscription (the by_original_subscription index), if given."""
        self.min_window_remaining = min_window_remaining
        self.submit = submit
        """Records and queues an operation message (operation_submission.record_and_queue): the second backend
        post for a consumer who came after the window. None: no re-send, the late consumer gets "expired"."""

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
            # A link made for the subscriber's username carries its enc (the page may not read the username).
            form = configuration.form(str(record["client_accnum"]), str(record["client_subacc"]),
                                      claims.subscription_id, option.key, "enc", enc=claims.enc)
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
        if self.operations is None:
            raise CCBillConfigurationError("BILLOPS_OPERATIONS_TABLE is not set: allow_upgrade links cannot be shown")
        first_key = idempotency_key_for(claims.nonce)
        first = self.operations.get(operation_id_for(first_key))
        if not self._window_over(first, now):
            return self._allow_upgrade_state(first, operation_id_for(first_key), claims, now, current, offer)
        # The consumer came after CCBill's 30 minutes: the backend post is sent again, once per link.
        again_key = resend_key_for(claims.nonce)
        again = self.operations.get(operation_id_for(again_key))
        unsent = again is not None and again.get("status") == states.QUEUED and not int(again.get("attempt") or 0)
        if (again is None or unsent) and self.submit is not None:
            # Recorded, then queued (a repeat re-sends a message whose first send failed; SQS drops a duplicate).
            record = self.subscriptions.get(claims.subscription_id) or {}
            self.submit({"operation_type": "upgrade", "subscription_id": claims.subscription_id,
                         "idempotency_key": again_key, "client_subacc": str(record.get("client_subacc") or "")
                         or None, "parameters": (first or {}).get("parameters")
                         or {"method": "allow_upgrade", "upgrade": claims.upgrade}})
            again = self.operations.get(operation_id_for(again_key))
            logger.info("allowUpgrade sent again for a late consumer",
                        extra={"operation_id": operation_id_for(again_key)})
        if again is None:
            return expired_link(operation_id_for(first_key))
        return self._allow_upgrade_state(again, operation_id_for(again_key), claims, now, current, offer)

    def _allow_upgrade_state(self, operation: dict[str, Any] | None, operation_id: str, claims: UpgradeLinkClaims,
                             now: datetime, current: Any, offer: Any) -> PageResult:
        status = (operation or {}).get("status")
        if operation is None or status in PREPARING or (status == states.UNKNOWN and not operation.get("escalated")):
            return message(200, "preparing", "We’re preparing your upgrade",
                           "Your upgrade offer will be ready in a moment.", refresh=True, operation_id=operation_id)
        if status == states.AWAITING_CONSUMER:
            window = parse_iso(operation.get("window_expires_at"))
            form = operation.get("upgrade_form") or {}
            fields = form.get("fields") or {}
            if window is None or window - now < self.min_window_remaining:
                return expired_link(operation_id)
            if isinstance(fields, Mapping) and form.get("identity") == "username":
                fields = self._with_username(operation, claims.subscription_id, fields)
                if fields is None:
                    return temporarily_unavailable()
            elif not isinstance(fields, Mapping) or str(fields.get("subscriptionId")) != claims.subscription_id:
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


    def _window_over(self, operation: Mapping[str, Any] | None, now: datetime) -> bool:
        """Whether CCBill's window of this allowUpgrade operation has passed (or leaves too little to use it)."""
        if operation is None:
            return False
        status = operation.get("status")
        if status == states.FAILED:
            return operation.get("failure_reason") == states.WINDOW_EXPIRED
        if status != states.AWAITING_CONSUMER:
            return False
        window = parse_iso(operation.get("window_expires_at"))
        return window is None or window - now < self.min_window_remaining

    @staticmethod
    def _with_username(operation: Mapping[str, Any], subscription_id: str, fields: Mapping[str, Any]
                       ) -> dict[str, Any] | None:
        """The step-2 form of a backend post made by username: the username, sealed for this subscription, opened
        for this page only (billops.privacy.upgrade_identity)."""
        from billops.privacy.upgrade_identity import UpgradeIdentityUnavailable, open_username

        sealed = (operation.get("parameters") or {}).get("username_ciphertext")
        try:
            username = open_username(subscription_id, str(sealed or ""))
        except UpgradeIdentityUnavailable:
            logger.error("the username of allowUpgrade operation %s could not be opened",
                         operation.get("operation_id"))
            return None
        return {**fields, "username": username}


def _offer_gone() -> PageResult:
    return message(410, "unavailable", "This offer is no longer available",
                   "The upgrade this link was made for is not offered any more.", hint=ASK_FOR_A_NEW_LINK)


__all__ = ["PageResult", "UpgradePage"]
