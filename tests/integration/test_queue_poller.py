"""The queue poller against moto: Lambda's SQS event shape, batches, FIFO group order, partial batch responses,
redelivery after the (local) visibility timeout, the concurrency cap and the dead-letter queue after maxReceiveCount;
and where moto's SQS is put right (billops_local.moto_fidelity). The functions are fakes (a function object, or a
module written to tmp_path)."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from billops_local.aws_environment import LocalFunction, MotoServer, aws_client
from billops_local.queue_poller import QueuePoller, lambda_record
from billops_local.template_resources import QueueSourceSpec
from support.waiting import eventually

SOURCE = QueueSourceSpec(
    function_logical_id="FakeWorker",
    event_id="Queue",
    queue_logical_id="FakeQueue",
    batch_size=10,
    maximum_batching_window_seconds=0,
    report_batch_item_failures=True,
    maximum_concurrency=None,
    enabled=True,
)


@pytest.fixture(scope="module")
def endpoint():
    server = MotoServer(port=0)
    server.start()
    requests.post(f"{server.endpoint_url}/moto-api/reset", timeout=10)
    yield server.endpoint_url
    server.stop()


@pytest.fixture
def sqs(endpoint):
    return aws_client("sqs", endpoint)


def _queue(sqs: Any, *, fifo: bool, max_receive_count: int | None = None, visibility: int = 360) -> tuple[str, str]:
    """A fresh queue (URL, ARN), with a dead-letter queue of the same kind when max_receive_count is given."""
    suffix = ".fifo" if fifo else ""
    base = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    attributes = {**base, "VisibilityTimeout": str(visibility)}
    if max_receive_count is not None:
        dead = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}{suffix}", Attributes=base)["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dead_arn,
                                                  "maxReceiveCount": max_receive_count})
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}{suffix}", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _dead_letter_url(sqs: Any, url: str) -> str:
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
        "RedrivePolicy"])
    return sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[-1])["QueueUrl"]


def _send(sqs: Any, url: str, body: str, group: str | None = None, dedup: str | None = None, **extra: Any) -> str:
    kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body, **extra}
    if group is not None:
        kwargs["MessageGroupId"] = group
        kwargs["MessageDeduplicationId"] = dedup or uuid.uuid4().hex
    return sqs.send_message(**kwargs)["MessageId"]


def _poller(function: LocalFunction, url: str, arn: str, endpoint: str, **options: Any) -> QueuePoller:
    source_changes = {key: options.pop(key) for key in list(options) if key in QueueSourceSpec.__dataclass_fields__}
    options.setdefault("failure_visibility_timeout", 1)
    options.setdefault("poll_interval", 0.02)
    return QueuePoller(function, replace(SOURCE, **source_changes), url, arn, endpoint, **options)


def _drain(poller: QueuePoller, until: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the poller did not get there in time"
        if not poller.run_once():
            time.sleep(0.02)


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _bodies(event: dict[str, Any]) -> list[str]:
    return [record["body"] for record in event["Records"]]


# ----------------------------------------------------------------------------------------------------------------
# Event shape and batches
# ----------------------------------------------------------------------------------------------------------------


def test_fifo_event_has_lambdas_sqs_shape(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=True)
    events: list[dict[str, Any]] = []
    function = LocalFunction("fake-recorder", handler=lambda event, context: events.append(event))
    message_id = _send(sqs, url, '{"operation_type": "cancel"}', group="0126015401000000123", dedup="idem-1",
                       MessageAttributes={"reason": {"DataType": "String", "StringValue": "test"},
                                          "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    poller = _poller(function, url, arn, endpoint)
    assert poller.run_once() is True

    (record,) = events[0]["Records"]
    assert list(record) == ["messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                            "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"]
    assert record["messageId"] == message_id
    assert record["body"] == '{"operation_type": "cancel"}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn and arn.endswith(".fifo")
    assert record["awsRegion"] == "us-east-1"
    attributes = record["attributes"]
    assert set(attributes) == {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                               "ApproximateFirstReceiveTimestamp", "MessageGroupId", "MessageDeduplicationId",
                               "SequenceNumber"}
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["MessageGroupId"] == "0126015401000000123"
    assert attributes["MessageDeduplicationId"] == "idem-1"
    assert all(isinstance(value, str) for value in attributes.values())
    assert record["messageAttributes"] == {
        "reason": {"stringValue": "test", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # SQS's checksum of the body
    assert _depth(sqs, url) == 0  # a successful batch is deleted


def test_standard_queue_record_has_no_fifo_attributes(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=False)
    events: list[dict[str, Any]] = []
    _send(sqs, url, "plain")
    poller = _poller(LocalFunction("fake", handler=lambda event, context: events.append(event)), url, arn, endpoint)
    assert poller.run_once()
    (record,) = events[0]["Records"]
    assert set(record["attributes"]) == {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                         "ApproximateFirstReceiveTimestamp"}
    assert record["messageAttributes"] == {} and "md5OfMessageAttributes" not in record
    assert poller.run_once() is False  # nothing left


def test_batches_hold_at_most_batch_size_messages_in_group_order(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=True)
    events: list[dict[str, Any]] = []
    for index in range(7):
        _send(sqs, url, f"m{index}", group="g")
    poller = _poller(LocalFunction("fake", handler=lambda event, context: events.append(event)), url, arn, endpoint,
                     batch_size=3)
    _drain(poller, lambda: sum(len(event["Records"]) for event in events) >= 7)
    assert [len(event["Records"]) for event in events] == [3, 3, 1]
    assert [body for event in events for body in _bodies(event)] == [f"m{index}" for index in range(7)]
    assert poller.stats.deleted_messages == 7 and _depth(sqs, url) == 0


def test_a_standard_queue_gathers_a_batch_within_the_batching_window(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=False)
    events: list[dict[str, Any]] = []
    poller = _poller(LocalFunction("fake", handler=lambda event, context: events.append(event)), url, arn, endpoint,
                     batch_size=20, maximum_batching_window_seconds=1.5)
    _send(sqs, url, "first")
    other = aws_client("sqs", endpoint)
    sender = threading.Timer(0.1, lambda: [_send(other, url, f"later{i}") for i in range(3)])
    sender.start()
    began = time.monotonic()
    assert poller.run_once()
    sender.join()
    assert sorted(_bodies(events[0])) == ["first", "later0", "later1", "later2"]
    assert time.monotonic() - began >= 1.4  # the window stays open until the batch is full or it ends


# ----------------------------------------------------------------------------------------------------------------
# Failures and redelivery
# ----------------------------------------------------------------------------------------------------------------


def test_partial_failure_deletes_the_rest_and_redelivers_the_failed_message(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=False)
    seen: list[tuple[str, str]] = []

    def handler(event, context):
        failures = []
        for record in event["Records"]:
            seen.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
            if record["body"] == "bad" and record["attributes"]["ApproximateReceiveCount"] == "1":
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    for body in ("a", "bad", "c"):
        _send(sqs, url, body)
    poller = _poller(LocalFunction("fake", handler=handler), url, arn, endpoint, failure_visibility_timeout=1)
    assert poller.run_once()
    assert sorted(body for body, _ in seen) == ["a", "bad", "c"]
    assert _depth(sqs, url) == 1  # only the failed one is left
    began = time.monotonic()
    _drain(poller, lambda: ("bad", "2") in seen)
    assert time.monotonic() - began >= 0.5  # it came back after the (local) visibility timeout, not at once
    assert _depth(sqs, url) == 0
    assert poller.stats.failed_messages == 1 and poller.stats.deleted_messages == 3


def test_a_fifo_group_stops_at_its_first_failure(endpoint, sqs) -> None:
    """Lambda keeps a failed message and every later message of its group; other groups go on."""
    url, arn = _queue(sqs, fifo=True)
    order: list[str] = []
    failed_once: set[str] = set()

    def handler(event, context):
        failures = []
        for record in event["Records"]:
            order.append(record["body"])
            if record["body"] == "a1" and "a1" not in failed_once:
                failed_once.add("a1")
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}  # a2 "succeeded" after a1 failed: it must be kept anyway

    for body, group in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")):
        _send(sqs, url, body, group=group)
    poller = _poller(LocalFunction("fake", handler=handler), url, arn, endpoint, failure_visibility_timeout=1)
    assert poller.run_once()
    assert order == ["a1", "b1", "a2", "b2"]
    assert _depth(sqs, url) == 2  # a1 and a2 kept, b1 and b2 deleted
    # Wait for the redelivery itself: moto computes the visible and the in-flight counts at two instants, so a
    # visibility timeout that ends between them reads as an empty queue (a loaded CI machine saw it).
    _drain(poller, lambda: len(order) >= 6)
    assert order[4:] == ["a1", "a2"]  # the group again, in order
    _drain(poller, lambda: _depth(sqs, url) == 0)


def test_a_raised_exception_fails_the_whole_batch(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=True)
    calls: list[list[str]] = []

    def handler(event, context):
        calls.append(_bodies(event))
        if len(calls) == 1:
            raise RuntimeError("boom")

    for body in ("x", "y"):
        _send(sqs, url, body, group=body)
    poller = _poller(LocalFunction("fake", handler=handler), url, arn, endpoint, failure_visibility_timeout=0)
    assert poller.run_once()
    assert _depth(sqs, url) == 2
    _drain(poller, lambda: len(calls) == 2)
    assert sorted(calls[1]) == ["x", "y"] and _depth(sqs, url) == 0


@pytest.mark.parametrize("answer", [
    {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-the-batch"}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{}]},
])
def test_an_unusable_batch_item_failure_fails_the_whole_batch(endpoint, sqs, answer) -> None:
    url, arn = _queue(sqs, fifo=False)
    _send(sqs, url, "one")
    _send(sqs, url, "two")
    poller = _poller(LocalFunction("fake", handler=lambda event, context: answer), url, arn, endpoint)
    assert poller.run_once()
    assert poller.stats.deleted_messages == 0 and _depth(sqs, url) == 2


@pytest.mark.parametrize("answer", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "ok"])
def test_empty_answers_are_a_success(endpoint, sqs, answer) -> None:
    url, arn = _queue(sqs, fifo=False)
    _send(sqs, url, "one")
    poller = _poller(LocalFunction("fake", handler=lambda event, context: answer), url, arn, endpoint)
    assert poller.run_once()
    assert _depth(sqs, url) == 0


def test_without_report_batch_item_failures_the_answer_is_ignored(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=False)
    _send(sqs, url, "one")

    def handler(event, context):
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    poller = _poller(LocalFunction("fake", handler=handler), url, arn, endpoint, report_batch_item_failures=False)
    assert poller.run_once()
    assert _depth(sqs, url) == 0


def test_dead_letter_queue_after_max_receive_count(endpoint, sqs, tmp_path: Path) -> None:
    """SQS's redrive (moto moves the message on the receive after the last allowed one, as SQS does)."""
    module = tmp_path / "fake_always_failing_worker.py"
    module.write_text(textwrap.dedent('''
        calls = []

        def handler(event, context):
            calls.extend(record["attributes"]["ApproximateReceiveCount"] for record in event["Records"])
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in event["Records"]]}
    '''))
    url, arn = _queue(sqs, fifo=True, max_receive_count=3)
    function = LocalFunction("fake-failing", module_path=module)
    _send(sqs, url, '{"operation_type": "refresh"}', group="g", dedup="poison")
    poller = _poller(function, url, arn, endpoint, failure_visibility_timeout=0)
    dead = _dead_letter_url(sqs, url)
    _drain(poller, lambda: _depth(sqs, dead) == 1)
    calls = sys.modules["fake_always_failing_worker"].calls
    assert calls == ["1", "2", "3"]  # maxReceiveCount receives, then the DLQ
    assert _depth(sqs, url) == 0
    (moved,) = sqs.receive_message(QueueUrl=dead, AttributeNames=["All"])["Messages"]
    assert moved["Body"] == '{"operation_type": "refresh"}'
    assert moved["Attributes"]["MessageGroupId"] == "g"


