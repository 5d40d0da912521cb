"""End to end: the operations path's AWS pieces in `make run`'s stack - the FIFO queue and its worker, the dead-letter
queue, the schedules and their trigger, the domain event bus - as a developer or a test reaches them from outside."""

from __future__ import annotations

import json
import uuid

import pytest
from support.waiting import eventually

pytestmark = pytest.mark.e2e

OPERATIONS_QUEUE = "billops-local-OperationsQueue.fifo"
OPERATIONS_DLQ = "billops-local-OperationsDeadLetterQueue.fifo"


def test_the_banner_lists_the_operations_services(local_stack) -> None:
    output = local_stack.output
    for service in ("domain-events", "queue-pollers", "schedules"):
        assert f"  {service}" in output, service
    assert "billops-local-OperationsQueue.fifo -> OperationWorkerFunction (x2)" in output
    assert "/__local/schedules/" in output


def test_local_settings_reach_the_stack(local_stack) -> None:
    overview = local_stack.local_overview()
    # WorkerFixedEgressIp: the local stack's default (the sandbox whitelists 127.0.0.1 for allowUpgrade).
    assert overview["overridden_parameters"] == {"SettleWindowSeconds": str(local_stack.settle_window_seconds),
                                                 "WorkerFixedEgressIp": "true"}
    (poller,) = overview["queue_pollers"]
    assert (poller["function"], poller["concurrency"]) == ("OperationWorkerFunction", 2)
    assert poller["failure_visibility_timeout"] == local_stack.visibility_timeout_seconds
    periods = {s["function"]: s["local_period_seconds"] for s in overview["schedules"]}
    assert periods == {"OperationSchedulerFunction": 1.0, "ReconciliationFunction": 15.0}


def test_the_scheduler_runs_by_itself_and_on_demand(local_stack) -> None:
    def fired() -> int:
        return next(s["fired"] for s in local_stack.local_overview()["schedules"]
                    if s["function"] == "OperationSchedulerFunction")

    eventually(lambda: fired() >= 1, timeout=15, what="the scheduler to fire by itself")
    answer = local_stack.trigger_schedule("OperationSchedulerFunction")
    assert answer["function"] == "OperationSchedulerFunction"
    assert answer["event"]["detail-type"] == "Scheduled Event"
    assert answer["event"]["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/billops-local-OperationSchedulerFunctionEveryMinute"]


def test_published_domain_events_can_be_read(local_stack) -> None:
    local_stack.domain_events()  # forget earlier ones
    events = local_stack.boto3_client("events")
    marker = uuid.uuid4().hex
    answer = events.put_events(Entries=[{"EventBusName": "billops-local-DomainEventBus", "Source": "billops.e2e",
                                         "DetailType": "E2eProbe", "Detail": json.dumps({"marker": marker})}])
    assert answer["FailedEntryCount"] == 0
    received = eventually(lambda: [e for e in local_stack.domain_events(wait_seconds=1)
                                    if e.get("detail", {}).get("marker") == marker], timeout=10,
                          what="the probe event on the tap queue")
    (event,) = received
    assert (event["source"], event["detail-type"]) == ("billops.e2e", "E2eProbe")


def test_an_unusable_operation_message_ends_in_the_dead_letter_queue(local_stack) -> None:
    sqs = local_stack.boto3_client("sqs")
    queue = sqs.get_queue_url(QueueName=OPERATIONS_QUEUE)["QueueUrl"]
    dead = sqs.get_queue_url(QueueName=OPERATIONS_DLQ)["QueueUrl"]
    marker = uuid.uuid4().hex
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"not": "an operation", "marker": marker}),
                     MessageGroupId="0126015401000000999", MessageDeduplicationId=marker)

    def dead_lettered() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                       MessageAttributeNames=["All"]).get("Messages", [])
        return [m for m in messages if marker in m["Body"]]

    # The worker rejects it (copied to the dead-letter queue), or fails it until the redrive policy moves it
    # (maxReceiveCount 5 x the 1 s local visibility timeout): either way it ends there, and leaves the queue.
    (message,) = eventually(dead_lettered, timeout=30, what="the message in the dead-letter queue")
    assert json.loads(message["Body"])["marker"] == marker
    eventually(lambda: int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"]) == 0, timeout=30, what="the operations queue to be empty")
