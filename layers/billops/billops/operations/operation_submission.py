"""Submitting an operation: record it (``queued``, or ``scheduled`` for a future run_at), then queue its message.

Every caller whose answer names an operation goes through ``record_and_queue``: the merchant API's operation POSTs
(billops.merchant_api.operation_requests) and an allowUpgrade upgrade link (billops.upgrade_page.upgrade_links).
Recording first means the operation can be looked up (``GET /v1/operations/{id}``) the moment its ID is given out,
however long the message then waits on the queue. The record is created by the conditional put the worker uses
(operation_records: the ID derives from the idempotency key), so the worker, finding it, simply carries it out.

The same message again (same key, same request hash) is answered with the existing record, and its message is sent
again while it still waits in ``queued`` untouched - the first send may have failed; a duplicate is harmless, SQS
drops it within five minutes and the worker finds the record afterwards. Another request under the key raises
``RequestConflict``; the first is kept. A failed send raises ``NotQueued``: the record waits, and calling again
with the same message sends it again.

Nothing here validates beyond the message model; callers check what they must (the API runs the worker's checks)
before calling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billops import operation_states as states
from billops.operations.operation_messages import AnyOperationMessage, parse_message
from billops.operations.operation_queue import enqueue
from billops.operations.operation_records import new_record, request_hash, utc_now
from billops.operations.operation_settings import OperationSettings
from billops.storage.errors import StorageUnavailable
from billops.storage.operations_table import OperationsTable

logger = logging.getLogger(__name__)


class RequestConflict(Exception):
    """The idempotency key names an operation recorded for another request."""


class NotQueued(Exception):
    """The operation is recorded but its message could not be sent; submit the same message again."""


@dataclass
class Submitted:
    record: dict[str, Any]
    replayed: bool


def record_and_queue(message: AnyOperationMessage | Mapping[str, Any], *, table: OperationsTable | None = None,
                     settings: OperationSettings | None = None, sqs: Any = None,
                     clock: Callable[[], datetime] = utc_now) -> Submitted:
    """Record ``message``'s operation and queue it (see the module docstring). Raises MessageInvalid for a bad
    message, RequestConflict, NotQueued, and StorageUnavailable when the table cannot be written or read."""
    if isinstance(message, Mapping):
        message = parse_message(dict(message))
    if settings is None:
        from billops.operations.operation_settings import operation_settings_from_env

        settings = operation_settings_from_env()
    table = table or OperationsTable(settings.operations_table)
    record = new_record(message, clock(), max_attempts=settings.max_attempts)
    if not table.create(record):
        current = table.get(record["operation_id"])
        if current is None:  # records are never deleted: a storage fault
            raise StorageUnavailable(f"operation {record['operation_id']} exists but cannot be read")
        return submit_again(current, message, settings=settings, sqs=sqs)
    logger.info("operation recorded", extra={
        "operation_id": record["operation_id"], "operation_type": record["operation_type"],
        "subscription_id": record["subscription_id"], "status": record["status"]})
    if record["status"] == states.QUEUED:
        _send(message, record["operation_id"], settings, sqs)
    return Submitted(record, replayed=False)


def submit_again(existing: Mapping[str, Any], message: AnyOperationMessage, *, settings: OperationSettings,
                 sqs: Any = None) -> Submitted:
    """``message`` again, its record ``existing`` already stored: the record, or RequestConflict."""
    if existing.get("request_hash") != request_hash(message):
        raise RequestConflict(str(existing.get("operation_id")))
    if existing.get("status") == states.QUEUED and not int(existing.get("attempt") or 0):
        _send(message, str(existing["operation_id"]), settings, sqs)
    return Submitted(dict(existing), replayed=True)


def _send(message: AnyOperationMessage, operation_id: str, settings: OperationSettings, sqs: Any) -> None:
    try:
        enqueue(message, queue_url=settings.queue_url, sqs=sqs)
    except Exception as error:  # botocore's errors or a missing URL: the record waits, the caller repeats
        logger.exception("the operation is recorded but could not be queued", extra={"operation_id": operation_id})
        raise NotQueued(operation_id) from error


__all__ = ["NotQueued", "RequestConflict", "Submitted", "record_and_queue", "submit_again"]
