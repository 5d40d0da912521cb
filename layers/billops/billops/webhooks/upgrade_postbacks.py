"""The Subscription Upgrade System's Approval and Denial Background Posts.

``POST /postbacks/ccbill/upgrade/approval?token=…`` and ``…/denial?token=…`` are the Approval and Denial URLs
configured at CCBill for upgrades. CCBill posts there, as a Background Post (form-encoded, or JSON), the consumer's
data plus ``originalClientAccnum``, ``originalClientSubacc`` and ``originalSubscriptionId``
(ccbill-subscription-upgrade-system.txt, "Postback").

Authenticated exactly like webhooks (webhooks/source_authentication.py): the source address inside the allowed
ranges and the URL's token - CCBill signs neither. The body carries personal data (names, email, username…); only
the whitelisted non-personal fields below are ever kept, on the operation record, and nothing of the body is logged.

The post settles the allowUpgrade operation of the original subscription whose window the consumer used
(billops.operations.settlement.Settler.settle_from_postback): Approval -> succeeded with the new subscription ID
(``subscription_id``); Denial -> failed with CCBill's decline reason. A post matching no operation is still
answered 200 (CCBill cannot do anything about it) and counted (metric UpgradePostbackUnmatched).

It sits beside the webhook intake because both are CCBill calling us (same authentication, same body decoding);
what a post settles is the operations' business, reached through the ``PostbackSettlement`` it is given.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from billops.api_errors import ApiError, param_wrong_value
from billops.settings import Settings
from billops.webhooks.delivery_decoding import MalformedDelivery, decode_body, raw_body_bytes
from billops.webhooks.intake import WebhookRequest
from billops.webhooks.source_authentication import check_account, check_source
from billops.webhooks.webhook_token import TokenUnavailable, expected_token

logger = logging.getLogger(__name__)

OUTCOMES = {"approval": True, "denial": False}
KEPT_FIELDS = frozenset({
    "originalClientAccnum", "originalClientSubacc", "originalSubscriptionId", "subscription_id", "subscriptionId",
    "clientAccnum", "clientSubacc", "typeId", "initialPrice", "initialPeriod", "recurringPrice", "recurringPeriod",
    "rebills", "currencyCode", "denialId", "reasonForDeclineCode", "reasonForDecline", "declineCode", "declineText",
})
"""Non-personal Background Post fields kept on the operation record."""


@dataclass(frozen=True)
class PostbackResult:
    status: int
    body: dict[str, Any]
    outcome: str  # settled | unmatched | rejected | malformed | unavailable
    operation_id: str | None = None
    metrics: tuple[str, ...] = field(default=())


class PostbackSettlement(Protocol):
    """What a post settles (billops.operations.settlement.Settler)."""

    def settle_from_postback(self, original_subscription_id: str, approved: bool, fields: Mapping[str, str],
                             reference: str) -> dict[str, Any] | None: ...

    def note_postback(self, operation_id: str, note: dict[str, str]) -> None: ...


class UpgradePostbacks:
    def __init__(self, settings: Settings, settler: PostbackSettlement) -> None:
        self.settings = settings
        self.settler = settler

    def receive(self, outcome_name: str, request: WebhookRequest) -> PostbackResult:
        try:
            token = expected_token(self.settings)
        except TokenUnavailable:
            return _unavailable()
        try:
            check_source(request.source_ip, request.query.get("token"), token, self.settings)
        except ApiError as error:
            return PostbackResult(error.status, error.body(), "rejected", metrics=("UpgradePostbackRejected",))
        approved = OUTCOMES.get((outcome_name or "").strip().lower())
        if approved is None:
            error = param_wrong_value("The postback outcome must be approval or denial.", "outcome")
            return PostbackResult(error.status, error.body(), "malformed", metrics=("UpgradePostbackMalformed",))
        try:
            raw = raw_body_bytes(request.body, request.is_base64_encoded)
            fields = decode_body(raw, request.headers.get("content-type")).fields
        except MalformedDelivery as problem:
            error = param_wrong_value(problem.message, problem.param)
            return PostbackResult(error.status, error.body(), "malformed", metrics=("UpgradePostbackMalformed",))
        kept = {name: str(value).strip() for name, value in fields.items() if name in KEPT_FIELDS and value}
        original = kept.get("originalSubscriptionId", "")
        if not original.isdigit():
            error = param_wrong_value("originalSubscriptionId is missing or not a CCBill ID.",
                                      "originalSubscriptionId")
            return PostbackResult(error.status, error.body(), "malformed", metrics=("UpgradePostbackMalformed",))
        try:
            check_account(kept.get("originalClientAccnum"), kept.get("originalClientSubacc"), self.settings)
        except ApiError as error:
            return PostbackResult(error.status, error.body(), "rejected", metrics=("UpgradePostbackRejected",))
        reference = "postback#" + hashlib.sha256(raw).hexdigest()[:32]
        from billops.storage.errors import StorageUnavailable

        try:
            record = self.settler.settle_from_postback(original, approved, kept, reference)
        except StorageUnavailable:
            return _unavailable()
        if record is None:
            return PostbackResult(200, {"received": True, "matched": False}, "unmatched",
                                  metrics=("UpgradePostbackUnmatched",))
        self._keep(record, kept, approved)
        return PostbackResult(200, {"received": True, "matched": True, "operation_id": record["operation_id"],
                                    "status": record.get("status")}, "settled", record["operation_id"],
                              metrics=("UpgradePostbackSettled",))

    def _keep(self, record: Mapping[str, Any], kept: dict[str, str], approved: bool) -> None:
        """Note the post's non-personal fields on the record (best effort: the settlement itself is written)."""
        try:
            self.settler.note_postback(str(record["operation_id"]), {"outcome": "approval" if approved else "denial",
                                                                    **kept})
        except Exception:  # noqa: BLE001 - the settlement stands; only the note is lost
            logger.warning("could not note the postback on the operation record",
                           extra={"operation_id": record["operation_id"]})


def _unavailable() -> PostbackResult:
    body = {"message": "The postback could not be processed now; post again.", "type": "operation_failed",
            "api_error_code": "internal_error", "param": None}
    return PostbackResult(503, body, "unavailable", metrics=("UpgradePostbackUnavailable",))
