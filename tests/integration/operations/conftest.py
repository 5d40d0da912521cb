"""The operations stack for tests: moto (the template's resources), a real CCBill sandbox, and every handler.

``ops`` drives the real handlers with the events AWS would give them:
* SQS-shaped batches for the worker (``ops.work()`` receives from the FIFO queue like Lambda's event source mapping:
  records reported in batchItemFailures stay on the queue and are made visible again at once, the rest deleted);
* schedule events for the scheduler and the reconciliation job;
* HTTP API events for the webhook receiver (fed with what the sandbox posted) and the upgrade postback;
* DynamoDB stream records for the projector.
Domain events are read back from EventBridge through a rule whose target is a capture queue.

The template's OperationsTable / OperationsQueue / OperationsDeadLetterQueue / DomainEventBus are used when
template.yaml has them; until then this fixture creates them from the contract in docs/architecture.md (same
physical names as the local stack would give them). Likewise the subscriptions table's by_original_subscription
index is added when the template does not define it yet.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from billops_local.aws_environment import aws_client
from billops_local.ccbill_sandbox import start_sandbox
from billops_local.ccbill_sandbox.local_service import client_environment
from billops_local.http_api_events import http_api_event
from billops_local.template_resources import LOCAL_PREFIX

TOKEN = "operations-test-token"
CCBILL_SOURCE_IP = "64.38.240.10"

OPERATIONS_TABLE = LOCAL_PREFIX + "OperationsTable"
OPERATIONS_QUEUE = LOCAL_PREFIX + "OperationsQueue.fifo"
OPERATIONS_DLQ = LOCAL_PREFIX + "OperationsDeadLetterQueue.fifo"
EVENT_BUS = LOCAL_PREFIX + "DomainEventBus"


# --- resources ----------------------------------------------------------------------------------------------------


def _ensure_operations_table(dynamodb: Any) -> str:
    existing = dynamodb.list_tables()["TableNames"]
    names = [name for name in existing if name.endswith("OperationsTable")]
    if names:
        return names[0]
    def key(name: str, kind: str) -> dict:
        return {"AttributeName": name, "KeyType": kind}

    def index(name: str, hash_key: str, range_key: str) -> dict:
        return {"IndexName": name, "KeySchema": [key(hash_key, "HASH"), key(range_key, "RANGE")],
                "Projection": {"ProjectionType": "ALL"}}

    dynamodb.create_table(
        TableName=OPERATIONS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in (
            "operation_id", "subscription_id", "created_at", "waiting", "due_at", "status", "updated_at")],
        KeySchema=[key("operation_id", "HASH")],
        GlobalSecondaryIndexes=[index("by_subscription", "subscription_id", "created_at"),
                                index("by_due", "waiting", "due_at"),
                                index("by_status", "status", "updated_at")],
    )
    return OPERATIONS_TABLE


def _ensure_queue(sqs: Any, suffix: str, name: str, attributes: dict[str, str]) -> str:
    for url in sqs.list_queues().get("QueueUrls", []):
        if url.endswith(suffix):
            return url
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _ensure_bus(events: Any) -> str:
    for bus in events.list_event_buses().get("EventBuses", []):
        if bus["Name"].endswith("DomainEventBus"):
            return bus["Name"]
    events.create_event_bus(Name=EVENT_BUS)
    return EVENT_BUS


def _ensure_original_subscription_index(dynamodb: Any, table: str) -> None:
    description = dynamodb.describe_table(TableName=table)["Table"]
    if any(index["IndexName"] == "by_original_subscription" for index in description.get("GlobalSecondaryIndexes",
                                                                                            [])):
        return
    dynamodb.update_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "original_subscription_id", "AttributeType": "S"},
                              {"AttributeName": "signed_up_at", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "by_original_subscription",
            "KeySchema": [{"AttributeName": "original_subscription_id", "KeyType": "HASH"},
                          {"AttributeName": "signed_up_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}}],
    )


# --- the sandbox's webhooks, captured and replayed into the receiver ---------------------------------------------


@dataclass
class Captured:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookCapture:
    url: str = ""
    deliveries: list[Captured] = field(default_factory=list)
    replayed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_new(self) -> list[Captured]:
        with self.lock:
            new = self.deliveries[self.replayed:]
            self.replayed = len(self.deliveries)
            return new


@pytest.fixture
def webhook_capture():
    capture = WebhookCapture()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            with capture.lock:
                capture.deliveries.append(Captured(parts.path, parts.query, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    capture.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/ccbill?token={TOKEN}"
    yield capture
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox(webhook_capture):
    handle = start_sandbox("127.0.0.1", 0, webhook_capture.url, "json", webhook_retry_delays=(0.05, 0.1))
    yield handle
    handle.stop()


# --- the stack ----------------------------------------------------------------------------------------------------


class OperationsStack:
    def __init__(self, tables: Any, sandbox: Any, capture: WebhookCapture, handlers: dict[str, Any], context: Any,
                 names: dict[str, str], loader: Any) -> None:
        self.loader = loader
        self.tables = tables
        self.sandbox = sandbox
        self.capture = capture
        self.handlers = handlers
        self.context = context
        self.names = names
        self.sqs = aws_client("sqs", tables.endpoint_url)
        self.dynamodb = aws_client("dynamodb", tables.endpoint_url)
        self._events: list[dict[str, Any]] = []

    # messages ------------------------------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> str:
        from billops.operations.operation_queue import enqueue

        return enqueue(message, queue_url=self.names["queue_url"], sqs=self.sqs)

    def send_raw(self, body: str, group: str = "raw", dedup: str | None = None) -> None:
        import hashlib

        self.sqs.send_message(QueueUrl=self.names["queue_url"], MessageBody=body, MessageGroupId=group,
                              MessageDeduplicationId=dedup or hashlib.sha256(body.encode()).hexdigest())

    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.names["queue_url"], MaxNumberOfMessages=max_messages,
                                          AttributeNames=["All"], MessageAttributeNames=["All"],
                                          VisibilityTimeout=60)
        return answer.get("Messages", [])

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        arn = _queue_arn(self.sqs, self.names["queue_url"])
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": m["Attributes"].get("ApproximateReceiveCount", "1"),
                           "SentTimestamp": m["Attributes"].get("SentTimestamp", "0"),
                           "SenderId": m["Attributes"].get("SenderId", "AIDA"),
                           "ApproximateFirstReceiveTimestamp": m["Attributes"].get(
                               "ApproximateFirstReceiveTimestamp", "0"),
                           "SequenceNumber": m["Attributes"].get("SequenceNumber", "1"),
                           "MessageGroupId": m["Attributes"].get("MessageGroupId", ""),
                           "MessageDeduplicationId": m["Attributes"].get("MessageDeduplicationId", "")},
            "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": "us-east-1"} for m in messages]}

    def invoke_worker(self, messages: list[dict[str, Any]], *, settle: bool = True) -> dict[str, Any]:
        """One worker invocation on ``messages``, then what Lambda does with the answer (delete / release)."""
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        try:
            response = self.handlers["operation_worker"].handler(self.sqs_event(messages), self.context)
        except BatchProcessingError:
            # Every record failed: the invocation errs and Lambda hands the whole batch back to the queue.
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages],
                        "invocation_error": True}
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] in failed:
                if settle:
                    self.sqs.change_message_visibility(QueueUrl=self.names["queue_url"],
                                                       ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
            else:
                self.sqs.delete_message(QueueUrl=self.names["queue_url"], ReceiptHandle=message["ReceiptHandle"])
        return response

    def work(self, rounds: int = 5) -> list[dict[str, Any]]:
        """Receive and process until the queue is empty (or ``rounds`` batches were handled)."""
        responses = []
        for _ in range(rounds):
            messages = self.receive()
            if not messages:
                break
            responses.append(self.invoke_worker(messages))
        return responses

    def queue_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.names["queue_url"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.names["dlq_url"], MaxNumberOfMessages=10,
                                          MessageAttributeNames=["All"], AttributeNames=["All"])
        return answer.get("Messages", [])

    # schedules -----------------------------------------------------------------------------------------------------

    def schedule_event(self, rule: str) -> dict[str, Any]:
        return {"version": "0", "id": "00000000-0000-0000-0000-000000000001", "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "123456789012", "time": "2026-01-01T00:00:00Z",
                "region": "us-east-1", "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"],
                "detail": {}}

    def run_scheduler(self) -> dict[str, Any]:
        return self.handlers["operation_scheduler"].handler(self.schedule_event("scheduler"), self.context)

    def run_reconciliation(self) -> dict[str, Any]:
        return self.handlers["reconciliation"].handler(self.schedule_event("reconciliation"), self.context)

    # webhooks and postbacks ----------------------------------------------------------------------------------------

    def deliver_webhooks(self) -> list[int]:
        """Everything the sandbox posted so far -> the webhook receiver -> the events table's stream -> projector."""
        assert self.sandbox.wait_for_webhooks(10)
        statuses = []
        for delivery in self.capture.take_new():
            headers = {name.lower(): value for name, value in delivery.headers.items()
                       if name.lower() in ("content-type", "user-agent")}
            event = http_api_event("POST", delivery.path, delivery.query, headers, delivery.body, CCBILL_SOURCE_IP,
                                   route_key="POST /webhooks/ccbill")
            statuses.append(self.handlers["webhook_receiver"].handler(event, self.context)["statusCode"])
        self.project()
        return statuses

    def project(self) -> dict[str, Any]:
        records = self.tables.new_stream_records()
        if not records:
            return {"batchItemFailures": []}
        return self.handlers["subscription_projector"].handler({"Records": records}, self.context)

    def post_upgrade_postback(self, outcome: str, fields: dict[str, str], *, token: str = TOKEN,
                              source_ip: str = CCBILL_SOURCE_IP) -> dict[str, Any]:
        body = urlencode(fields).encode()
        event = http_api_event("POST", f"/postbacks/ccbill/upgrade/{outcome}", urlencode({"token": token}),
                               {"content-type": "application/x-www-form-urlencoded"}, body, source_ip,
                               route_key="POST /postbacks/ccbill/upgrade/{outcome}",
                               path_parameters={"outcome": outcome})
        answer = self.handlers["upgrade_postback"].handler(event, self.context)
        return {"status": answer["statusCode"], "body": json.loads(answer["body"])}

    # reading -------------------------------------------------------------------------------------------------------

    def operation(self, idempotency_key: str) -> dict[str, Any]:
        from billops.operations.operation_records import operation_id_for

        return self.record(operation_id_for(idempotency_key))

    def record(self, operation_id: str) -> dict[str, Any]:
        from billops.storage.operations_table import OperationsTable

        record = OperationsTable(self.names["operations_table"], self.dynamodb).get(operation_id)
        assert record is not None, f"no operation {operation_id}"
        return record

    def operations(self) -> list[dict[str, Any]]:
        from billops.storage.events_table import from_dynamodb

        items = self.dynamodb.scan(TableName=self.names["operations_table"])["Items"]
        # The upgrade guard's items (upgrade_guard.py) share the table but are not operations.
        return [record for record in map(from_dynamodb, items) if record.get("record_type") != "upgrade_guard"]

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        return self.tables.subscription(subscription_id)

    def events(self) -> list[dict[str, Any]]:
        """Every domain event put on the bus so far (read through the capture queue)."""
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.names["capture_url"], MaxNumberOfMessages=10,
                                              WaitTimeSeconds=0)
            messages = answer.get("Messages", [])
            if not messages:
                return list(self._events)
            for message in messages:
                self._events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.names["capture_url"], ReceiptHandle=message["ReceiptHandle"])

    def events_of(self, detail_type: str, operation_id: str | None = None) -> list[dict[str, Any]]:
        return [event for event in self.events() if event["detail-type"] == detail_type
                and (operation_id is None or event["detail"].get("operation_id") == operation_id)]

    # the sandbox ---------------------------------------------------------------------------------------------------

    def new_subscription(self, **overrides: Any) -> str:
        fields = {"client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95",
                  "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30, "rebills": 99,
                  "currency_code": "840"}
        fields.update(overrides)
        subscription_id = self.sandbox.create_subscription(**fields)
        self.deliver_webhooks()
        return subscription_id

    def calls(self, action: str | None = None) -> list[dict[str, Any]]:
        return [call for call in self.sandbox.calls() if action is None or call["action"] == action]

    def charges(self) -> list[dict[str, Any]]:
        return [entry for entry in self.sandbox.ledger() if entry["kind"] == "charge"]

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def reload(self, *names: str) -> None:
        """Import handlers afresh (a cold start: they read the environment again)."""
        for name in names:
            self.handlers[name] = self.loader(name)

    def services(self, name: str = "operation_worker") -> Any:
        return self.handlers[name].services

    def crash_once_after_the_call(self) -> dict[str, int]:
        """The worker's outcome write raises once: the process 'dies' between the CCBill call and the record
        update."""
        from billops.storage.errors import StorageUnavailable

        table = self.services().table
        original = table.transition
        state = {"crashed": 0}

        def transition(operation_id, *, sources, target, **kwargs):
            if not state["crashed"] and tuple(sources) == ("in_progress",) and target != "in_progress":
                state["crashed"] += 1
                raise StorageUnavailable("simulated crash between the CCBill call and the outcome write")
            return original(operation_id, sources=sources, target=target, **kwargs)

        table.transition = transition
        return state


