"""Shared fixtures: handler loading by file path, and moto-backed tables shaped exactly like the template's."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

from billops_local import aws_call_recording
from billops_local.aws_call_recording import acting_as
from support.e2e_log_check import leaks_from_worker, report_leaks

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {
    "webhook_receiver": ROOT / "functions/webhook_receiver/webhook_receiver_handler.py",
    "subscription_projector": ROOT / "functions/subscription_projector/subscription_projector_handler.py",
    "operation_worker": ROOT / "functions/operation_worker/operation_worker_handler.py",
    "operation_scheduler": ROOT / "functions/operation_scheduler/operation_scheduler_handler.py",
    "reconciliation": ROOT / "functions/reconciliation/reconciliation_handler.py",
    "upgrade_postback": ROOT / "functions/upgrade_postback/upgrade_postback_handler.py",
    "merchant_api": ROOT / "functions/merchant_api/merchant_api_handler.py",
    "upgrade_page": ROOT / "functions/upgrade_page/upgrade_page_handler.py",
}


def load_handler(name: str):
    """Import a handler module afresh (its module-level setup reads the environment, as a cold start does)."""
    from billops.settings import get_settings
    from billops.storage.dynamodb_client import reset_client

    get_settings.cache_clear()
    reset_client()
    # Powertools reuses the logger named after the service, bound to the stdout of its first import; a fresh
    # handler binds it to the current test's captured stdout, as a fresh Lambda container would be.
    service_logger = logging.getLogger("billops")
    service_logger.handlers.clear()
    for marker in ("init", "powertools_handler"):
        if hasattr(service_logger, marker):
            delattr(service_logger, marker)
    path = HANDLERS[name]
    module_name = path.stem
    sys.modules.pop(module_name, None)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    logical_id = _function_logical_ids()[path.resolve()]
    with acting_as(logical_id):  # the cold start's AWS calls are the function's
        spec.loader.exec_module(module)
    module.handler = _acting_as_function(module.handler, logical_id)
    return module


@functools.cache
def _function_logical_ids() -> dict[Path, str]:
    """Handler file -> the template function running it (whose role its AWS calls are checked against)."""
    from billops_local.template_resources import load_template

    return {spec.module_path.resolve(): logical_id for logical_id, spec in load_template().functions.items()}


def _acting_as_function(handler, logical_id: str):
    """The handler, with its AWS calls recorded as the function's (billops_local.aws_call_recording)."""

    @functools.wraps(handler)
    def invoke(event, context):
        with acting_as(logical_id):
            return handler(event, context)

    return invoke


def pytest_configure(config: pytest.Config) -> None:
    """BILLOPS_RECORD_AWS_CALLS=<directory> (make test): record every AWS call the handlers make, in this process
    and in the local stacks it starts (they inherit the variable), for `make check-iam`. The first process of a run
    (not a pytest-xdist worker) empties the directory: the check reads this run's calls only."""
    directory = os.environ.get(aws_call_recording.RECORD_VARIABLE, "").strip()
    if not directory:
        return
    if not hasattr(config, "workerinput"):
        shutil.rmtree(directory, ignore_errors=True)
    aws_call_recording.install(directory)


class LambdaContext:
    function_name = "test-function"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture(autouse=True)
def local_environment(monkeypatch):
    """Tests run as the local stack does: BILLOPS_ENV=local, set explicitly (billops.settings fails closed without
    it: nothing local is trusted). A test of a deployment sets its own value, or deletes it."""
    monkeypatch.setenv("BILLOPS_ENV", "local")


@pytest.fixture
def handler_loader():
    return load_handler


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Billops",
        "POWERTOOLS_SERVICE_NAME": "billops",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


# --- pytest-xdist (docs/testing.md) -----------------------------------------------------------------------------------

SUITE_ORDER = ("e2e", "template", "integration", "unit")
"""The slowest suites first (their files are the longest, and `make test` hands whole files to its workers in this
order: a long file started last would leave the other workers idle at the end)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = Path(str(item.fspath)).resolve().relative_to(ROOT).parts
        suite = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        return SUITE_ORDER.index(suite) if suite in SUITE_ORDER else len(SUITE_ORDER)

    items.sort(key=rank)  # stable: the order inside each suite and file is kept


# The controller merges what its workers found.

_worker_leaks: list[list[str]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    leaks = leaks_from_worker(node)
    if leaks is not None:
        _worker_leaks.append(leaks)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _worker_leaks:  # only in an xdist controller whose workers ran e2e tests
        report_leaks(session, [leak for leaks in _worker_leaks for leak in leaks])
