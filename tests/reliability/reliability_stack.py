"""The local stack (`python -m billops_local`) in a subprocess for the reliability suites, and what they read of it.

Like tests/e2e/conftest.py (free loopback ports, the ready line, SIGTERM at the end) but each suite starts its own
stack with its own settings (DynamoDB fault injection, timings), keeps only the last lines of its output (a suite
makes tens of thousands of requests, each logged) and reads moto's tables with paginated scans.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.ports import START_ATTEMPTS, free_ports, is_port_taken

__all__ = ["free_ports", "running_stack", "start_stack"]

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "billops local stack ready"
START_TIMEOUT_SECONDS = 180  # a bound, not a wait, as in tests/e2e: eight functions cold-start in processes of their
# own, and a loaded 2-core machine (load average 24) took 128 s to start the load suite's stack
STOP_TIMEOUT_SECONDS = 180
"""After 10,000 deliveries the stack logs "stopped" at once, then its interpreter spends about a minute on one
thread, on CPU, before exiting (62 s measured on a busy 2-CPU machine; moto holds tens of thousands of items and
stream records). How long each stop took is printed."""
EVENTS_TABLE = "billops-local-EventsTable"
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
SUBSCRIPTION_HISTORY_TABLE = "billops-local-SubscriptionHistoryTable"
OPERATIONS_TABLE = "billops-local-OperationsTable"
OPERATIONS_QUEUE = "billops-local-OperationsQueue.fifo"
OPERATIONS_DLQ = "billops-local-OperationsDeadLetterQueue.fifo"
KEPT_LINES = 4000
PURGEABLE_TAP = {"MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"}
"""moto refuses a second PurgeQueue within 60 s by default; DomainEventsPurger needs it more often."""
SANDBOX_SEED = int(os.environ.get("BILLOPS_SANDBOX_SEED") or 0) or int.from_bytes(os.urandom(4), "big") % 10**9
VARIED_SANDBOX = {
    "BILLOPS_SANDBOX_WEBHOOK_FORMAT": "any",
    "BILLOPS_SANDBOX_WEBHOOK_VERSIONS": "any",
    "BILLOPS_SANDBOX_WEBHOOK_VARIATION": "varied",
    "BILLOPS_SANDBOX_SEED": str(SANDBOX_SEED),
}
"""The CCBill sandbox's webhooks as a varied CCBill posts them (any format and version, every variation of
billops_local/ccbill_sandbox/webhook_generator.py), from a seed the suites print (replay: BILLOPS_SANDBOX_SEED)."""


try:
    _PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies (PR_SET_PDEATHSIG), so a killed run leaves no
    stack behind. One libc call resolved in the parent: nothing that could wait for a lock between fork and exec."""
    _PRCTL(1, signal.SIGTERM)


@dataclass
class StackProcess:
    name: str
    api_url: str
    aws_endpoint: str
    sandbox_url: str
    webhook_token: str
    process: subprocess.Popen[str]
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=KEPT_LINES))
    line_count: int = 0
    patterns: tuple[str, ...] = ()
    pattern_counts: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def webhook_url(self) -> str:
        return f"{self.api_url}/webhooks/ccbill"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, count: int = 60) -> str:
        return "".join(list(self.lines)[-count:])

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            service, endpoint_url=self.aws_endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing", aws_session_token="testing",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=60,
                          max_pool_connections=20))

    def scan(self, table: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a table (paginated, consistent), deserialised."""
        from billops.storage.events_table import from_dynamodb

        dynamodb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True, **kwargs):
            items.extend(from_dynamodb(item) for item in page["Items"])
        return items

    def subscription_records(self) -> dict[str, dict[str, Any]]:
        """Every subscription as readers know it (billops.storage.subscriptions_table.assembled: the state item, its
        history entries in fold order and its personal data), from a scan of the two tables."""
        from billops.storage.subscriptions_table import ENTRY_PREFIX, PERSONAL_POSITION, assembled, is_bounded
        from billops.subscriptions.state_rules import ordered

        entries: dict[str, list[dict[str, Any]]] = {}
        personal: dict[str, dict[str, Any]] = {}
        for item in self.scan(SUBSCRIPTION_HISTORY_TABLE):
            subscription_id, position = str(item.pop("subscription_id")), str(item.pop("position"))
            if position == PERSONAL_POSITION:
                personal[subscription_id] = item
            elif position.startswith(ENTRY_PREFIX):
                entries.setdefault(subscription_id, []).append(item)
        return {str(state["subscription_id"]): (assembled(state, [dict(entry) for entry in ordered(
                    entries.get(str(state["subscription_id"]), []))], personal.get(str(state["subscription_id"])))
                if is_bounded(state) else state) for state in self.scan(SUBSCRIPTIONS_TABLE)}

    def trigger_schedule(self, function_logical_id: str) -> dict[str, Any]:
        import requests

        answer = requests.post(f"{self.api_url}/__local/schedules/{function_logical_id}", timeout=300)
        return {"status": answer.status_code, **answer.json()}

    def overview(self) -> dict[str, Any]:
        import requests

        return requests.get(f"{self.api_url}/__local", timeout=30).json()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then wait; the exit code (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                return None
        return self.process.returncode


def start_stack(name: str, settings: Mapping[str, str], *, webhook_token: str = "reliability-webhook-token",
                start_timeout: float = START_TIMEOUT_SECONDS,
                function_environment: Mapping[str, str] | None = None,
                count_lines_with: tuple[str, ...] = ()) -> StackProcess:
    """Start ``python -m billops_local`` with ``settings`` added to a clean environment; wait for its ready line.
    ``function_environment`` replaces template values of the functions' variables (stack_launcher.py);
    ``count_lines_with``: texts whose output lines are counted (``stack.pattern_counts``). Tried again on new ports
    when another process took one of its ports first (suites run side by side: tests/support/ports.py)."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return _start_stack_once(name, settings, webhook_token=webhook_token, start_timeout=start_timeout,
                                     function_environment=function_environment, count_lines_with=count_lines_with)
        except _PortTaken:
            if attempt == START_ATTEMPTS:
                raise RuntimeError(f"the {name} stack found its ports taken {START_ATTEMPTS} times in a row") from None
    raise AssertionError("unreachable")