# ----------------------------------------------------------------------------------------------------------------
# Concurrency
# ----------------------------------------------------------------------------------------------------------------


def _tracking_handler(delay: float) -> tuple[Callable[[Any, Any], Any], dict[str, Any]]:
    state: dict[str, Any] = {"active": 0, "peak": 0, "groups_in_flight": set(), "overlaps": 0, "order": {}}
    lock = threading.Lock()

    def handler(event, context):
        groups = {record["attributes"].get("MessageGroupId") for record in event["Records"]}
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            if groups & state["groups_in_flight"]:
                state["overlaps"] += 1
            state["groups_in_flight"] |= groups
            for record in event["Records"]:
                state["order"].setdefault(record["attributes"].get("MessageGroupId"), []).append(record["body"])
        time.sleep(delay)
        with lock:
            state["active"] -= 1
            state["groups_in_flight"] -= groups

    return handler, state


def test_concurrency_is_capped_and_a_group_is_never_worked_on_twice_at_once(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=True)
    handler, state = _tracking_handler(0.15)
    groups = [f"sub{index}" for index in range(6)]
    for sequence in range(3):
        for group in groups:
            _send(sqs, url, f"{group}-{sequence}", group=group)
    function = LocalFunction("fake", handler=handler, max_concurrency=2)
    poller = _poller(function, url, arn, endpoint, concurrency=2, batch_size=2)
    poller.start()
    try:
        eventually(lambda: _depth(sqs, url) == 0, 20, 0.05, what="the queue to be drained")
    finally:
        poller.stop()
    assert _depth(sqs, url) == 0
    assert state["peak"] == 2  # two at once, never three
    assert function.peak_concurrency == 2
    assert state["overlaps"] == 0
    assert state["order"] == {group: [f"{group}-{sequence}" for sequence in range(3)] for group in groups}


