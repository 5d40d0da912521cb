"""Load: wrk posts webhooks to the local stack for a minute, as fast as the stack answers them, on a few connections.

Every request is a distinct NewSaleSuccess (a Lua counter makes each transaction/subscription ID unique), half of
them JSON, half URL-encoded (two bodies made by the CCBill sandbox's generator, varied, from the printed seed
BILLOPS_SANDBOX_SEED), so "nothing lost" means something: each 2xx answer names its delivery key, wrk's Lua
writes every answer (time, status, key) to a file per thread, and afterwards every key answered 2xx must be in the
events table. No errors are allowed: no non-2xx answer, no socket error, no timeout.

The rate held is reported: overall (answers / seconds) and the slowest and fastest 10-second window; it is sustained
if no whole 10-second window falls below half the overall rate.

Settings: BILLOPS_RELIABILITY_LOAD_SECONDS (60), _CONNECTIONS (4), _THREADS (2). Needs wrk (Debian: apt-get install
wrk).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest
from billops_local.webhook_samples import webhook_query
from reliability_stack import EVENTS_TABLE, PURGEABLE_TAP, SANDBOX_SEED, DomainEventsPurger, running_stack
from webhook_traffic import traffic_generator

pytestmark = pytest.mark.runs_alone  # the rate it holds is what it checks: run alone (Makefile, test-reliability)

SECONDS = int(os.environ.get("BILLOPS_RELIABILITY_LOAD_SECONDS", "60"))
CONNECTIONS = int(os.environ.get("BILLOPS_RELIABILITY_LOAD_CONNECTIONS", "4"))
THREADS = int(os.environ.get("BILLOPS_RELIABILITY_LOAD_THREADS", "2"))
TOKEN = "reliability-load-token"
ID_PLACEHOLDER = "9999999999999999999"
ID_PREFIX = "0126"  # + thread (1 digit) + 14-digit counter = 19 digits, like CCBill's IDs

LUA = r"""
-- billops reliability load: distinct NewSaleSuccess deliveries, JSON and URL-encoded alternately.
local threads = {}
local next_thread = 1

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  out_dir = args[1]
  counter = 0
  log = io.open(out_dir .. "/answers-" .. thread_number .. ".txt", "w")
  templates = {}
  for _, name in ipairs({"json", "urlencoded"}) do
    local file = io.open(out_dir .. "/" .. name .. ".body", "rb")
    templates[name] = file:read("*a")
    file:close()
  end
end

function request()
  counter = counter + 1
  local id = string.format("__PREFIX__%d%014d", thread_number, counter)
  local name = (counter % 2 == 0) and "json" or "urlencoded"
  local body = templates[name]:gsub("__PLACEHOLDER__", id)
  local content_type = (name == "json") and "application/json" or "application/x-www-form-urlencoded"
  return wrk.format("POST", "__PATH__", {["Content-Type"] = content_type}, body)
end

function response(status, headers, body)
  local key = body:match('"id"%s*:%s*"([^"]*)"') or "-"
  log:write(os.time(), " ", status, " ", key, "\n")
  log:flush()
