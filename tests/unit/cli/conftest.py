"""Fixtures of the CLI's tests: the CLI run in-process (``run_cli``) against moto's server holding the template's
resources with their local names (``billops-local-<LogicalId>``), i.e. what ``--local`` finds; no stack process,
no functions. The CLI points the process environment at its target, so every test gets the environment back."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from billops_local.aws_environment import MotoServer, aws_client, create_resources
from billops_local.template_resources import load_template


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def cli_moto() -> Iterator[MotoServer]:
    server = MotoServer("127.0.0.1", _free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """``Target.activate`` sets AWS_* and BILLOPS_* variables, as a CLI process may: undo it after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from billops.settings import get_settings
    from billops.storage.aws_clients import reset_clients

    get_settings.cache_clear()
    reset_clients()


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        import json

        return json.loads(self.out)


@dataclass
class LocalResources:
    endpoint_url: str
    port: int
    created: Any

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint_url)

    def table(self, logical_id: str) -> str:
        return self.created.tables[logical_id].name

    def queue_url(self, logical_id: str) -> str:
        return self.created.queues[logical_id].url

    def stream_arn(self, logical_id: str = "EventsTable") -> str:
        return self.created.tables[logical_id].stream_arn


@pytest.fixture
def local_resources(cli_moto, monkeypatch) -> LocalResources:
    requests.post(f"{cli_moto.endpoint_url}/moto-api/reset", timeout=10)
    created = create_resources(load_template(), cli_moto.endpoint_url)
    monkeypatch.setenv("BILLOPS_AWS_PORT", str(cli_moto.port))
    monkeypatch.setenv("BILLOPS_API_PORT", "9")  # nothing answers there: tests that need the API stub it
    return LocalResources(cli_moto.endpoint_url, cli_moto.port, created)


@pytest.fixture
def run_cli():
    """``run_cli("bulk", "discount", ...)`` -> CliResult(exit code, stdout, stderr), in this process."""
    from billops_cli.__main__ import main

    def run(*argv: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exit_:  # argparse's usage errors
                code = int(exit_.code or 0)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run