def test_the_function_limit_holds_even_with_more_pollers(endpoint, sqs) -> None:
    url, arn = _queue(sqs, fifo=False)
    handler, state = _tracking_handler(0.1)
    for index in range(8):
        _send(sqs, url, f"m{index}")
    function = LocalFunction("fake", handler=handler, max_concurrency=1)
    poller = _poller(function, url, arn, endpoint, concurrency=3, batch_size=1)
    poller.start()
    try:
        eventually(lambda: _depth(sqs, url) == 0, 20, 0.05, what="the queue to be drained")
    finally:
        poller.stop()
    assert _depth(sqs, url) == 0 and state["peak"] == 1


def test_a_message_in_work_is_not_delivered_again_while_the_function_runs(endpoint, sqs) -> None:
    """Received with the queue's visibility timeout (as in AWS); only failures come back early."""
    url, arn = _queue(sqs, fifo=False, visibility=30)
    handler, state = _tracking_handler(1.5)
    _send(sqs, url, "slow")
    function = LocalFunction("fake", handler=handler, max_concurrency=2)
    poller = _poller(function, url, arn, endpoint, concurrency=2, failure_visibility_timeout=0)
    poller.start()
    try:
        eventually(lambda: _depth(sqs, url) == 0, 10, 0.05, what="the queue to be drained")
    finally:
        poller.stop()
    assert state["order"] == {None: ["slow"]}
    assert function.invocations == 1