end
"""


@pytest.fixture
def load_stack():
    settings = {"BILLOPS_LOCAL_SCHEDULE_SECONDS": "0", "BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": "1",
                **PURGEABLE_TAP}
    yield from running_stack("load", settings, webhook_token=TOKEN)


def _script(directory: Path, stack) -> Path:
    generator = traffic_generator(SANDBOX_SEED, os.environ.get("BILLOPS_RELIABILITY_WEBHOOK_VARIATION", "varied"))
    ids = {"subscriptionId": ID_PLACEHOLDER, "transactionId": ID_PLACEHOLDER}
    for body_format in ("json", "urlencoded"):
        generator.configure({"format": body_format})
        delivery = generator.generate("NewSaleSuccess", ids, key=f"load-{body_format}")
        body = delivery.body.replace(ID_PLACEHOLDER.encode(), b"__PLACEHOLDER__")
        (directory / f"{body_format}.body").write_bytes(body)
        fields = delivery.values
    path = "/webhooks/ccbill?" + urlencode(list(webhook_query("NewSaleSuccess", fields, TOKEN).items()))
    script = directory / "webhooks.lua"
    script.write_text(LUA.replace("__PREFIX__", ID_PREFIX).replace("__PATH__", path))
    return script


def _number(pattern: str, text: str, default: float = 0.0) -> float:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else default


@pytest.mark.timeout(900)
def test_a_minute_of_webhooks_at_the_rate_the_stack_holds(load_stack, tmp_path, report_figures):
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed (Debian: apt-get install wrk)"
    script = _script(tmp_path, load_stack)
    started = time.monotonic()
    with DomainEventsPurger(load_stack):
        run = subprocess.run(
            [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "30s", "--latency", "-s",
             str(script), load_stack.api_url, "--", str(tmp_path)],
            check=False, capture_output=True, text=True, timeout=SECONDS + 120)
    wall = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, output

    answers = []
    for answers_file in sorted(tmp_path.glob("answers-*.txt")):
        for line in answers_file.read_text().splitlines():
            moment, status, key = line.split(" ", 2)
            answers.append((int(moment), int(status), key))
    statuses = Counter(status for _, status, _ in answers)
    answered_2xx = {key for _, status, key in answers if 200 <= status < 300}
    duplicates_answered = len([1 for _, status, _ in answers if 200 <= status < 300]) - len(answered_2xx)
    stored = {item["pk"] for item in load_stack.scan(EVENTS_TABLE, ProjectionExpression="pk")}
    lost = answered_2xx - stored

    per_second = Counter(moment for moment, _, _ in answers)
    if per_second:
        first, last = min(per_second), max(per_second)
        windows = [sum(per_second.get(second, 0) for second in range(start, start + 10)) / 10
                   for start in range(first + 1, last - 10, 10)]  # whole 10 s windows only
    else:
        windows = []
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_error_count = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    non_2xx = int(_number(r"Non-2xx or 3xx responses: (\d+)", output))
    figures = {
        "sandbox_seed": SANDBOX_SEED, "seconds": SECONDS, "connections": CONNECTIONS, "requests": len(answers),
        "rate_per_second": round(len(answers) / SECONDS, 1),
        "wrk_requests_per_second": _number(r"Requests/sec:\s+([\d.]+)", output),
        "slowest_10s_window_per_second": round(min(windows), 1) if windows else 0,
        "fastest_10s_window_per_second": round(max(windows), 1) if windows else 0,
        "latency_p50_ms": _latency(output, "50%"), "latency_p99_ms": _latency(output, "99%"),
        "errors": non_2xx + socket_error_count + sum(n for s, n in statuses.items() if not 200 <= s < 300),
        "non_2xx": non_2xx, "socket_errors": socket_error_count, "answered_2xx": len(answered_2xx),
        "answered_twice": duplicates_answered, "stored": len(stored), "lost": len(lost),
        "wall_seconds": round(wall),
    }
    report_figures("load", figures, output)

    assert answers, output
    assert statuses and set(statuses) == {200}, statuses
    assert non_2xx == 0 and socket_error_count == 0, output
    assert duplicates_answered == 0  # every request was a new delivery
    assert not lost, sorted(lost)[:10]
    assert len(windows) >= max(1, SECONDS // 10 - 2) and min(windows) > 0, windows
    # Sustained: no 10-second window falls below half the run's average rate (no stall, no slow collapse).
    assert min(windows) >= 0.5 * figures["rate_per_second"], (windows, figures["rate_per_second"])


def _latency(output: str, percentile: str) -> float:
    found = re.search(rf"^\s*{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if not found:
        return 0.0
    value, unit = float(found.group(1)), found.group(2)
    return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 1)
