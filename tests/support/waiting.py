"""``eventually``: wait for the state a test needs instead of racing an asynchronous path.

The local stack folds webhooks from the events table's stream, runs operations from a queue and fires schedules on
its own: whatever those write is there *some time* after the request that caused it. A test reads such state only
through ``eventually`` (bounded, polling, failing with what it last saw), never right after the request, and never
after a fixed sleep.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MIN_TIMEOUT_SECONDS = float(os.environ.get("BILLOPS_TEST_MIN_WAIT_SECONDS", "60"))
"""No wait gives up sooner: a wait returns as soon as the state is there, so a long deadline costs a passing test
nothing, while a short one fails a correct run on a loaded 2-core machine (a projection taking 20 s there is slow,
not wrong). A test that must see something *not* happen does not use ``eventually``."""

POLL_SECONDS = 0.1
"""Short enough that a test waits at most a tenth of a second more than it must; every probe here is a local HTTP
or moto call of a few milliseconds."""


def eventually(check: Callable[[], T], timeout: float = 60.0, interval: float = POLL_SECONDS, *,
               what: str = "the expected state", show: Callable[[], Any] | None = None) -> T:
    """Call ``check()`` until it returns something truthy, and return that; after ``timeout`` seconds fail with an
    AssertionError naming ``what`` and the last value seen (or ``show()``). An AssertionError raised by ``check``
    counts as "not yet" (so a check may assert), and is the one re-raised at the deadline."""
    timeout = max(timeout, MIN_TIMEOUT_SECONDS)
    deadline = time.monotonic() + timeout
    while True:
        failure: AssertionError | None = None
        try:
            value = check()
        except AssertionError as error:
            value, failure = None, error  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = show() if show is not None else value
            message = f"timed out after {timeout:g} s waiting for {what}; last seen: {seen!r}"
            if failure is not None:
                raise AssertionError(f"{message}\n{failure}") from failure
            raise AssertionError(message)
        time.sleep(interval)