class _PortTaken(RuntimeError):
    pass


def _start_stack_once(name: str, settings: Mapping[str, str], *, webhook_token: str, start_timeout: float,
                      function_environment: Mapping[str, str] | None,
                      count_lines_with: tuple[str, ...]) -> StackProcess:
    aws_port, api_port, sandbox_port = free_ports(3)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "BILLOPS_"))}
    env.update({
        "BILLOPS_AWS_PORT": str(aws_port),
        "BILLOPS_API_PORT": str(api_port),
        "BILLOPS_SANDBOX_PORT": str(sandbox_port),
        "BILLOPS_WEBHOOK_TOKEN": webhook_token,
        "PYTHONUNBUFFERED": "1",
        **settings,
    })
    recording = os.environ.get("BILLOPS_RECORD_AWS_CALLS")  # make check-iam's record of the functions' AWS calls
    if recording:
        env["BILLOPS_RECORD_AWS_CALLS"] = recording
    command = [sys.executable, "-m", "billops_local"]
    if function_environment:
        import json

        env["BILLOPS_RELIABILITY_FUNCTION_ENVIRONMENT"] = json.dumps(dict(function_environment))
        command = [sys.executable, str(Path(__file__).with_name("stack_launcher.py"))]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               preexec_fn=_die_with_parent if _PRCTL else None)  # noqa: PLW1509
    api_url = f"http://127.0.0.1:{api_port}"
    stack = StackProcess(name, api_url, f"http://127.0.0.1:{aws_port}", f"http://127.0.0.1:{sandbox_port}",
                         webhook_token, process, patterns=tuple(count_lines_with))
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.lines.append(line)
            stack.line_count += 1
            for pattern in stack.patterns:
                if pattern in line:
                    stack.pattern_counts[pattern] += 1
            if line.strip() == READY_LINE:
                ready.set()
        ready.set()

    threading.Thread(target=read, name=f"{name}-output", daemon=True).start()
    started = time.monotonic()
    ready.wait(start_timeout)
    if process.poll() is not None or not any(line.strip() == READY_LINE for line in stack.lines):
        stack.stop()
        if is_port_taken(stack.output):
            raise _PortTaken(name)
        raise RuntimeError(f"the {name} stack was not ready after {time.monotonic() - started:.0f} s "
                           f"(exit code {process.returncode}):\n{stack.tail(200)}")
    return stack


def running_stack(name: str, settings: Mapping[str, str], **options: Any) -> Iterator[StackProcess]:
    """A generator for fixtures: the stack, then its stop (the exit code must be 0)."""
    stack = start_stack(name, settings, **options)
    try:
        yield stack
    finally:
        stopping = time.monotonic()
        code = stack.stop()
        print(f"the {name} stack stopped in {time.monotonic() - stopping:.1f} s (exit code {code})")
        assert code == 0, f"the {name} stack exited with {code}:\n{stack.tail(200)}"


class DomainEventsPurger:
    """The stack copies every domain event (one SubscriptionChanged per fold) to a tap queue nobody reads here;
    moto's SQS counts a queue's messages on every send, so a queue growing by thousands slows the whole stack.
    Purged every few seconds: start the stack with PURGEABLE_TAP in its settings (moto's 60 s limit lifted)."""

    def __init__(self, stack) -> None:
        self.sqs = stack.client("sqs")
        self.url = self.sqs.get_queue_url(QueueName="billops-local-domain-events")["QueueUrl"]
        self.stopping = threading.Event()
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, name="domain-events-purger", daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(3):
            try:
                self.sqs.purge_queue(QueueUrl=self.url)
            except Exception as error:  # noqa: BLE001 - best effort; the stack may be stopping
                self.failures.append(type(error).__name__)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(10)
