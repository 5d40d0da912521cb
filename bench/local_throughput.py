"""The local stack (``python -m billops_local``, i.e. ``make run``) under load: sustained webhook throughput, and
the latency of an operation from the request to CCBill's answer.

The stack is started as a subprocess on free loopback ports (as tests/e2e does) and driven over HTTP only:

* webhooks: a few client threads post distinct deliveries (the 20 types' samples, JSON) to the HTTP API emulator
  for a fixed time; reported: accepted deliveries per second, errors, client-side latency, and whether the events
  table holds exactly the accepted deliveries afterwards (read from the stack's moto);
* operations: subscriptions are created at the CCBill sandbox (whose NewSaleSuccess webhooks reach the receiver and
  the projector), then discount operations are put on the FIFO queue one at a time, paced; each operation record's
  ``call_finished_at`` (written when CCBill answered) and ``completed_at`` are compared with the moment the message
  was sent.

The local stack runs moto in a process of its own and each function in execution environments of its own (one
invocation at a time each; the receiver scales out to 4 while the client threads keep 4 requests in flight, so the
first seconds include those cold starts), all on one machine: these numbers describe the laptop stack, not AWS.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from bench.isolated import ROOT, clean_environment, write_result
from bench.stats import summary

READY_LINE = "billops local stack ready"
TOKEN = "bench-local-token"
OPERATIONS_QUEUE = "billops-local-OperationsQueue.fifo"
OPERATIONS_TABLE = "billops-local-OperationsTable"
EVENTS_TABLE = "billops-local-EventsTable"
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
FINAL = {"succeeded", "failed", "rejected"}


def _free_ports(count: int) -> list[int]:
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class LocalStack:
    def __init__(self) -> None:
        self.aws_port, self.api_port, self.sandbox_port = _free_ports(3)
        env = clean_environment(
            BILLOPS_AWS_PORT=str(self.aws_port), BILLOPS_API_PORT=str(self.api_port),
            BILLOPS_SANDBOX_PORT=str(self.sandbox_port), BILLOPS_WEBHOOK_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
        for name in [name for name in env if name.startswith("AWS_")]:
            env.pop(name)  # the stack sets its own
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "billops_local"], cwd=ROOT, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ready.wait(90)
        if self.process.poll() is not None or not any(line.strip() == READY_LINE for line in self.lines):
            self.stop()
            raise RuntimeError("the local stack did not start:\n" + "".join(self.lines[-40:]))
        self.start_seconds = time.monotonic() - self.started
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.aws_endpoint = f"http://127.0.0.1:{self.aws_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"

    def _read(self) -> None:
        for line in self.process.stdout:
            if len(self.lines) < 5000:
                self.lines.append(line)
            if line.strip() == READY_LINE:
                self.ready.set()
        self.ready.set()

    def client(self, service: str) -> Any:
        from billops_local.aws_environment import aws_client

        return aws_client(service, self.aws_endpoint)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.reader.join(5)
        return self.process.returncode


def _count(dynamodb: Any, table: str) -> int:
    total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
    while True:
        answer = dynamodb.scan(**kwargs)
        total += answer["Count"]
        if "LastEvaluatedKey" not in answer:
            return total
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def webhook_load(stack: LocalStack, seconds: float, threads: int) -> dict[str, Any]:
    import requests
    from billops_local.webhook_samples import encode_body, webhook_query

    from bench.payloads import delivery_mix

    before = _count(stack.client("dynamodb"), EVENTS_TABLE)
    deadline = time.monotonic() + seconds
    results: list[list[tuple[int, float]]] = [[] for _ in range(threads)]
    errors: list[list[str]] = [[] for _ in range(threads)]

    def worker(index: int) -> None:
        session = requests.Session()
        deliveries = delivery_mix(1_000_000, run=60 + index)
        while time.monotonic() < deadline:
            delivery = next(deliveries)
            body, content_type = encode_body(delivery.fields, delivery.body_format)
            url = f"{stack.api_url}/webhooks/ccbill?{urlencode(webhook_query(delivery.event_type, delivery.fields, TOKEN))}"
            started = time.perf_counter()
            try:
                answer = session.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)
                results[index].append((answer.status_code, (time.perf_counter() - started) * 1000))
            except requests.RequestException as error:
                errors[index].append(type(error).__name__)

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 60)
    elapsed = time.monotonic() - started
    flat = [entry for part in results for entry in part]
    accepted = [ms for status, ms in flat if status == 200]
    statuses: dict[str, int] = {}
    for status, _ in flat:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    time.sleep(0.5)
    stored = _count(stack.client("dynamodb"), EVENTS_TABLE) - before
    return {
        "seconds": elapsed,
        "client_threads": threads,
        "requests": len(flat),
        "accepted": len(accepted),
        "deliveries_per_second": len(accepted) / elapsed if elapsed else 0.0,
        "statuses": statuses,
        "transport_errors": sum(len(e) for e in errors),
        "latency_ms": summary(accepted),
        "stored_in_events_table": stored,
        "stored_equals_accepted": stored == len(accepted),
    }


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def operation_latency(stack: LocalStack, operations: int, pace_seconds: float) -> dict[str, Any]:
    import requests
    from billops.operations.operation_queue import enqueue
    from billops.operations.operation_records import operation_id_for
    from billops.storage.operations_table import OperationsTable
    from billops.storage.subscriptions_table import SubscriptionsTable

    subscriptions = []
    for _ in range(operations):
        answer = requests.post(f"{stack.sandbox_url}/sandbox/subscriptions", timeout=30, json={
            "client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95", "initial_period": 30,
            "recurring_price": "19.95", "recurring_period": 30, "rebills": 99, "currency_code": "840"})
        answer.raise_for_status()
        subscriptions.append(answer.json()["subscription_id"])
    dynamodb = stack.client("dynamodb")
    records = SubscriptionsTable(SUBSCRIPTIONS_TABLE, dynamodb)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(records.get_state(s) for s in subscriptions):
        time.sleep(0.2)
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=OPERATIONS_QUEUE)["QueueUrl"]
    table = OperationsTable(OPERATIONS_TABLE, dynamodb)
    sent: dict[str, datetime] = {}
    stamp = int(time.time())
    for subscription_id in subscriptions:
        key = f"bench-{stamp}-{subscription_id}"
        sent[key] = datetime.now(UTC)
        enqueue({"operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": key,
                 "parameters": {"discount_amount": "2.00"}}, queue_url=queue_url, sqs=sqs)
        time.sleep(pace_seconds)
    done: dict[str, dict] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(done) < len(sent):
        for key in sent:
            if key not in done:
                record = table.get(operation_id_for(key))
                if record and record.get("status") in FINAL:
                    done[key] = record
        time.sleep(0.2)
    to_answer, to_complete, statuses = [], [], {}
    for key, record in done.items():
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        answered, completed = _parse(record.get("call_finished_at")), _parse(record.get("completed_at"))
        if answered:
            to_answer.append((answered - sent[key]).total_seconds() * 1000)
        if completed:
            to_complete.append((completed - sent[key]).total_seconds() * 1000)
    return {
        "operations": operations,
        "operation_type": "discount",
        "pace_seconds": pace_seconds,
        "finished": len(done),
        "statuses": statuses,
        "request_to_ccbill_answer_ms": summary(to_answer),
        "request_to_completed_ms": summary(to_complete),
    }


def measure(seconds: float, threads: int, operations: int, pace: float) -> dict[str, Any]:
    stack = LocalStack()
    try:
        load = webhook_load(stack, seconds, threads)
        latency = operation_latency(stack, operations, pace)
    finally:
        code = stack.stop()
    return {"start_seconds": stack.start_seconds, "webhooks": load, "operations": latency, "exit_code": code,
            "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.local_throughput")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--operations", type=int, default=30)
    parser.add_argument("--pace", type=float, default=0.5, help="seconds between two operations")
    parser.add_argument("--result", required=True)
    arguments = parser.parse_args(argv)
    write_result(arguments.result, measure(arguments.seconds, arguments.threads, arguments.operations, arguments.pace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
