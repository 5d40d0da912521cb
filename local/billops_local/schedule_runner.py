"""EventBridge schedules, emulated: the template's Schedule / ScheduleV2 events invoke their functions on time.

For each schedule event of the template (``rate(1 minute)``, ``rate(15 minutes)``, ``cron(...)``) a
``ScheduleRunner`` invokes the function, as EventBridge's asynchronous invocation would, with the scheduled event::

    {"version": "0", "id": <uuid>, "detail-type": "Scheduled Event", "source": "aws.events",
     "account": "123456789012", "time": "2026-01-31T12:00:00Z", "region": "us-east-1",
     "resources": ["arn:aws:events:us-east-1:123456789012:rule/billops-local-<FunctionId><EventId>"], "detail": {}}

(or the event's ``Input``, parsed, when the template gives one; a ScheduleV2 event's resource is its schedule ARN).

Local timing, so demos and tests do not wait minutes (``ScheduleTiming.from_env``):
  * ``BILLOPS_LOCAL_SCHEDULE_SCALE`` (default ``1/30``; a number or a fraction): every period is multiplied by it,
    so ``rate(1 minute)`` fires every 2 s and ``rate(15 minutes)`` every 30 s; a cron expression's gaps between
    occurrences are scaled the same way (``1`` = real time);
  * ``BILLOPS_LOCAL_SCHEDULE_SECONDS``: when set, every schedule fires every that many seconds whatever its
    expression; ``0`` = never by itself, only when triggered.
The first firing comes one (local) period after the start, as with a new EventBridge rule.

What else follows Lambda's asynchronous invocation: a failed invocation is retried
``EventInvokeConfig.MaximumRetryAttempts`` times (default 2) after 1 and 2 minutes, scaled like the schedule; a
schedule never overlaps itself (a firing that comes while the previous one still runs waits for it, and firings
missed meanwhile are coalesced into one); the function's concurrency limit is the LocalFunction's.

``trigger(function_id, event_id=None)`` invokes a schedule's function now, synchronously, and reports the result or
the error (no retries): the local stack serves it as ``POST /__local/schedules/<FunctionId>[/<EventId>]`` on the
HTTP API port (see billops_local.local_control).
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billops_local.template_resources import LOCAL_ACCOUNT_ID, LOCAL_REGION, ScheduleSpec, TemplateError

log = logging.getLogger("billops_local.schedules")

DEFAULT_SCALE = Fraction(1, 30)
MINIMUM_LOCAL_PERIOD = 0.05  # seconds: a tiny scale must not become a busy loop
ASYNC_RETRY_DELAYS = (60, 120)  # seconds before Lambda's first and second retry of an asynchronous invocation


# ----------------------------------------------------------------------------------------------------------------
# Expressions
# ----------------------------------------------------------------------------------------------------------------

_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name: index for index, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


@dataclass(frozen=True)
class Rate:
    seconds: int

    def next_after(self, moment: datetime) -> datetime:
        return moment + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Cron:
    """An EventBridge cron expression: minutes hours day-of-month month day-of-week year (1 = Sunday).

    Supported: ``*``, ``?``, values, names (JAN-DEC, SUN-SAT), ranges, lists, steps (``*/5``, ``10/15``,
    ``1-30/2``) and ``L`` as the day of the month; ``W``, ``#`` and ``L`` as a day of the week are refused.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int] | None  # None = any (with "?" or "*")
    last_day_of_month: bool
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday
    years: frozenset[int] | None
    timezone: str = "UTC"

    def _day_matches(self, day: date) -> bool:
        if self.years is not None and day.year not in self.years:
            return False
        if day.month not in self.months:
            return False
        if self.last_day_of_month and day.day != calendar.monthrange(day.year, day.month)[1]:
            return False
        if self.days_of_month is not None and day.day not in self.days_of_month:
            return False
        return self.days_of_week is None or (day.isoweekday() % 7) + 1 in self.days_of_week

    def next_after(self, moment: datetime) -> datetime | None:
        zone = ZoneInfo(self.timezone)
        start = moment.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        for _ in range(366 * 8):
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None  # no occurrence within eight years (e.g. a year field in the past)