# ----------------------------------------------------------------------------------------------------------------
# moto's SQS, put right (billops_local.moto_fidelity)
# ----------------------------------------------------------------------------------------------------------------


def test_fifo_redelivers_a_group_in_order_after_its_visibility_timeout(sqs) -> None:
    url, _ = _queue(sqs, fifo=True)
    for body in ("first", "second"):
        _send(sqs, url, body, group="g")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
    assert [m["Body"] for m in received] == ["first", "second"]
    time.sleep(1.2)
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
    assert [m["Body"] for m in again] == ["first", "second"]  # moto alone hands out "second" first


def test_fifo_deduplication_lasts_five_minutes_even_after_deletion(sqs) -> None:
    url, _ = _queue(sqs, fifo=True)
    first = sqs.send_message(QueueUrl=url, MessageBody="op", MessageGroupId="g", MessageDeduplicationId="idem-42")
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    again = sqs.send_message(QueueUrl=url, MessageBody="op", MessageGroupId="g", MessageDeduplicationId="idem-42")
    assert again["MessageId"]  # accepted, as SQS accepts a duplicate ...
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # ... and drops it
    other = sqs.send_message(QueueUrl=url, MessageBody="op", MessageGroupId="g", MessageDeduplicationId="idem-43")
    assert int(other["SequenceNumber"]) > int(first["SequenceNumber"])  # sequence numbers increase
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["op"]


def test_concurrent_sends_and_deletes_lose_nothing(endpoint, sqs) -> None:
    url, _ = _queue(sqs, fifo=False)
    for index in range(50):
        _send(sqs, url, f"old{index}")
    old = []
    while len(old) < 50:
        old += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])

    def send_new() -> None:
        client = aws_client("sqs", endpoint)
        for index in range(50):
            client.send_message(QueueUrl=url, MessageBody=f"new{index}")

    sender = threading.Thread(target=send_new)
    sender.start()
    for message in old:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    sender.join()
    assert _depth(sqs, url) == 50


def test_lambda_record_keeps_only_lambdas_attributes() -> None:
    record = lambda_record({"MessageId": "m", "ReceiptHandle": "r", "Body": "b", "MD5OfBody": "x",
                            "Attributes": {"ApproximateReceiveCount": 2, "SentTimestamp": "1", "Other": "no"}},
                           "arn:aws:sqs:us-east-1:123456789012:q")
    assert record["attributes"] == {"ApproximateReceiveCount": "2", "SentTimestamp": "1"}
