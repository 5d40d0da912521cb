"""Where moto's SQS differs from SQS in ways the operations path depends on, put right in this process.

The local stack runs moto's server in its own process, so these patches of moto's SQS models apply to every call
the handlers, the pollers and the tests make. ``apply()`` is idempotent; ``MotoServer.start()`` calls it.

1. FIFO order after a visibility timeout. moto releases a timed-out in-flight message only when its receive loop
   reaches it, after deciding which message groups are busy: with two in-flight messages of a group, the *second*
   is delivered first once both time out. SQS delivers a group strictly in order; here every timed-out message is
   released before the busy groups are computed.
2. FIFO deduplication. moto compares a MessageDeduplicationId only with the messages still in the queue; SQS
   remembers it for 5 minutes after the send, deleted or not. A message sent again with the same deduplication ID
   within 5 minutes of the first is accepted (same answer) and dropped, as in SQS.
3. FIFO sequence numbers. moto draws random 20-digit numbers; SQS's increase. Here they increase.
4. Concurrency. moto's server is threaded but its queues are not locked: a DeleteMessage rebuilding the message
   list at the moment a SendMessage appends to it loses the new message. Deletes and receives of a queue take the
   queue's own lock (which long polling releases while it waits), as sends already do.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import Any

DEDUPLICATION_INTERVAL_MS = 5 * 60 * 1000

_applied = False
_apply_lock = threading.Lock()
_sequence = itertools.count(10_000_000_000_000_000_000)
_sequence_lock = threading.Lock()


def _next_sequence_number() -> str:
    with _sequence_lock:
        return str(next(_sequence))


def apply() -> None:
    """Patch moto's SQS models (once per process)."""
    global _applied
    with _apply_lock:
        if _applied:
            return
        from moto.dynamodb.models import DynamoDBBackend
        from moto.sqs import models

        _patch_add_message(models.Queue)
        _patch_delete_message(models.Queue)
        _patch_receive_message(models.SQSBackend)
        _serialize_dynamodb(DynamoDBBackend)
        _applied = True


# DynamoDB applies each write, and each transaction, atomically and isolated: two conditional writes of one item never
# both pass their condition. moto's threaded server checks and writes without a lock, so two requests at once can
# (two containers counting one delivery twice; "dictionary changed size during iteration" on a read meanwhile).
# One lock per process over every item operation gives moto DynamoDB's isolation.
_DYNAMODB_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item",
                        "get_item", "query", "scan", "transact_get_items", "batch_get_item")
_dynamodb_lock = threading.RLock()


def _serialize_dynamodb(backend_class: Any) -> None:
    for name in _DYNAMODB_OPERATIONS:
        original = getattr(backend_class, name)

        def serialized(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(self, *args, **kwargs)

        serialized.__name__ = name
        serialized.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(backend_class, name, serialized)


def _patch_add_message(queue_class: Any) -> None:
    original = queue_class.add_message

    @functools.wraps(original)
    def add_message(self: Any, message: Any) -> None:
        if self.fifo_queue and message.deduplication_id is not None:
            with self._messages_lock:
                history: dict[Any, int] = self.__dict__.setdefault("_billops_deduplication", {})
                now = int(message.sent_timestamp or 0)
                for key, sent in list(history.items()):
                    if now - sent >= DEDUPLICATION_INTERVAL_MS:
                        del history[key]
                scope = message.group_id if self.attributes.get("DeduplicationScope") == "messageGroup" else None
                key = (scope, message.deduplication_id)
                # A message moved here from its source queue (redrive) has been received before: it keeps its
                # deduplication ID and sequence number and is never dropped.
                moved = message.approximate_receive_count > 0
                if key in history and not moved:
                    return  # a repeat within the deduplication interval: accepted, not delivered
                history.setdefault(key, now)
                if message.sequence_number is not None and not moved:
                    message.sequence_number = _next_sequence_number()
        original(self, message)

    queue_class.add_message = add_message


def _patch_delete_message(queue_class: Any) -> None:
    original = queue_class.delete_message

    @functools.wraps(original)
    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            original(self, receipt_handle)

    queue_class.delete_message = delete_message


def _patch_receive_message(backend_class: Any) -> None:
    original = backend_class.receive_message

    @functools.wraps(original)
    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:  # released while a long poll waits (Condition.wait)
            for message in list(queue.pending_messages):
                if message.visible:
                    queue.pending_messages.discard(message)
            return original(self, queue_name, *args, **kwargs)

    backend_class.receive_message = receive_message
