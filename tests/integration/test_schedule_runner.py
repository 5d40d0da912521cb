"""The schedule runner: EventBridge's schedule expressions, its scheduled event, local timing, asynchronous retries,
no overlap, triggering a schedule now (directly and through the HTTP API emulator's /__local endpoints). The
functions are fakes (a function object, or a module written to tmp_path)."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import requests
from billops_local.aws_environment import LocalFunction
from billops_local.http_gateway import HttpGateway, Route, RouteTable
from billops_local.local_control import LocalControl
from billops_local.schedule_runner import (
    Cron,
    Rate,
    ScheduledFunction,
    ScheduleNotFound,
    ScheduleRunner,
    ScheduleTiming,
    parse_schedule_expression,
    scheduled_event,
)
from billops_local.template_resources import ScheduleSpec, TemplateError
from support.waiting import eventually

SCHEDULE = ScheduleSpec(
    function_logical_id="FakeScheduler",
    event_id="EveryMinute",
    kind="Schedule",
    expression="rate(1 minute)",
    timezone="UTC",
    name="billops-local-FakeSchedulerEveryMinute",
    input=None,
    enabled=True,
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _wait(predicate, timeout: float = 10.0) -> None:
    eventually(predicate, timeout, 0.02, what="the schedule runner to get there")


class Recorder:
    def __init__(self, delay: float = 0.0, fail: int = 0) -> None:
        self.events: list[Any] = []
        self.delay = delay
        self.fail = fail
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any, context: Any) -> Any:
        with self._lock:
            self.events.append(event)
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            if self.fail:
                self.fail -= 1
                raise RuntimeError("scheduled run failed")
            return {"handled": len(self.events)}
        finally:
            with self._lock:
                self.active -= 1


def _runner(handler: Any, timing: ScheduleTiming, *, retries: int = 2, **schedule_changes: Any) -> ScheduleRunner:
    function = LocalFunction("fake-scheduled", logical_id="FakeScheduler", handler=handler)
    return ScheduleRunner([ScheduledFunction(replace(SCHEDULE, **schedule_changes), function, retries)], timing)


# ----------------------------------------------------------------------------------------------------------------
# Expressions
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "seconds"), [
    ("rate(1 minute)", 60), ("rate(15 minutes)", 900), ("rate(1 hour)", 3600), ("rate(2 hours)", 7200),
    ("rate(1 day)", 86400), ("rate(7 days)", 604800),
])
def test_rate_expressions(expression: str, seconds: int) -> None:
    assert parse_schedule_expression(expression) == Rate(seconds)


@pytest.mark.parametrize("expression", [
    "rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(1 second)", "rate(minute)", "every minute",
    "at(2026-01-01T00:00:00)", "cron(0 12 * * * *)", "cron(0 12 * * ?)", "cron(0 12 ? * 2#1 *)",
    "cron(0 12 15W * ? *)", "cron(0 12 ? * 6L *)", "cron(61 12 * * ? *)", "cron(0 12 ? FOO * *)",
])
def test_expressions_that_are_refused(expression: str) -> None:
    with pytest.raises(TemplateError):
        parse_schedule_expression(expression, what="Fn.Event")


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("cron(0/15 * * * ? *)", "2026-01-31T12:07:30Z", "2026-01-31T12:15:00Z"),
    ("cron(0 10 * * ? *)", "2026-01-31T10:00:00Z", "2026-02-01T10:00:00Z"),
    ("cron(15 10 ? * MON-FRI *)", "2026-01-31T09:00:00Z", "2026-02-02T10:15:00Z"),  # 31 Jan 2026 is a Saturday
    ("cron(0 0 L * ? *)", "2026-02-03T00:00:00Z", "2026-02-28T00:00:00Z"),
    ("cron(0 8 1 JAN,JUL ? 2027)", "2026-03-01T00:00:00Z", "2027-01-01T08:00:00Z"),
    ("cron(30 2 ? * 1 *)", "2026-01-31T00:00:00Z", "2026-02-01T02:30:00Z"),  # 1 = Sunday
    ("cron(0 12 1-31/10 * ? *)", "2026-01-02T00:00:00Z", "2026-01-11T12:00:00Z"),
])
def test_cron_next_occurrence(expression: str, after: str, expected: str) -> None:
    cron = parse_schedule_expression(expression)
    assert isinstance(cron, Cron)
    assert cron.next_after(_at(after)) == _at(expected)


def test_cron_in_a_time_zone() -> None:
    cron = parse_schedule_expression("cron(0 9 * * ? *)", "Europe/Paris")
    assert cron.next_after(_at("2026-01-31T07:00:00Z")).astimezone(UTC) == _at("2026-01-31T08:00:00Z")
    with pytest.raises(TemplateError, match="time zone"):
        parse_schedule_expression("cron(0 9 * * ? *)", "Mars/Olympus")


def test_a_cron_without_future_occurrences() -> None:
    assert parse_schedule_expression("cron(0 0 1 1 ? 1999)").next_after(_at("2026-01-01T00:00:00Z")) is None


# ----------------------------------------------------------------------------------------------------------------
# Timing and the event
# ----------------------------------------------------------------------------------------------------------------


def test_timing_from_the_environment() -> None:
    default = ScheduleTiming.from_env({})
    assert default.scale == Fraction(1, 30) and default.fixed_seconds is None
    assert default.local_seconds(60) == 2 and default.local_seconds(900) == 30
    assert default.retry_delay(1) == 2 and default.retry_delay(2) == 4
    assert ScheduleTiming.from_env({"BILLOPS_LOCAL_SCHEDULE_SCALE": "0.5"}).local_seconds(60) == 30
    assert ScheduleTiming.from_env({"BILLOPS_LOCAL_SCHEDULE_SCALE": "1/60"}).local_seconds(900) == 15
    fixed = ScheduleTiming.from_env({"BILLOPS_LOCAL_SCHEDULE_SECONDS": "3"})
    assert fixed.local_seconds(60) == fixed.local_seconds(900) == 3 and fixed.automatic
    assert not ScheduleTiming.from_env({"BILLOPS_LOCAL_SCHEDULE_SECONDS": "0"}).automatic
    for bad in ({"BILLOPS_LOCAL_SCHEDULE_SCALE": "0"}, {"BILLOPS_LOCAL_SCHEDULE_SCALE": "fast"},
                {"BILLOPS_LOCAL_SCHEDULE_SECONDS": "-1"}, {"BILLOPS_LOCAL_SCHEDULE_SECONDS": "soon"}):
        with pytest.raises(ValueError):
            ScheduleTiming.from_env(bad)


def test_scheduled_event_has_eventbridges_shape() -> None:
    event = scheduled_event(SCHEDULE, _at("2026-01-31T12:00:00.123456Z"))
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources",
                           "detail"]
    assert event["version"] == "0"
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "123456789012"
    assert event["time"] == "2026-01-31T12:00:00Z"
    assert event["region"] == "us-east-1"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/billops-local-FakeSchedulerEveryMinute"]
    assert event["detail"] == {}
    assert scheduled_event(SCHEDULE)["id"] != event["id"]


def test_an_input_replaces_the_scheduled_event() -> None:
    assert scheduled_event(replace(SCHEDULE, input='{"job": "sweep"}')) == {"job": "sweep"}


# ----------------------------------------------------------------------------------------------------------------
# Firing
# ----------------------------------------------------------------------------------------------------------------


def test_fires_on_the_scaled_period(tmp_path: Path) -> None:
    module = tmp_path / "fake_schedule_module_handler.py"
    module.write_text(textwrap.dedent('''
        import time
        fired = []

        def handler(event, context):
            fired.append((time.monotonic(), event))
            return {"ok": True}
    '''))
    function = LocalFunction("fake-from-module", logical_id="FakeScheduler", module_path=module)
    runner = ScheduleRunner([ScheduledFunction(SCHEDULE, function)], ScheduleTiming(scale=Fraction(1, 200)))
    assert runner.local_period(runner.scheduled[0]) == pytest.approx(0.3)
    started = time.monotonic()
    runner.start()
    try:
        _wait(lambda: "fake_schedule_module_handler" in sys.modules
              and len(sys.modules["fake_schedule_module_handler"].fired) >= 3)
    finally:
        runner.stop()
    fired = sys.modules["fake_schedule_module_handler"].fired
    times = [moment - started for moment, _ in fired]
    # The k-th firing is due k periods after the start (as a new rule's), never earlier; a firing the machine
    # delayed does not delay the next one's due time, so the gap between two may be shorter than a period.
    assert all(moment >= 0.3 * (index + 1) - 0.05 for index, moment in enumerate(times)), times
    assert all(event["detail-type"] == "Scheduled Event" for _, event in fired)
    assert len({event["id"] for _, event in fired}) == len(fired)
    assert runner.status()[0]["fired"] >= 3


def test_fixed_seconds_override_every_expression() -> None:
    recorder = Recorder()
    runner = _runner(recorder, ScheduleTiming(fixed_seconds=0.2), expression="rate(15 minutes)")
    assert runner.local_period(runner.scheduled[0]) == 0.2
    runner.start()
    try:
        _wait(lambda: len(recorder.events) >= 2, timeout=5)
    finally:
        runner.stop()


def test_zero_seconds_means_only_when_triggered() -> None:
    recorder = Recorder()
    runner = _runner(recorder, ScheduleTiming(fixed_seconds=0))
    runner.start()
    time.sleep(0.3)
    assert recorder.events == []
    outcome = runner.trigger("FakeScheduler")
    runner.stop()
    assert outcome.succeeded and outcome.result == {"handled": 1}
    assert recorder.events == [outcome.event]
    assert "only when triggered" in runner.timing.describe()


def test_a_disabled_schedule_does_not_fire_but_can_be_triggered() -> None:
    recorder = Recorder()
    runner = _runner(recorder, ScheduleTiming(fixed_seconds=0.05), enabled=False)
    runner.start()
    time.sleep(0.3)
    assert recorder.events == []
    assert runner.trigger("FakeScheduler").succeeded
    runner.stop()


def test_a_failed_run_is_retried_as_an_asynchronous_invocation() -> None:
    recorder = Recorder(fail=2)
    runner = _runner(recorder, ScheduleTiming(fixed_seconds=30, scale=Fraction(1, 300)), retries=2)
    item = runner.scheduled[0]
    runner._fire(item)  # one firing: the first attempt and Lambda's two retries (after 0.2 s and 0.4 s here)
    assert len(recorder.events) == 3
    assert len({event["id"] for event in recorder.events}) == 1  # the same event each time
    assert (item.stats.fired, item.stats.failed, item.stats.retried) == (3, 2, 2)


def test_no_retry_when_the_function_says_so() -> None:
    recorder = Recorder(fail=5)
    runner = _runner(recorder, ScheduleTiming(scale=Fraction(1, 300)), retries=0)
    runner._fire(runner.scheduled[0])
    assert len(recorder.events) == 1 and runner.scheduled[0].stats.failed == 1


def test_a_schedule_never_overlaps_itself() -> None:
    recorder = Recorder(delay=0.25)
    runner = _runner(recorder, ScheduleTiming(fixed_seconds=0.05))
    runner.start()
    try:
        _wait(lambda: len(recorder.events) >= 3, timeout=5)
    finally:
        runner.stop()
    assert recorder.peak == 1


def test_a_cron_schedule_is_scaled_between_occurrences() -> None:
    recorder = Recorder()
    runner = _runner(recorder, ScheduleTiming(scale=Fraction(1, 3000)), expression="cron(0/5 * * * ? *)")
    period = runner.local_period(runner.scheduled[0])
    assert period == pytest.approx(0.1)  # five minutes / 3000
    runner.start()
    try:
        _wait(lambda: len(recorder.events) >= 3, timeout=5)
    finally:
        runner.stop()


def test_trigger_reports_errors_and_unknown_schedules() -> None:
    recorder = Recorder(fail=1)
    runner = _runner(recorder, ScheduleTiming(fixed_seconds=0), retries=2)
    outcome = runner.trigger("FakeScheduler", "EveryMinute")
    assert not outcome.succeeded
    assert (outcome.error_type, outcome.error_message) == ("RuntimeError", "scheduled run failed")
    assert len(recorder.events) == 1  # a synchronous invocation: no retries
    with pytest.raises(ScheduleNotFound):
        runner.trigger("NoSuchFunction")
    with pytest.raises(ScheduleNotFound):
        runner.trigger("FakeScheduler", "NoSuchEvent")


def test_a_function_with_two_schedules_needs_the_event_named() -> None:
    function = LocalFunction("fake", logical_id="FakeScheduler", handler=Recorder())
    runner = ScheduleRunner([ScheduledFunction(SCHEDULE, function),
                             ScheduledFunction(replace(SCHEDULE, event_id="Nightly", expression="cron(0 3 * * ? *)"),
                                               function)], ScheduleTiming(fixed_seconds=0))
    with pytest.raises(ScheduleNotFound, match="several"):
        runner.trigger("FakeScheduler")
    assert runner.trigger("FakeScheduler", "Nightly").event_id == "Nightly"


# ----------------------------------------------------------------------------------------------------------------
# /__local on the HTTP API emulator
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture
def control_gateway():
    recorder = Recorder()
    failing = Recorder(fail=100)
    runner = ScheduleRunner([
        ScheduledFunction(SCHEDULE, LocalFunction("fake", logical_id="FakeScheduler", handler=recorder)),
        ScheduledFunction(replace(SCHEDULE, function_logical_id="FakeFailing", event_id="Hourly",
                                  expression="rate(1 hour)"),
                          LocalFunction("failing", logical_id="FakeFailing", handler=failing)),
    ], ScheduleTiming(fixed_seconds=0))
    api = LocalFunction("api", handler=lambda event, context: {"statusCode": 200, "body": "api"})
    control = LocalControl(lambda: runner, lambda: {"schedules": runner.status()})
    gateway = HttpGateway(RouteTable([Route("POST /things", "POST", "/things", api)]), port=0, control=control)
    gateway.start()
    yield gateway, recorder
    gateway.stop()


def test_post_local_schedules_runs_the_function_now(control_gateway) -> None:
    gateway, recorder = control_gateway
    response = requests.post(f"{gateway.url}/__local/schedules/FakeScheduler", timeout=10)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["function"], answer["event_id"], answer["result"]) == ("FakeScheduler", "EveryMinute",
                                                                          {"handled": 1})
    assert answer["event"] == recorder.events[0]
    assert answer["event"]["detail-type"] == "Scheduled Event"
    named = requests.post(f"{gateway.url}/__local/schedules/FakeScheduler/EveryMinute", timeout=10)
    assert named.status_code == 200 and len(recorder.events) == 2


def test_local_endpoints_answer_errors_and_listings(control_gateway) -> None:
    gateway, _ = control_gateway
    failed = requests.post(f"{gateway.url}/__local/schedules/FakeFailing", timeout=10)
    assert failed.status_code == 500
    assert failed.json() == {"function": "FakeFailing", "event_id": "Hourly", "errorType": "RuntimeError",
                             "errorMessage": "scheduled run failed"}
    assert requests.post(f"{gateway.url}/__local/schedules/Nope", timeout=10).status_code == 404
    assert requests.get(f"{gateway.url}/__local/schedules/FakeScheduler", timeout=10).status_code == 405
    assert requests.get(f"{gateway.url}/__local/nothing", timeout=10).status_code == 404
    listing = requests.get(f"{gateway.url}/__local/schedules", timeout=10).json()["schedules"]
    assert [(s["function"], s["expression"], s["failed"]) for s in listing] == [
        ("FakeScheduler", "rate(1 minute)", 0), ("FakeFailing", "rate(1 hour)", 1)]
    overview = requests.get(f"{gateway.url}/__local", timeout=10).json()
    assert len(overview["schedules"]) == 2
    # the API's own routes are untouched
    assert requests.post(f"{gateway.url}/things", timeout=10).text == "api"
    assert json.loads(requests.get(f"{gateway.url}/__localx", timeout=10).text) == {"message": "Not Found"}
