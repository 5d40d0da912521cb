"""The stream poller against moto: Lambda's event shape, order, batches, partial batch responses, bisection,
retries and the on-failure queue. The functions are fakes (a function object or a module written to tmp_path)."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import requests
from billops_local.aws_environment import LocalFunction, MotoServer, aws_client
from billops_local.stream_poller import StreamPoller, lambda_record
from billops_local.template_resources import StreamSourceSpec
from support.waiting import eventually

SOURCE = StreamSourceSpec(
    function_logical_id="FakeFunction",
    event_id="Stream",
    table_logical_id="FakeTable",
    starting_position="TRIM_HORIZON",
    batch_size=3,
    maximum_batching_window_seconds=0,
    maximum_retry_attempts=2,
    bisect_batch_on_function_error=False,
    report_batch_item_failures=True,
    on_failure_queue_logical_id="FakeQueue",
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
def table(endpoint) -> tuple[str, str]:
    """A fresh table with a NEW_IMAGE stream: (name, stream ARN)."""
    name = f"stream-test-{uuid.uuid4().hex[:8]}"
    description = aws_client("dynamodb", endpoint).create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]
    return name, description["LatestStreamArn"]


@pytest.fixture
def queue_url(endpoint) -> str:
    return aws_client("sqs", endpoint).create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def _put(endpoint: str, table_name: str, *keys: str) -> None:
    dynamodb = aws_client("dynamodb", endpoint)
    for key in keys:
        dynamodb.put_item(TableName=table_name, Item={"pk": {"S": key}, "blob": {"B": b"\x00\xff"}, "n": {"N": "1"}})


def _keys(event: dict[str, Any]) -> list[str]:
    return [record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]]


def _poller(function: LocalFunction, stream_arn: str, endpoint: str, queue_url: str | None = None,
            **source_changes: Any) -> StreamPoller:
    return StreamPoller(
        function,
        replace(SOURCE, **source_changes),
        stream_arn,
        endpoint,
        on_failure_queue_url=queue_url,
        poll_interval=0.02,
        retry_backoff=0,
    )


def _drain(poller: StreamPoller, until: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the poller did not get there in time"
        if not poller.run_once():
            time.sleep(0.01)


def _dead_letters(endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    messages = aws_client("sqs", endpoint).receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def test_delivers_records_in_order_in_batches_with_lambdas_event_shape(endpoint, table) -> None:
    table_name, stream_arn = table
    events: list[dict[str, Any]] = []
    function = LocalFunction("fake-recorder", handler=lambda event, context: events.append(event))
    keys = [f"k{index}" for index in range(7)]
    _put(endpoint, table_name, *keys)
    poller = _poller(function, stream_arn, endpoint)
    _drain(poller, lambda: sum(len(event["Records"]) for event in events) >= 7)

    assert [len(event["Records"]) for event in events] == [3, 3, 1]
    assert [key for event in events for key in _keys(event)] == keys
    record = events[0]["Records"][0]
    assert set(record) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
                           "eventSourceARN"}
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventSourceARN"] == stream_arn
    dynamodb = record["dynamodb"]
    assert set(dynamodb) == {"ApproximateCreationDateTime", "Keys", "NewImage", "SequenceNumber", "SizeBytes",
                             "StreamViewType"}
    assert dynamodb["StreamViewType"] == "NEW_IMAGE"
    assert dynamodb["Keys"] == {"pk": {"S": "k0"}}
    assert dynamodb["NewImage"] == {"pk": {"S": "k0"}, "blob": {"B": "AP8="}, "n": {"N": "1"}}
    assert isinstance(dynamodb["ApproximateCreationDateTime"], int)
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for e in events for r in e["Records"]]
    assert sequence_numbers == sorted(sequence_numbers)
    json.dumps(events)  # the event is plain JSON, as Lambda delivers it
    assert poller.stats.delivered_records == 7


def test_redelivers_from_the_first_failed_record_of_a_partial_batch_response(endpoint, table, queue_url) -> None:
    table_name, stream_arn = table
    events: list[dict[str, Any]] = []
    failed_once: set[str] = set()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        failures = []
        for record in event["Records"]:
            key = record["dynamodb"]["Keys"]["pk"]["S"]
            if key == "b" and key not in failed_once:  # b fails the first time only
                failed_once.add(key)
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
        return {"batchItemFailures": failures}

    _put(endpoint, table_name, "a", "b", "c", "d")
    poller = _poller(LocalFunction("fake-partial", handler=handler), stream_arn, endpoint, queue_url)
    _drain(poller, lambda: "d" in [key for event in events for key in _keys(event)])

    assert [_keys(event) for event in events] == [["a", "b", "c"], ["b", "c", "d"]]
    assert _dead_letters(endpoint, queue_url) == []


def test_an_unknown_item_identifier_fails_the_whole_batch(endpoint, table) -> None:
    table_name, stream_arn = table
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        return {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]} if len(events) == 1 else {}

    _put(endpoint, table_name, "a", "b")
    poller = _poller(LocalFunction("fake-bad-identifier", handler=handler), stream_arn, endpoint)
    _drain(poller, lambda: len(events) >= 2)
    assert [_keys(event) for event in events] == [["a", "b"], ["a", "b"]]


def test_gives_up_after_the_retries_and_describes_the_batch_in_the_on_failure_queue(
    endpoint, table, queue_url
) -> None:
    table_name, stream_arn = table
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        events.append(event)
        if "poison" in _keys(event):
            raise ValueError("cannot project this one")

    _put(endpoint, table_name, "a", "poison", "c", "d", "e")
    poller = _poller(LocalFunction("fake-poisoned", handler=handler), stream_arn, endpoint, queue_url,
                     bisect_batch_on_function_error=True, maximum_retry_attempts=2)
    _drain(poller, lambda: "e" in [key for event in events for key in _keys(event)])

    # 3 records fail, are split in two (not a retry), "a" alone succeeds, "poison" alone fails 1 + 2 retries.
    assert [_keys(event) for event in events] == [
        ["a", "poison", "c"],
        ["a", "poison"],
        ["a"],
        ["poison", "c", "d"],
        ["poison", "c"],
        ["poison"],
        ["poison"],
        ["poison"],
        ["c", "d", "e"],
    ]
    (letter,) = _dead_letters(endpoint, queue_url)
    info = letter["DDBStreamBatchInfo"]
    poison_sequence = next(
        r["dynamodb"]["SequenceNumber"] for e in events for r in e["Records"] if _keys({"Records": [r]}) == ["poison"]
    )
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_sequence
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream_arn
    assert info["shardId"]
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["approximateInvokeCount"] == 3
    assert letter["requestContext"]["functionArn"].endswith(":function:fake-poisoned")
    assert letter["responseContext"]["functionError"] == "Unhandled"
    assert poller.stats.dead_lettered_batches == 1


def test_without_bisection_the_whole_failing_batch_is_dead_lettered(endpoint, table, queue_url) -> None:
    table_name, stream_arn = table
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append(_keys(event))
        if "poison" in _keys(event):
            raise ValueError("no")

    _put(endpoint, table_name, "poison", "b", "c", "d")
    poller = _poller(LocalFunction("fake-no-bisect", handler=handler), stream_arn, endpoint, queue_url,
                     maximum_retry_attempts=0)
    _drain(poller, lambda: ["d"] in calls)
    assert calls == [["poison", "b", "c"], ["d"]]
    (letter,) = _dead_letters(endpoint, queue_url)
    assert letter["DDBStreamBatchInfo"]["batchSize"] == 3


def test_polls_in_a_thread_and_loads_handlers_from_a_module_file(endpoint, table, tmp_path: Path) -> None:
    table_name, stream_arn = table
    module = tmp_path / "fake_stream_module_handler.py"
    output = tmp_path / "delivered.jsonl"
    module.write_text(textwrap.dedent(f"""
        import json

        def handler(event, context):
            assert context.function_name == "fake-module"
            with open({str(output)!r}, "a") as sink:
                for record in event["Records"]:
                    sink.write(json.dumps(record["dynamodb"]["Keys"]["pk"]["S"]) + "\\n")
            return {{"batchItemFailures": []}}
    """))
    function = LocalFunction("fake-module", module_path=module)
    poller = _poller(function, stream_arn, endpoint, maximum_batching_window_seconds=0.2, batch_size=25)
    poller.start()
    try:
        _put(endpoint, table_name, "x", "y", "z")
        eventually(lambda: output.exists() and len(output.read_text().splitlines()) >= 3, 10, 0.05,
                   what="three records delivered")
    finally:
        poller.stop()
    assert [json.loads(line) for line in output.read_text().splitlines()] == ["x", "y", "z"]
    assert poller.stats.invocations == 1  # the batching window gathered all three


def test_latest_skips_what_was_written_before_the_poller_started(endpoint, table) -> None:
    table_name, stream_arn = table
    events: list[dict[str, Any]] = []
    _put(endpoint, table_name, "old")
    poller = _poller(LocalFunction("fake-latest", handler=lambda e, c: events.append(e)), stream_arn, endpoint,
                     starting_position="LATEST")
    poller.run_once()
    _put(endpoint, table_name, "new")
    _drain(poller, lambda: bool(events))
    assert [_keys(event) for event in events] == [["new"]]


def test_lambda_record_converts_boto3_values_to_lambdas_json() -> None:
    from datetime import datetime

    record = {
        "eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC),
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}, "bs": {"BS": [b"\x01"]}, "m": {"M": {"b": {"B": b"\x02"}}}},
            "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE",
        },
    }
    converted = lambda_record(record, "arn:stream")
    assert converted["dynamodb"]["ApproximateCreationDateTime"] == 1767225600
    assert converted["dynamodb"]["NewImage"]["bs"] == {"BS": ["AQ=="]}
    assert converted["dynamodb"]["NewImage"]["m"] == {"M": {"b": {"B": "Ag=="}}}
    assert converted["eventSourceARN"] == "arn:stream"
