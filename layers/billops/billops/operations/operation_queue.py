"""Putting operation messages on the queue, and unusable ones on the dead-letter queue.

``enqueue(message)`` is how the merchant API (issue 5) and any Python caller sends an operation. The queue is SQS
FIFO: the message group is the subscription ID, so two operations on one subscription are never worked on at the
same time and run in the order sent; the deduplication ID is the idempotency key, so SQS itself drops a repeat
within its five-minute window (the operation record catches repeats after that).

The scheduler and the reconciliation job re-send a stored message when its time comes; their deduplication ID names
the operation and the attempt (``<operation_id>:<attempt>:<due_at>``), because the idempotency key may have been used
on this queue less than five minutes earlier and SQS would silently drop the message.

Rejected messages are copied to the dead-letter queue by the worker, with the reason as a message attribute, and
then acknowledged: retrying a malformed message cannot make it well-formed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from billops.operations.operation_messages import AnyOperationMessage, OperationMessage, canonical_json


class QueueNotConfigured(RuntimeError):
    """BILLOPS_OPERATIONS_QUEUE_URL (or the dead-letter queue's URL) is not set."""


def _sqs_client() -> Any:
    from billops.storage.aws_clients import aws_client

    return aws_client("sqs")


def enqueue(message: AnyOperationMessage | OperationMessage | dict[str, Any] | str, *, queue_url: str | None = None,
            sqs: Any = None) -> str:
    """Validate ``message`` and send it; returns SQS's MessageId. Raises MessageInvalid for a bad message."""
    from billops.operations.operation_messages import parse_message
    from billops.operations.operation_settings import operation_settings_from_env

    if isinstance(message, OperationMessage):
        message = message.root
    if isinstance(message, (dict, str)):
        message = parse_message(message)
    url = queue_url or operation_settings_from_env().queue_url
    if not url:
        raise QueueNotConfigured("BILLOPS_OPERATIONS_QUEUE_URL is not set")
    return send_body(canonical_json(message), group=message.subscription_id,
                     deduplication_id=message.idempotency_key, queue_url=url, sqs=sqs)


def send_body(body: str, *, group: str, deduplication_id: str, queue_url: str, sqs: Any = None,
              attributes: dict[str, str] | None = None) -> str:
    client = sqs or _sqs_client()
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": body,
        "MessageGroupId": group[:128],
        "MessageDeduplicationId": _dedup_id(deduplication_id),
    }
    if attributes:
        kwargs["MessageAttributes"] = {name: {"DataType": "String", "StringValue": value[:1024]}
                                       for name, value in attributes.items() if value}
    return str(client.send_message(**kwargs)["MessageId"])


def resend_stored(record: dict[str, Any], *, queue_url: str, sqs: Any = None) -> str:
    """Send a stored operation's message again (scheduler: run_at or retry time has come)."""
    dedup = f"{record['operation_id']}:{int(record.get('attempt') or 0)}:{record.get('due_at') or ''}"
    return send_body(str(record["message"]), group=str(record["subscription_id"]), deduplication_id=dedup,
                     queue_url=queue_url, sqs=sqs)


def _dedup_id(value: str) -> str:
    """SQS allows 128 characters of alphanumerics and punctuation; anything else is replaced by its hash."""
    if 1 <= len(value) <= 128 and all(0x21 <= ord(ch) <= 0x7E for ch in value):
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class DeadLetters:
    """The operations dead-letter queue (FIFO). Without a URL, ``send`` raises, and the worker lets the message
    fail instead: the queue's redrive policy then moves it there after maxReceiveCount receives."""

    def __init__(self, queue_url: str | None, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    def send(self, body: str, *, reason: str, group: str, operation_id: str | None) -> None:
        if not self.queue_url:
            raise QueueNotConfigured("BILLOPS_OPERATIONS_DLQ_URL is not set; the message is left to the redrive "
                                     "policy")
        digest = hashlib.sha256((body + "\n" + reason).encode("utf-8", errors="replace")).hexdigest()
        send_body(body, group=group, deduplication_id=digest, queue_url=self.queue_url,
                  sqs=self._sqs or _sqs_client(),
                  attributes={"reason": reason[:1000], "operation_id": operation_id or ""})
