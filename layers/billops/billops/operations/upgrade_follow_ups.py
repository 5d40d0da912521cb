"""What follows a succeeded upgrade by API: cancelling the original, when the request asked for it.

chargeByPreviousTransactionId "creates a new subscription" and leaves the original one as it was - still billing
(ccbill-api-error-7-and-upgrades.txt; aMember cancels the old invoice itself). An upgrade request with
``cancel_original: true`` asks billops to cancel the original once the upgrade has *succeeded* - never before,
since a failed or unknown upgrade must not leave the subscriber with nothing. The cancellation is an operation of
its own (``cancel``, idempotency key ``cancel-original:<upgrade operation id>``), so it is recorded, carried out
exactly once, retried and settled like any other, and its ID is noted on the upgrade (``cancel_original_operation_id``).

It is submitted by whoever settles the upgrade as succeeded and can send to the queue (the worker, the
reconciliation job); when that is impossible or fails (the projector settles from a webhook and has no queue), the
reconciliation job submits it on its next run: the key is the same every time, so repeats land on one record.
Without ``cancel_original`` the operation says plainly that the original keeps billing (``original_subscription``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from billops import operation_states as states
from billops.operations.operation_records import iso, operation_id_for, utc_now
from billops.operations.operation_settings import OperationSettings
from billops.storage.errors import StorageUnavailable
from billops.storage.operations_table import OperationsTable

logger = logging.getLogger(__name__)

CHARGE_UPGRADE = "charge_by_previous_transaction"
KEY_PREFIX = "cancel-original:"

KEEPS_BILLING = ("The original subscription keeps billing: chargeByPreviousTransactionId starts a new subscription "
                 "and leaves the original active at CCBill. Cancel it (POST /v1/subscriptions/{id}/cancel) if the "
                 "upgrade replaces it, or ask for cancel_original: true.")
CANCELLED_AFTER = ("The original subscription is cancelled by its own operation once this upgrade has succeeded "
                   "(cancel_original).")


def is_upgrade_by_api(record: Mapping[str, Any]) -> bool:
    return (record.get("operation_type") == "upgrade"
            and (record.get("parameters") or {}).get("method") == CHARGE_UPGRADE)


def wants_original_cancelled(record: Mapping[str, Any]) -> bool:
    return is_upgrade_by_api(record) and (record.get("parameters") or {}).get("cancel_original") is True


def cancel_original_key(operation_id: str) -> str:
    return KEY_PREFIX + operation_id


def cancel_original_operation_id(record: Mapping[str, Any]) -> str | None:
    """The ID the original's cancellation has (or will have): it derives from the upgrade's ID."""
    return operation_id_for(cancel_original_key(str(record["operation_id"]))) if wants_original_cancelled(
        record) else None


def original_subscription_note(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """For an upgrade by API: what becomes of the original subscription (the API's ``original_subscription``)."""
    if not is_upgrade_by_api(record):
        return None
    cancel = wants_original_cancelled(record)
    return {"subscription_id": str(record.get("subscription_id") or ""), "keeps_billing": not cancel,
            "cancel_original": cancel, "cancel_operation_id": cancel_original_operation_id(record),
            "note": CANCELLED_AFTER if cancel else KEEPS_BILLING}


class UpgradeFollowUps:
    def __init__(self, table: OperationsTable, settings: OperationSettings, sqs: Any = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.table = table
        self.settings = settings
        self.sqs = sqs
        self.clock = clock

    def after_success(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """Submit the original's cancellation if the succeeded upgrade ``record`` asks for it (see the module
        docstring); returns the record, noted with the cancellation's ID when that was written. Never raises for
        a queue or table failure: the reconciliation job tries again."""
        if (record.get("status") != states.SUCCEEDED or not wants_original_cancelled(record)
                or record.get("cancel_original_operation_id") or not self.settings.queue_url):
            return record
        from billops.operations.operation_submission import NotQueued, RequestConflict, record_and_queue

        message: dict[str, Any] = {
            "operation_type": "cancel",
            "subscription_id": str(record["subscription_id"]),
            "idempotency_key": cancel_original_key(str(record["operation_id"])),
            "suppress_domain_events": bool(record.get("suppress_domain_events")),
        }
        if record.get("client_subacc"):
            message["client_subacc"] = str(record["client_subacc"])
        try:
            submitted = record_and_queue(message, table=self.table, settings=self.settings, sqs=self.sqs,
                                         clock=self.clock)
        except (NotQueued, StorageUnavailable, RequestConflict):
            logger.warning("the original's cancellation is not queued yet; the reconciliation job tries again",
                           extra={"operation_id": record["operation_id"]})
            return record
        noted = self.table.update_fields(str(record["operation_id"]),
                                         values={"cancel_original_operation_id": submitted.record["operation_id"]},
                                         expect={"status": states.SUCCEEDED}, now=iso(self.clock()))
        logger.info("the original subscription's cancellation is queued",
                    extra={"operation_id": record["operation_id"],
                           "cancel_operation_id": submitted.record["operation_id"]})
        return noted or record


__all__ = ["KEEPS_BILLING", "UpgradeFollowUps", "cancel_original_operation_id", "original_subscription_note",
           "wants_original_cancelled"]
