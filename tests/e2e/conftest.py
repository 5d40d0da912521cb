"""End-to-end fixtures: the real local stack (`python -m billops_local`) in a subprocess, on free ports.

Tests here talk to it over HTTP with `requests`, exactly as a developer's curl or the CCBill sandbox would, and are
marked `e2e` automatically.

The CCBill sandbox plays a varied CCBill (SANDBOX_WEBHOOKS): each webhook in either format, in any version of its
event type, with the variations of billops_local/ccbill_sandbox/webhook_generator.py, drawn from one seed per test
process. The seed is printed in the summary and in the report of every failed e2e test; replay a run with
``BILLOPS_SANDBOX_SEED=<seed> pytest ...``.

Local timings are short (LOCAL_TIMINGS): a message the worker failed comes back after 1 s, the operation scheduler
runs every second and the reconciliation job every 15 s (AWS periods x 1/60), an unknown outcome is settled after
5 s. Tests that must not race the clock trigger a schedule themselves: ``local_stack.trigger_schedule(
"ReconciliationFunction")`` runs it now and returns its answer (POST /__local/schedules/<FunctionId>).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "billops local stack ready"
START_TIMEOUT_SECONDS = 180  # a bound, not a wait: a loaded 2-core machine took over 60 s to start one
STOP_TIMEOUT_SECONDS = 60  # a bound: a loaded machine took over 10 s to stop one
WEBHOOK_TOKEN = "e2e-webhook-token"
VISIBILITY_TIMEOUT_SECONDS = 1
SCHEDULE_SCALE = "1/60"
SETTLE_WINDOW_SECONDS = 5
LOCAL_TIMINGS = {
    "BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS),
    "BILLOPS_LOCAL_SCHEDULE_SCALE": SCHEDULE_SCALE,  # rate(1 minute) -> 1 s, rate(15 minutes) -> 15 s
    "BILLOPS_SETTLE_WINDOW_SECONDS": str(SETTLE_WINDOW_SECONDS),  # the template's SettleWindowSeconds, locally
}


SANDBOX_SEED = int(os.environ.get("BILLOPS_SANDBOX_SEED") or 0) or int.from_bytes(os.urandom(4), "big") % 10**9
SANDBOX_WEBHOOKS = {
    "BILLOPS_SANDBOX_WEBHOOK_FORMAT": "any",
    "BILLOPS_SANDBOX_WEBHOOK_VERSIONS": "any",
    "BILLOPS_SANDBOX_WEBHOOK_VARIATION": "varied",
    "BILLOPS_SANDBOX_SEED": str(SANDBOX_SEED),
}
SEED_LINE = f"CCBill sandbox webhooks varied, seed {SANDBOX_SEED} (replay: BILLOPS_SANDBOX_SEED={SANDBOX_SEED})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Every e2e test's report names the sandbox's seed (shown with a failure, also under pytest-xdist)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and Path(__file__).parent in Path(str(item.fspath)).parents:
        report.sections.append(("sandbox webhooks", SEED_LINE))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_sep("-", "CCBill sandbox")
    terminalreporter.write_line(SEED_LINE)


# Every process's log is kept under test-artifacts/ and scanned when the session ends: no subscriber's personal
# data, no password, key or secret may appear in any (billops_local.log_leaks; the run fails otherwise). Each test
# process (pytest-xdist worker) keeps its own directory, test-artifacts/e2e-logs/<worker>/, scans it at its own
# session end, and hands its findings to the controller, which merges them (tests/conftest.py).
from billops_local.log_leaks import CapturedLogs, add_stack_secrets, seeded_scanner
from support.e2e_log_check import E2E_LOGS, report_leaks, send_leaks_to_controller
from support.parallel import is_xdist_worker, worker_id
from support.ports import START_ATTEMPTS, free_ports, is_port_taken

CAPTURED_LOGS = CapturedLogs(E2E_LOGS / worker_id(), seeded_scanner(WEBHOOK_TOKEN))
TEST_PROCESS_LOG = CAPTURED_LOGS.directory / "test-process.log"


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)


def _is_xdist_controller() -> bool:
    # xdist registers its scheduler ("dsession") in a trylast pytest_configure: ask when a report comes, not before.
    return bool(_CONFIG) and _CONFIG[-1].pluginmanager.hasplugin("dsession")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # A worker keeps its own tests' output; the controller (which sees every report again) keeps none.
    here = Path(__file__).parent
    if here in Path(report.fspath).resolve().parents and report.sections and not _is_xdist_controller():
        CAPTURED_LOGS.append(TEST_PROCESS_LOG, "".join(f"--- {report.nodeid} {title}\n{text}\n"
                                                       for title, text in report.sections))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not CAPTURED_LOGS.files:
        return
    leaks = [str(leak) for leak in CAPTURED_LOGS.check()]
    if is_xdist_worker():
        send_leaks_to_controller(session.config, leaks)  # the controller reports every worker's together
    else:
        report_leaks(session, leaks)


@pytest.fixture(scope="session")
def log_leak_scanner():
    """The session's log check: a test adds the values it sends that must never be logged (``.add(value, what)``)."""
    return CAPTURED_LOGS.scanner


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class LocalStackProcess:
    api_url: str
    aws_endpoint: str
    webhook_token: str
    webhook_url: str
    sandbox_url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    visibility_timeout_seconds: int = VISIBILITY_TIMEOUT_SECONDS
    schedule_scale: str = SCHEDULE_SCALE
    settle_window_seconds: int = SETTLE_WINDOW_SECONDS

    @property
    def output(self) -> str:
        """Everything the stack printed so far (stdout and stderr, interleaved)."""
        return "".join(self.lines)

    def trigger_schedule(self, function_logical_id: str, event_id: str | None = None, *,
                         expect_success: bool = True) -> dict:
        """Run a scheduled function now (``POST /__local/schedules/<FunctionId>[/<EventId>]``) and return the
        answer: ``{"function", "event_id", "event", "result"}``, or ``{..., "errorType", "errorMessage"}`` with
        ``expect_success=False`` when it raised."""
        import requests

        path = f"/__local/schedules/{function_logical_id}" + (f"/{event_id}" if event_id else "")
        response = requests.post(f"{self.api_url}{path}", timeout=120)
        if expect_success:
            assert response.status_code == 200, f"{function_logical_id} failed: {response.text}"
        return response.json()

    def domain_events(self, *, wait_seconds: float = 0.0, max_events: int = 100) -> list[dict]:
        """The domain events published on the event bus since the last call (EventBridge event documents)."""
        from billops_local.event_bus import read_domain_events

        return read_domain_events(self.aws_endpoint, wait_seconds=wait_seconds, max_events=max_events)

    def local_overview(self) -> dict:
        """``GET /__local``: schedules, queue pollers, the domain events queue, parameters overridden locally."""
        import requests

        return requests.get(f"{self.api_url}/__local", timeout=10).json()

    def boto3_client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _start_process(extra_env: Mapping[str, str] | None, command: list[str] | None):
    """Start the stack on free ports and wait for its ready line: (process, lines, reader thread, ports), or None
    when another process took one of its ports first (the caller tries again with new ones)."""
    aws_port, api_port, sandbox_port = free_ports(3)
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "BILLOPS_LOCAL_"))}
    env.update(
        {
            "BILLOPS_AWS_PORT": str(aws_port),
            "BILLOPS_API_PORT": str(api_port),
            "BILLOPS_SANDBOX_PORT": str(sandbox_port),
            "BILLOPS_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "PYTHONUNBUFFERED": "1",
            **LOCAL_TIMINGS,
            **SANDBOX_WEBHOOKS,
            **(extra_env or {}),
        }
    )
    process = subprocess.Popen(
        command or [sys.executable, "-m", "billops_local"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    ready = threading.Event()
    log_file = CAPTURED_LOGS.new_file(f"local-stack-{api_port}.log")

    def read() -> None:
        assert process.stdout is not None
        with log_file.open("a", encoding="utf-8") as captured:
            for line in process.stdout:
                lines.append(line)
                captured.write(line)
                captured.flush()
                if line.strip() == READY_LINE:
                    ready.set()
        ready.set()  # the process ended: stop waiting

    reader = threading.Thread(target=read, name="local-stack-output", daemon=True)
    reader.start()
    started = time.monotonic()
    ready.wait(START_TIMEOUT_SECONDS)
    if process.poll() is not None or not any(line.strip() == READY_LINE for line in lines):
        if process.poll() is None:
            process.kill()
        process.wait(5)
        reader.join(5)
        if is_port_taken("".join(lines)):
            return None
        pytest.fail(
            f"the local stack was not ready after {time.monotonic() - started:.0f} s "
            f"(exit code {process.returncode}):\n{''.join(lines)}"
        )
    return process, lines, reader, (aws_port, api_port, sandbox_port)


@contextmanager
def running_local_stack(extra_env: Mapping[str, str] | None = None,
                        command: list[str] | None = None) -> Iterator[LocalStackProcess]:
    """Start a local stack in a subprocess on free ports (``python -m billops_local`` unless ``command`` is given),
    wait for its ready line, yield it, stop it with SIGTERM. ``extra_env`` is added to the stack's environment after
    the e2e timings (a second stack with other settings, e.g. tests/e2e/test_operations_end_to_end.py's)."""
    for _ in range(START_ATTEMPTS):
        started = _start_process(extra_env, command)
        if started is not None:
            break
    else:  # pragma: no cover - only when every attempt lost its ports to another process
        pytest.fail(f"the local stack found its ports taken {START_ATTEMPTS} times in a row")
    process, lines, reader, (aws_port, api_port, sandbox_port) = started

    api_url = f"http://127.0.0.1:{api_port}"
    stack = LocalStackProcess(
        api_url=api_url,
        aws_endpoint=f"http://127.0.0.1:{aws_port}",
        webhook_token=WEBHOOK_TOKEN,
        webhook_url=f"{api_url}/webhooks/ccbill?token={WEBHOOK_TOKEN}",
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
        process=process,
        lines=lines,
    )
    try:
        yield stack
    finally:
        if process.poll() is None:
            # What this stack holds (its secrets, the data keys of what it stored) must not be in any log either.
            CAPTURED_LOGS.collect(add_stack_secrets, CAPTURED_LOGS.scanner, stack.aws_endpoint)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
                pytest.fail(f"the local stack did not stop within {STOP_TIMEOUT_SECONDS} s of SIGTERM:\n{stack.output}")
        reader.join(5)
        assert process.returncode == 0, f"the local stack exited with {process.returncode}:\n{stack.output}"


class _SharedStack:
    """The session's shared stack (the ``local_stack`` fixture), stopped as soon as the next test this process runs
    is not an end-to-end test: a pytest-xdist worker that goes on with unit tests must not keep an idle stack
    polling its queues and stream on a 2-core machine. Should the worker be handed more e2e tests later, the stack is
    started again and the same ``LocalStackProcess`` object points at the new one (module fixtures are made afresh
    for a new module, so none keeps the old ports)."""

    def __init__(self) -> None:
        self.stack: LocalStackProcess | None = None
        self._running: Any = None  # the running_local_stack context of the current process

    @property
    def stopped(self) -> bool:
        return self.stack is not None and self._running is None

    def get(self) -> LocalStackProcess:
        if self._running is None:
            context = running_local_stack()
            fresh = context.__enter__()
            self._running = context
            if self.stack is None:
                self.stack = fresh
            else:
                vars(self.stack).update(vars(fresh))
        assert self.stack is not None
        return self.stack

    def stop(self) -> None:
        context, self._running = self._running, None
        if context is not None:
            context.__exit__(None, None, None)


_SHARED = _SharedStack()


def _is_e2e(item: pytest.Item | None) -> bool:
    return item is not None and Path(__file__).parent in Path(str(item.fspath)).parents


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _SHARED.stopped and "local_stack" in item.fixturenames:
        _SHARED.get()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _is_e2e(item) and nextitem is not None and not _is_e2e(nextitem):
        _SHARED.stop()


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStackProcess]:
    yield _SHARED.get()
    _SHARED.stop()


@pytest.fixture(scope="session")
def start_local_stack():
    """Another stack with other settings, for the tests that need them: ``with start_local_stack(extra_env,
    command) as stack: ...`` (see ``running_local_stack``); the shared ``local_stack`` is left as it is."""
    return running_local_stack
