"""An SQS event source mapping, emulated: what Lambda does between a queue and a function.

For each SQS event of the template a ``QueuePoller`` receives messages from the queue in moto and invokes the
function with Lambda's event shape::

    {"Records": [{"messageId", "receiptHandle", "body",
                  "attributes": {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                 "ApproximateFirstReceiveTimestamp",
                                 FIFO only: "MessageGroupId", "MessageDeduplicationId", "SequenceNumber"},
                  "messageAttributes": {name: {"stringValue" | "binaryValue" (Base64), "stringListValues": [],
                                               "binaryListValues": [], "dataType"}},
                  "md5OfBody", ["md5OfMessageAttributes",] "eventSource": "aws:sqs",
                  "eventSourceARN": <queue ARN>, "awsRegion": "us-east-1"}]}

Behaviour, following Lambda's documented semantics for SQS sources:
  * batches of at most BatchSize messages (a standard queue with MaximumBatchingWindowInSeconds gathers up to
    that long); a FIFO queue hands out a message group's messages in order and never while an earlier message of
    the group is in flight;
  * a successful invocation deletes the batch; a raised exception fails the whole batch (nothing is deleted);
  * with FunctionResponseTypes [ReportBatchItemFailures], ``{"batchItemFailures": [{"itemIdentifier":
    <messageId>}]}`` deletes everything else; an empty or missing list is a success; an identifier that is empty or
    not in the batch fails the whole batch. On a FIFO queue a message group stops at its first failure: the failed
    message and every later message of its group in the batch are kept (and a warning says so when the function
    reported a later one as a success);
  * failed messages come back when their visibility timeout ends, and SQS's RedrivePolicy moves a message to the
    dead-letter queue once it was received maxReceiveCount times (moto does this on receive, as SQS does);
  * at most ``concurrency`` invocations at once: the function's ReservedConcurrentExecutions, ScalingConfig's
    MaximumConcurrency and the local cap, whichever is least (at least 1).
Local timing: messages are received with the queue's VisibilityTimeout (360 s for the operations queue), so a
message being worked on never reappears, as in AWS; a *failed* message is made visible again after
``failure_visibility_timeout`` seconds (``BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS``, default 5; AWS waits the
rest of the queue's visibility timeout), so redelivery and the dead-letter queue are quick to see locally.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from billops_local.aws_call_recording import acting_as, not_recorded
from billops_local.aws_environment import LocalFunction, aws_client
from billops_local.template_resources import LOCAL_REGION, QueueSourceSpec

log = logging.getLogger("billops_local.queues")

DEFAULT_FAILURE_VISIBILITY_TIMEOUT = 5
_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
    "MessageGroupId", "MessageDeduplicationId", "SequenceNumber", "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


# ----------------------------------------------------------------------------------------------------------------
# Record shape
# ----------------------------------------------------------------------------------------------------------------


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [base64.b64encode(bytes(item)).decode("ascii")
                             for item in value.get("BinaryListValues") or []],
        "dataType": value.get("DataType"),
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        binary = value["BinaryValue"]
        converted["binaryValue"] = base64.b64encode(bytes(binary)).decode("ascii") if isinstance(
            binary, (bytes, bytearray)) else str(binary)
    return converted


def lambda_record(message: dict[str, Any], queue_arn: str, region: str = LOCAL_REGION) -> dict[str, Any]:
    """An SQS ReceiveMessage message, as Lambda puts it in the event."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: str(attributes[name]) for name in _SYSTEM_ATTRIBUTES if name in attributes},
        "messageAttributes": {name: _message_attribute(value)
                              for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody"),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


# ----------------------------------------------------------------------------------------------------------------
# Poller
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class QueuePollerStats:
    invocations: int = 0
    deleted_messages: int = 0
    failed_invocations: int = 0  # raised, or reported a failure
    failed_messages: int = 0  # kept for redelivery (each time)


class QueuePoller:
    """One event source mapping: a queue -> a function. ``start()`` polls in ``concurrency`` threads;
    ``run_once()`` receives and handles one batch synchronously (tests)."""

    def __init__(
        self,
        function: LocalFunction,
        source: QueueSourceSpec,
        queue_url: str,
        queue_arn: str,
        endpoint_url: str,
        *,
        concurrency: int = 1,
        failure_visibility_timeout: int | None = DEFAULT_FAILURE_VISIBILITY_TIMEOUT,
        poll_interval: float = 0.2,
    ) -> None:
        self.function = function
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.fifo = queue_arn.endswith(".fifo")
        self.concurrency = max(1, concurrency)
        self.failure_visibility_timeout = failure_visibility_timeout
        self.poll_interval = poll_interval
        self.stats = QueuePollerStats()
        self._sqs = aws_client("sqs", endpoint_url)
        self._receive_lock = threading.Lock()  # one ReceiveMessage at a time: moto's receive is not atomic
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def name(self) -> str:
        queue_name = self.queue_arn.rsplit(":", 1)[-1]
        return f"{queue_name} -> {self.function.logical_id} (x{self.concurrency})"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._run, daemon=True,
                                      name=f"billops-queue-{self.function.logical_id}-{index}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout  # one wait for all the threads, not one each
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s: still busy in an invocation after %.0f s; leaving it", self.name, timeout)
        self._threads.clear()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once()
                failures = 0
            except Exception as error:  # noqa: BLE001 - moto going away at shutdown, a transient error
                failures += 1
                if not self._stop.is_set():
                    log.warning("%s: polling failed (%s: %s)", self.name, type(error).__name__, error)
                busy = False
                self._stop.wait(min(5.0, self.poll_interval * 2**failures))
            if not busy:
                self._stop.wait(self.poll_interval)

    # -- one batch ---------------------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Receive one batch and invoke the function with it; True when there was a batch."""
        # Lambda's event source mapping receives and deletes with the function's role (recorded as its calls).
        with acting_as(self.function.logical_id, "event-source-mapping"):
            batch = self._receive()
            if not batch:
                return False
            self._invoke(batch)
        return True

    def _receive_some(self, count: int) -> list[dict[str, Any]]:
        with self._receive_lock:
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, count),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        return list(response.get("Messages") or [])

    def _receive(self) -> list[dict[str, Any]]:
        batch = self._receive_some(self.source.batch_size)
        window = self.source.maximum_batching_window_seconds
        if not batch or window <= 0:
            return batch
        deadline = time.monotonic() + window
        while len(batch) < self.source.batch_size and time.monotonic() < deadline and not self._stop.is_set():
            more = self._receive_some(self.source.batch_size - len(batch))
            if more:
                batch.extend(more)
            else:
                self._stop.wait(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        return batch

    def _invoke(self, batch: list[dict[str, Any]]) -> None:
        event = {"Records": [lambda_record(message, self.queue_arn) for message in batch]}
        ids = [message["MessageId"] for message in batch]
        with self._stats_lock:
            self.stats.invocations += 1
        failed: set[str]
        try:
            result = self.function.invoke(event)
        except Exception as raised:  # whatever the function raises fails the batch
            log.error("%s: the function raised on a batch of %d (%s: %s)", self.name, len(batch),
                      type(raised).__name__, raised, exc_info=log.isEnabledFor(logging.DEBUG))
            failed = set(ids)
        else:
            failed = self._reported_failures(result, ids) if self.source.report_batch_item_failures else set()
        if failed and self.fifo:
            failed = self._stop_groups_at_first_failure(batch, failed)
        self._settle(batch, failed)

    def _reported_failures(self, result: Any, ids: list[str]) -> set[str]:
        if not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures")
        if not failures:
            return set()
        reported: set[str] = set()
        for failure in failures if isinstance(failures, list) else [failures]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in ids:
                log.error("%s: batchItemFailures names %r, not a message of the batch: the whole batch failed",
                          self.name, identifier)
                return set(ids)
            reported.add(identifier)
        return reported

    def _stop_groups_at_first_failure(self, batch: list[dict[str, Any]], failed: set[str]) -> set[str]:
        kept = set(failed)
        stopped: set[str] = set()
        for message in batch:
            group = (message.get("Attributes") or {}).get("MessageGroupId")
            if group in stopped:
                if message["MessageId"] not in kept:
                    log.warning("%s: message %s of group %s follows a failed message of its group; it is kept for "
                                "redelivery (a FIFO handler should report it as failed too)", self.name,
                                message["MessageId"], group)
                    kept.add(message["MessageId"])
            elif message["MessageId"] in kept:
                stopped.add(group)
        return kept

    def _settle(self, batch: list[dict[str, Any]], failed: set[str]) -> None:
        succeeded = [message for message in batch if message["MessageId"] not in failed]
        kept = [message for message in batch if message["MessageId"] in failed]
        for chunk in _chunks(succeeded, 10):
            answer = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                         for index, message in enumerate(chunk)],
            )
            for failure in answer.get("Failed") or []:
                log.warning("%s: deleting a processed message failed (%s); it will be delivered again",
                            self.name, failure.get("Code"))
        if kept and self.failure_visibility_timeout is not None:
            for chunk in _chunks(kept, 10):
                with not_recorded():  # a local shortcut: Lambda lets the visibility timeout run out instead
                    self._sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"],
                                  "VisibilityTimeout": int(self.failure_visibility_timeout)}
                                 for index, message in enumerate(chunk)],
                    )
        with self._stats_lock:
            self.stats.deleted_messages += len(succeeded)
            if kept:
                self.stats.failed_invocations += 1
                self.stats.failed_messages += len(kept)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
