"""Domain events made observable locally: every event published on the template's event buses is copied to a
local SQS queue that tests and people can read.

moto delivers PutEvents to the SQS targets of matching rules (verified for moto 5: the message body is the whole
EventBridge event, ``{"version", "id", "detail-type", "source", "account", "time", "region", "resources",
"detail"}``). The tap is a rule on each bus, ``billops-local-domain-events-tap``, matching every event of the
account, with one target: the standard queue ``billops-local-domain-events``. It is local only (not in the
template), so AWS has nothing of it. Reading it::

    aws --endpoint-url http://127.0.0.1:5000 sqs receive-message --max-number-of-messages 10 \\
        --queue-url http://127.0.0.1:5000/123456789012/billops-local-domain-events

or ``read_domain_events(endpoint_url)`` from Python. Nothing of an event is logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from billops_local.aws_environment import aws_client
from billops_local.template_resources import LOCAL_ACCOUNT_ID

DOMAIN_EVENTS_QUEUE = "billops-local-domain-events"
TAP_RULE = "billops-local-domain-events-tap"
TAP_TARGET_ID = "billops-local-domain-events"


class DomainEventsTap:
    """Creates the tap queue and a catch-all rule on each bus (``start()``); ``read()`` takes what arrived."""

    def __init__(self, endpoint_url: str, bus_names: Iterable[str], queue_name: str = DOMAIN_EVENTS_QUEUE) -> None:
        self.endpoint_url = endpoint_url
        self.bus_names = list(bus_names)
        self.queue_name = queue_name
        self.queue_url: str | None = None
        self.queue_arn: str | None = None

    def start(self) -> None:
        sqs = aws_client("sqs", self.endpoint_url)
        self.queue_url = sqs.create_queue(QueueName=self.queue_name,
                                          Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events = aws_client("events", self.endpoint_url)
        for bus in self.bus_names:
            events.put_rule(
                Name=TAP_RULE,
                EventBusName=bus,
                EventPattern=json.dumps({"account": [LOCAL_ACCOUNT_ID]}),
                State="ENABLED",
                Description="billops local stack: copies every domain event to the billops-local-domain-events queue",
            )
            events.put_targets(Rule=TAP_RULE, EventBusName=bus,
                               Targets=[{"Id": TAP_TARGET_ID, "Arn": self.queue_arn}])

    def describe(self) -> str:
        if not self.bus_names:
            return "no event bus in the template"
        return f"{', '.join(self.bus_names)} -> SQS {self.queue_url}"

    def read(self, max_events: int = 100, *, wait_seconds: float = 0.0, delete: bool = True) -> list[dict[str, Any]]:
        if self.queue_url is None:
            raise RuntimeError("the domain events tap is not started")
        return read_domain_events(self.endpoint_url, max_events=max_events, wait_seconds=wait_seconds,
                                  delete=delete, queue_url=self.queue_url)


def read_domain_events(
    endpoint_url: str,
    *,
    max_events: int = 100,
    wait_seconds: float = 0.0,
    delete: bool = True,
    queue_url: str | None = None,
) -> list[dict[str, Any]]:
    """The domain events published since the last read (EventBridge's event documents, oldest first as far as
    SQS keeps order); waits up to ``wait_seconds`` for the first one. ``delete=False`` leaves them to be read
    again after SQS's visibility timeout."""
    sqs = aws_client("sqs", endpoint_url)
    url = queue_url or sqs.get_queue_url(QueueName=DOMAIN_EVENTS_QUEUE)["QueueUrl"]
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_seconds
    while len(events) < max_events:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, max_events - len(events)),
                                     WaitTimeSeconds=0, VisibilityTimeout=0 if not delete else 30)
        messages = answer.get("Messages") or []
        if not messages:
            if events or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
            continue
        for message in messages:
            events.append(json.loads(message["Body"]))
        if delete:
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)
            ])
        else:
            break  # with VisibilityTimeout 0 the same messages would come straight back
    return events