def _cron_values(text: str, low: int, high: int, names: Mapping[str, int], *, field: str, what: str) -> set[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        token = token.upper()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise TemplateError(f"{what}: {token!r} is not a valid {field} in a cron expression")
        value = int(token)
        if not low <= value <= high:
            raise TemplateError(f"{what}: {field} {value} is outside {low}-{high}")
        return value

    for item in text.split(","):
        item = item.strip()
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise TemplateError(f"{what}: bad step {step_text!r} in the {field} field")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            left, _, right = base.partition("-")
            first, last = number(left), number(right)
            if last < first:
                raise TemplateError(f"{what}: the {field} range {base} wraps around (not emulated)")
        else:
            first = number(base)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


def _parse_cron(body: str, timezone: str, *, what: str) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise TemplateError(f"{what}: a cron expression has six fields (minutes hours day-of-month month "
                            f"day-of-week year), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise TemplateError(f"{what}: exactly one of day-of-month and day-of-week must be '?'")
    for text, name in ((day_of_month, "day-of-month"), (day_of_week, "day-of-week")):
        if "W" in text.upper().replace("WED", "") or "#" in text:
            raise TemplateError(f"{what}: {name} {text!r} (W / #) is not emulated by the local stack")
    if day_of_week != "?" and day_of_week.upper().endswith("L"):
        raise TemplateError(f"{what}: day-of-week {day_of_week!r} (L) is not emulated by the local stack")
    last_day = day_of_month.upper() == "L"
    return Cron(
        minutes=tuple(sorted(_cron_values(minutes, 0, 59, {}, field="minute", what=what))),
        hours=tuple(sorted(_cron_values(hours, 0, 23, {}, field="hour", what=what))),
        days_of_month=None if day_of_month in ("?", "*") or last_day else frozenset(
            _cron_values(day_of_month, 1, 31, {}, field="day-of-month", what=what)),
        last_day_of_month=last_day,
        months=frozenset(_cron_values(month, 1, 12, _MONTHS, field="month", what=what)),
        days_of_week=None if day_of_week in ("?", "*") else frozenset(
            _cron_values(day_of_week, 1, 7, _WEEKDAYS, field="day-of-week", what=what)),
        years=None if year == "*" else frozenset(_cron_values(year, 1970, 2199, {}, field="year", what=what)),
        timezone=timezone,
    )


def parse_schedule_expression(expression: str, timezone: str = "UTC", *, what: str = "schedule") -> Rate | Cron:
    """``rate(<n> <minute|minutes|hour|hours|day|days>)`` or ``cron(<6 fields>)``, as EventBridge accepts them."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        singular = unit.removesuffix("s")
        if singular not in _RATE_UNITS or value < 1 or (value == 1) != (unit == singular):
            raise TemplateError(f"{what}: {text!r} is not a valid rate expression (e.g. rate(1 minute), "
                                "rate(15 minutes))")
        return Rate(value * _RATE_UNITS[singular])
    cron = _CRON.match(text)
    if cron:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise TemplateError(f"{what}: unknown time zone {timezone!r}") from None
        return _parse_cron(cron.group(1), timezone, what=what)
    raise TemplateError(f"{what}: {text!r} is not emulated by the local stack (rate(...) or cron(...))")


# ----------------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------------


def _parse_scale(raw: str) -> Fraction:
    try:
        value = Fraction(raw.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"BILLOPS_LOCAL_SCHEDULE_SCALE={raw!r} is not a number or a fraction like 1/30") from None
    if value <= 0:
        raise ValueError("BILLOPS_LOCAL_SCHEDULE_SCALE must be positive")
    return value


@dataclass(frozen=True)
class ScheduleTiming:
    """How AWS's periods become local ones (see the module's docstring)."""

    scale: Fraction = DEFAULT_SCALE
    fixed_seconds: float | None = None  # every schedule this often; 0 = only when triggered

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScheduleTiming:
        scale = _parse_scale(env["BILLOPS_LOCAL_SCHEDULE_SCALE"]) if env.get("BILLOPS_LOCAL_SCHEDULE_SCALE",
                                                                               "").strip() else DEFAULT_SCALE
        fixed: float | None = None
        raw = env.get("BILLOPS_LOCAL_SCHEDULE_SECONDS", "").strip()
        if raw:
            try:
                fixed = float(raw)
            except ValueError:
                raise ValueError(f"BILLOPS_LOCAL_SCHEDULE_SECONDS={raw!r} is not a number") from None
            if fixed < 0:
                raise ValueError("BILLOPS_LOCAL_SCHEDULE_SECONDS must be 0 or more")
        return cls(scale, fixed)

    @property
    def automatic(self) -> bool:
        return self.fixed_seconds != 0

    def local_seconds(self, aws_seconds: float) -> float:
        if self.fixed_seconds:
            return self.fixed_seconds
        return max(MINIMUM_LOCAL_PERIOD, float(aws_seconds * self.scale))

    def retry_delay(self, attempt: int) -> float:
        aws = ASYNC_RETRY_DELAYS[min(attempt, len(ASYNC_RETRY_DELAYS)) - 1]
        return max(MINIMUM_LOCAL_PERIOD, float(aws * self.scale))

    def describe(self) -> str:
        if self.fixed_seconds == 0:
            return "only when triggered (BILLOPS_LOCAL_SCHEDULE_SECONDS=0)"
        if self.fixed_seconds:
            return f"every {self.fixed_seconds:g} s (BILLOPS_LOCAL_SCHEDULE_SECONDS)"
        return f"AWS periods x {self.scale} (BILLOPS_LOCAL_SCHEDULE_SCALE)"


# ----------------------------------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------------------------------


def _iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def scheduled_event(schedule: ScheduleSpec, when: datetime | None = None) -> Any:
    """What EventBridge sends the function for one firing of ``schedule``."""
    if schedule.input is not None:
        return json.loads(schedule.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events" if schedule.kind == "Schedule" else "aws.scheduler",
        "account": LOCAL_ACCOUNT_ID,
        "time": _iso_seconds(when or datetime.now(UTC)),
        "region": LOCAL_REGION,
        "resources": [schedule.arn],
        "detail": {},
    }


# ----------------------------------------------------------------------------------------------------------------
# Runner
# ----------------------------------------------------------------------------------------------------------------


class ScheduleNotFound(LookupError):
    pass


@dataclass
class ScheduleStats:
    fired: int = 0  # invocations started by the clock (retries included)
    triggered: int = 0  # invocations asked for by trigger()
    failed: int = 0
    retried: int = 0
    last_error: str | None = None
    last_fired_at: str | None = None


@dataclass
class TriggerResult:
    function_logical_id: str
    event_id: str
    event: Any
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


@dataclass
class ScheduledFunction:
    schedule: ScheduleSpec
    function: Any  # a billops_local.aws_environment.LocalFunction (or anything with invoke/logical_id)
    maximum_retry_attempts: int = 2
    stats: ScheduleStats = field(default_factory=ScheduleStats)

    @property
    def key(self) -> tuple[str, str]:
        return (self.schedule.function_logical_id, self.schedule.event_id)

    @property
    def cadence(self) -> Rate | Cron:
        return parse_schedule_expression(self.schedule.expression, self.schedule.timezone,
                                         what=f"{self.schedule.function_logical_id}.{self.schedule.event_id}")


class ScheduleRunner:
    """Fires every enabled schedule on its local period, each in its own thread; ``trigger()`` fires one now."""

    def __init__(
        self,
        scheduled: Iterable[ScheduledFunction],
        timing: ScheduleTiming | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.scheduled = list(scheduled)
        self.timing = timing or ScheduleTiming()
        self._now = now
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lookup ------------------------------------------------------------------------------------------------

    def find(self, function_logical_id: str, event_id: str | None = None) -> ScheduledFunction:
        matching = [item for item in self.scheduled if item.schedule.function_logical_id == function_logical_id
                    and (event_id is None or item.schedule.event_id == event_id)]
        if not matching:
            known = ", ".join(f"{a}/{b}" for a, b in (item.key for item in self.scheduled)) or "none"
            raise ScheduleNotFound(f"no schedule {function_logical_id}{'/' + event_id if event_id else ''} "
                                   f"(schedules: {known})")
        if len(matching) > 1:
            raise ScheduleNotFound(f"{function_logical_id} has several schedules; name one of "
                                   f"{[item.schedule.event_id for item in matching]}")
        return matching[0]

    def local_period(self, item: ScheduledFunction) -> float | None:
        """Seconds between firings locally (None when only triggered; a cron's next gap otherwise)."""
        if not self.timing.automatic or not item.schedule.enabled:
            return None
        cadence = item.cadence
        if isinstance(cadence, Rate):
            return self.timing.local_seconds(cadence.seconds)
        now = self._now()
        first = cadence.next_after(now)
        second = cadence.next_after(first) if first else None
        return None if first is None or second is None else self.timing.local_seconds(
            (second - first).total_seconds())

    def describe(self) -> str:
        parts = []
        for item in self.scheduled:
            period = self.local_period(item)
            when = "disabled" if not item.schedule.enabled else (
                f"every {period:g} s" if period is not None else "when triggered")
            parts.append(f"{item.schedule.function_logical_id} {item.schedule.expression} ({when})")
        return "; ".join(parts) or "none"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        if not self.timing.automatic:
            return
        for item in self.scheduled:
            if not item.schedule.enabled:
                continue
            thread = threading.Thread(target=self._run, args=(item,), daemon=True,
                                      name=f"billops-schedule-{item.schedule.function_logical_id}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout  # one wait for all the threads, not one each
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s: still busy in an invocation after %.0f s; leaving it", thread.name, timeout)
        self._threads.clear()

    def _run(self, item: ScheduledFunction) -> None:
        cadence = item.cadence
        virtual = self._now()  # AWS's clock, advanced one occurrence per firing
        due = time.monotonic()
        while not self._stop.is_set():
            following = cadence.next_after(virtual)
            if following is None:
                log.info("%s/%s: %s has no further occurrence", *item.key, item.schedule.expression)
                return
            gap = (following - virtual).total_seconds()
            virtual = following
            due = max(due + self.timing.local_seconds(gap), time.monotonic())
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._fire(item)

    def _fire(self, item: ScheduledFunction) -> None:
        event = scheduled_event(item.schedule, self._now())
        item.stats.last_fired_at = _iso_seconds(self._now())
        for attempt in range(item.maximum_retry_attempts + 1):
            if attempt:
                if self._stop.wait(self.timing.retry_delay(attempt)):
                    return
                item.stats.retried += 1
            item.stats.fired += 1
            try:
                item.function.invoke(event)
            except Exception as error:  # the function's failure, reported as Lambda would
                item.stats.failed += 1
                item.stats.last_error = f"{type(error).__name__}: {error}"
                left = item.maximum_retry_attempts - attempt
                log.error("%s (schedule %s) raised %s%s", item.schedule.function_logical_id, item.schedule.event_id,
                          type(error).__name__, f"; retrying ({left} left)" if left else "; giving up",
                          exc_info=log.isEnabledFor(logging.DEBUG))
                continue
            return

    # -- on demand -------------------------------------------------------------------------------------------

    def trigger(self, function_logical_id: str, event_id: str | None = None, *, event: Any = None) -> TriggerResult:
        """Invoke a schedule's function now with a fresh scheduled event (or ``event``, as ``aws lambda invoke``
        would pass it: the CLI's operator commands); waits for the result (no retries)."""
        item = self.find(function_logical_id, event_id)
        event = scheduled_event(item.schedule, self._now()) if event is None else event
        item.stats.triggered += 1
        outcome = TriggerResult(item.schedule.function_logical_id, item.schedule.event_id, event)
        try:
            outcome.result = item.function.invoke(event)
        except Exception as error:  # the function's failure, answered as a synchronous Invoke would
            item.stats.failed += 1
            item.stats.last_error = f"{type(error).__name__}: {error}"
            outcome.error_type = type(error).__name__
            outcome.error_message = str(error)
            log.error("%s (triggered schedule %s) raised %s", item.schedule.function_logical_id,
                      item.schedule.event_id, outcome.error_type, exc_info=log.isEnabledFor(logging.DEBUG))
        return outcome

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "function": item.schedule.function_logical_id,
                "event": item.schedule.event_id,
                "type": item.schedule.kind,
                "expression": item.schedule.expression,
                "enabled": item.schedule.enabled,
                "rule_arn": item.schedule.arn,
                "local_period_seconds": self.local_period(item),
                "fired": item.stats.fired,
                "triggered": item.stats.triggered,
                "failed": item.stats.failed,
                "retried": item.stats.retried,
                "last_fired_at": item.stats.last_fired_at,
            }
            for item in self.scheduled
        ]