@pytest.fixture
def ops(aws_tables, sandbox, webhook_capture, monkeypatch, handler_loader, lambda_context) -> OperationsStack:
    endpoint = aws_tables.endpoint_url
    dynamodb = aws_client("dynamodb", endpoint)
    sqs = aws_client("sqs", endpoint)
    events = aws_client("events", endpoint)

    table = _ensure_operations_table(dynamodb)
    dlq_url = _ensure_queue(sqs, "OperationsDeadLetterQueue.fifo", OPERATIONS_DLQ, {"FifoQueue": "true"})
    queue_url = _ensure_queue(sqs, "OperationsQueue.fifo", OPERATIONS_QUEUE, {
        "FifoQueue": "true", "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": _queue_arn(sqs, dlq_url), "maxReceiveCount": 5})})
    bus = _ensure_bus(events)
    capture_url = sqs.create_queue(QueueName="operations-test-capture")["QueueUrl"]
    events.put_rule(Name="capture-billops", EventBusName=bus, EventPattern=json.dumps({"source": ["billops"]}))
    events.put_targets(Rule="capture-billops", EventBusName=bus,
                       Targets=[{"Id": "capture", "Arn": _queue_arn(sqs, capture_url)}])
    _ensure_original_subscription_index(dynamodb, aws_tables.subscriptions_table)

    for name, value in {
        "BILLOPS_ENV": "local",
        "BILLOPS_WEBHOOK_TOKEN": TOKEN,
        "BILLOPS_OPERATIONS_TABLE": table,
        "BILLOPS_OPERATIONS_QUEUE_URL": queue_url,
        "BILLOPS_OPERATIONS_DLQ_URL": dlq_url,
        "BILLOPS_EVENT_BUS_NAME": bus,
        "BILLOPS_CCBILL_READ_TIMEOUT": "1",
        "BILLOPS_CCBILL_CONNECT_TIMEOUT": "1",
        "BILLOPS_OPERATION_RETRY_BASE_SECONDS": "0",
        "BILLOPS_OPERATION_LEASE_SECONDS": "1",
        "BILLOPS_SETTLE_WINDOW_SECONDS": "3",
        "BILLOPS_RECONCILE_REFRESH_LIMIT": "0",
        # As a stack with a fixed egress IP: allowUpgrade posts, the sandbox set up for them (from 127.0.0.1).
        "BILLOPS_UPGRADE_SECURITY": "backend_post",
        **client_environment(endpoint, sandbox, None),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BILLOPS_UPGRADE_KEY", raising=False)
    sandbox.set_upgrade_security("backend_post", ("127.0.0.1/32",))

    handlers = {name: handler_loader(name) for name in (
        "webhook_receiver", "subscription_projector", "operation_worker", "operation_scheduler", "reconciliation",
        "upgrade_postback")}
    return OperationsStack(aws_tables, sandbox, webhook_capture, handlers, lambda_context, {
        "operations_table": table, "queue_url": queue_url, "dlq_url": dlq_url, "bus": bus,
        "capture_url": capture_url}, handler_loader)
