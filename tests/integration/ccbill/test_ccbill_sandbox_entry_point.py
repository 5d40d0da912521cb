"""`python -m billops_local.ccbill_sandbox` runs the sandbox alone, configured from the environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests
from billops_local.ccbill_sandbox.__main__ import default_webhook_url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_module_runs_and_stops_on_sigterm():
    port = free_port()
    env = {**os.environ, "BILLOPS_SANDBOX_PORT": str(port), "BILLOPS_SANDBOX_WEBHOOK_FORMAT": "urlencoded",
           "BILLOPS_UPGRADE_KEY": "0123456789abcdeffedcba987654321089abcdef01234567"}
    env.pop("BILLOPS_SANDBOX_WEBHOOK_URL", None)
    env.pop("BILLOPS_WEBHOOK_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "billops_local.ccbill_sandbox"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/sandbox/health", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=10)[0].decode()
    assert process.returncode == 0, output
    assert f"listening on http://127.0.0.1:{port}" in output


def test_the_default_webhook_url():
    assert default_webhook_url({}) is None
    assert default_webhook_url({"BILLOPS_WEBHOOK_TOKEN": "t/k n", "BILLOPS_API_PORT": "3100"}) == \
        "http://127.0.0.1:3100/webhooks/ccbill?token=t%2Fk%20n"
    assert default_webhook_url({"BILLOPS_SANDBOX_WEBHOOK_URL": "http://x/y", "BILLOPS_WEBHOOK_TOKEN": "t"}) == \
        "http://x/y"
