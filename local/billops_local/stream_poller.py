"""A DynamoDB Streams event source mapping, emulated: what Lambda does between a table's stream and a function.

For each DynamoDB event of the template, a ``StreamPoller`` reads the table's stream in moto and invokes the function
with Lambda's event shape::

    {"Records": [{"eventID", "eventName", "eventVersion", "eventSource": "aws:dynamodb", "awsRegion",
                  "dynamodb": {"ApproximateCreationDateTime", "Keys", "NewImage", "SequenceNumber", "SizeBytes",
                               "StreamViewType"},
                  "eventSourceARN": <stream ARN>}]}

Behaviour, following Lambda's documented semantics for stream sources:
  * records of a shard are delivered in order, in batches of at most BatchSize, waiting up to
    MaximumBatchingWindowInSeconds for a batch to fill; StartingPosition applies to the shards present at start,
    shards that appear later (children of split shards) are read from their start once their parent is finished;
  * with FunctionResponseTypes [ReportBatchItemFailures], a result ``{"batchItemFailures": [{"itemIdentifier":
    <SequenceNumber>}]}`` checkpoints before the lowest failed record and re-delivers from it; an empty or missing
    list is a success, an identifier that is empty or not in the batch fails the whole batch;
  * a raised exception fails the whole batch; with BisectBatchOnFunctionError the batch is split in two before
    retrying (splitting does not use up retries);
  * after MaximumRetryAttempts retries (-1 = forever) the failing batch is skipped and its description (Lambda's
    on-failure invocation record with ``DDBStreamBatchInfo``) is sent to the OnFailure SQS queue, if any.
Retries wait ``retry_backoff`` seconds, doubling up to ``max_backoff`` (Lambda backs off too, with other numbers).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billops_local.aws_call_recording import acting_as
from billops_local.aws_environment import LocalFunction, aws_client
from billops_local.template_resources import LOCAL_ACCOUNT_ID, LOCAL_REGION, StreamSourceSpec

log = logging.getLogger("billops_local.streams")


# ----------------------------------------------------------------------------------------------------------------
# Record shape
# ----------------------------------------------------------------------------------------------------------------


def _attribute_value_to_json(value: Any) -> Any:
    """boto3 gives binary attribute values as bytes; Lambda's JSON event carries them base64-encoded."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {key: _attribute_value_to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_attribute_value_to_json(item) for item in value]
    return value


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    return value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB Streams GetRecords record, as Lambda puts it in the event."""
    stream = record.get("dynamodb") or {}
    dynamodb: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in stream:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(stream["ApproximateCreationDateTime"])
    for name in ("Keys", "NewImage", "OldImage"):
        if name in stream:
            dynamodb[name] = _attribute_value_to_json(stream[name])
    for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if name in stream:
            dynamodb[name] = stream[name]
    converted: dict[str, Any] = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion", LOCAL_REGION),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        converted["userIdentity"] = record["userIdentity"]
    return converted


# ----------------------------------------------------------------------------------------------------------------
# Poller
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    initial: bool  # present at start (StartingPosition applies) or discovered later (read from its start)
    iterator: str | None = None
    started: bool = False
    closed: bool = False
    last_read_sequence: str | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    first_buffered_at: float | None = None
    failures: int = 0
    batch_limit: int | None = None
    next_attempt_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.closed and not self.buffer


@dataclass
class PollerStats:
    invocations: int = 0
    delivered_records: int = 0
    failed_invocations: int = 0
    dead_lettered_batches: int = 0


class StreamPoller:
    """One event source mapping: a table's stream -> a function. ``start()`` polls in a thread; ``run_once()`` does
    one step synchronously (tests)."""

    def __init__(
        self,
        function: LocalFunction,
        source: StreamSourceSpec,
        stream_arn: str,
        endpoint_url: str,
        *,
        on_failure_queue_url: str | None = None,
        poll_interval: float = 0.2,
        retry_backoff: float = 0.2,
        max_backoff: float = 5.0,
        shard_refresh_interval: float = 2.0,
    ) -> None:
        self.function = function
        self.source = source
        self.stream_arn = stream_arn
        self.on_failure_queue_url = on_failure_queue_url
        self.poll_interval = poll_interval
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.shard_refresh_interval = shard_refresh_interval
        self.stats = PollerStats()
        self._streams = aws_client("dynamodbstreams", endpoint_url)
        self._sqs = aws_client("sqs", endpoint_url) if on_failure_queue_url else None
        self._shards: dict[str, _Shard] = {}
        self._refreshed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"{self.source.table_logical_id} stream -> {self.function.logical_id}"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        with acting_as(self.function.logical_id, "event-source-mapping", stream_arn=self.stream_arn):
            self._refresh_shards()  # fixes LATEST at start, as creating an event source mapping does
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"billops-stream-{self.function.logical_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: still busy in an invocation after %.0f s; leaving it", self.name, timeout)
            self._thread = None

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
                self._stop.wait(min(self.max_backoff, self.poll_interval * 2**failures))
            if not busy:
                self._stop.wait(self.poll_interval)

    # -- one step ----------------------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Read what is new and invoke the function at most once per shard; True when anything happened."""
        # Lambda's event source mapping reads the stream (and sends to the on-failure destination) with the
        # function's role: recorded as its calls.
        with acting_as(self.function.logical_id, "event-source-mapping", stream_arn=self.stream_arn):
            return self._run_once()

    def _run_once(self) -> bool:
        now = time.monotonic()
        if self._refreshed_at is None or now - self._refreshed_at >= self.shard_refresh_interval:
            self._refresh_shards()
        busy = False
        for shard in list(self._shards.values()):
            if shard.finished or not self._parent_finished(shard):
                continue
            busy |= self._read(shard)
            busy |= self._deliver(shard)
        return busy

    def _parent_finished(self, shard: _Shard) -> bool:
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.finished

    def _refresh_shards(self) -> None:
        first = self._refreshed_at is None
        start_after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start_after:
                kwargs["ExclusiveStartShardId"] = start_after
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id not in self._shards:
                    self._shards[shard_id] = _Shard(shard_id, shard.get("ParentShardId"), initial=first)
                    if first and self.source.starting_position == "LATEST":
                        self._open(self._shards[shard_id])
            start_after = description.get("LastEvaluatedShardId")
            if not start_after:
                break
        self._refreshed_at = time.monotonic()

    def _open(self, shard: _Shard) -> None:
        if shard.last_read_sequence is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_read_sequence}
        elif shard.initial:
            kwargs = {"ShardIteratorType": self.source.starting_position}
        else:
            kwargs = {"ShardIteratorType": "TRIM_HORIZON"}
        shard.iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard.shard_id, **kwargs
        )["ShardIterator"]
        shard.started = True

    def _read(self, shard: _Shard) -> bool:
        if shard.closed or len(shard.buffer) >= self.source.batch_size:
            return False
        if not shard.started or shard.iterator is None:
            self._open(shard)
        try:
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=1000)
        except self._streams.exceptions.ExpiredIteratorException:
            self._open(shard)
            return False
        records = response.get("Records", [])
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.closed = True
        if records:
            if not shard.buffer:
                shard.first_buffered_at = time.monotonic()
            shard.buffer.extend(records)
            shard.last_read_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        return bool(records)

    def _deliver(self, shard: _Shard) -> bool:
        if not shard.buffer:
            return False
        now = time.monotonic()
        if now < shard.next_attempt_at:
            return False
        batch_size = self.source.batch_size
        window = self.source.maximum_batching_window_seconds
        if (
            shard.failures == 0
            and len(shard.buffer) < batch_size
            and window > 0
            and not shard.closed
            and shard.first_buffered_at is not None
            and now - shard.first_buffered_at < window
        ):
            return False  # the batching window is still open and the batch is not full
        limit = min(batch_size, shard.batch_limit or batch_size)
        batch = shard.buffer[:limit]
        self._invoke(shard, batch)
        return True

    def _invoke(self, shard: _Shard, batch: list[dict[str, Any]]) -> None:
        event = {"Records": [lambda_record(record, self.stream_arn) for record in batch]}
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        self.stats.invocations += 1
        error: str | None = None
        failed_from: int | None = None  # index of the first record to re-deliver
        try:
            result = self.function.invoke(event)
        except Exception as raised:
            error = f"{type(raised).__name__}: {raised}"
            log.error("%s: the function raised on a batch of %d (%s)", self.name, len(batch), error,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            failed_from = 0
        else:
            if self.source.report_batch_item_failures:
                failed_from = self._first_failure(result, sequence_numbers)
        if failed_from is None:
            self._checkpoint(shard, len(batch))
            shard.failures = 0
            shard.batch_limit = None
            self.stats.delivered_records += len(batch)
            return

        self.stats.failed_invocations += 1
        if failed_from > 0:
            self._checkpoint(shard, failed_from)
            self.stats.delivered_records += failed_from
            shard.failures = 1
        elif error is not None and self.source.bisect_batch_on_function_error and len(batch) > 1:
            shard.batch_limit = math.ceil(len(batch) / 2)  # split, retry each half; not a retry attempt
        else:
            shard.failures += 1
        failing = batch[failed_from:]
        retries_used = shard.failures - 1
        maximum = self.source.maximum_retry_attempts
        if maximum >= 0 and shard.failures > 0 and retries_used >= maximum:
            self._discard(shard, failing, error)
            return
        delay = 0.0 if shard.failures == 0 else self.retry_backoff * 2 ** max(0, shard.failures - 1)
        shard.next_attempt_at = time.monotonic() + min(self.max_backoff, delay)

    def _first_failure(self, result: Any, sequence_numbers: list[str]) -> int | None:
        """Index of the lowest failed record in a partial batch response; None for a full success."""
        if not isinstance(result, dict):
            return None
        failures = result.get("batchItemFailures")
        if not failures:
            return None
        positions = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in sequence_numbers:
                log.error("%s: batchItemFailures names %r, not a record of the batch: the whole batch failed",
                          self.name, identifier)
                return 0
            positions.append(sequence_numbers.index(identifier))
        return min(positions)

    def _checkpoint(self, shard: _Shard, count: int) -> None:
        del shard.buffer[:count]
        if not shard.buffer:
            shard.first_buffered_at = None  # else the records left have been waiting since then already

    def _discard(self, shard: _Shard, failing: list[dict[str, Any]], error: str | None) -> None:
        first, last = failing[0]["dynamodb"], failing[-1]["dynamodb"]
        description = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{self.function.name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": shard.failures,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                **({"functionError": "Unhandled"} if error else {})},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(failing),
                "streamArn": self.stream_arn,
            },
        }
        log.error("%s: giving up on %d record(s) %s..%s after %d attempt(s)%s", self.name, len(failing),
                  first["SequenceNumber"], last["SequenceNumber"], shard.failures,
                  "; described in the on-failure queue" if self._sqs else " (no on-failure destination)")
        if self._sqs is not None and self.on_failure_queue_url:
            self._sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(description))
        self.stats.dead_lettered_batches += 1
        self._checkpoint(shard, len(failing))
        shard.failures = 0
        shard.batch_limit = None
        shard.next_attempt_at = 0.0


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return None if value is None else str(value)
