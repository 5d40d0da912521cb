"""Faults injected into the worker for end-to-end tests of the local stack. Inert anywhere but ``BILLOPS_ENV=local``.

The CCBill sandbox can misbehave on its side of the wire (docs/ccbill-client.md, "Fault injection"); what it cannot
do is kill *our* worker between its CCBill call and the write that records the outcome. Tests that drive the local
stack from outside (tests/e2e) start it with::

    BILLOPS_LOCAL_FAULTS=crash_after_call:<CCBill action>:<count>[,...]

e.g. ``crash_after_call:chargeByPreviousTransactionId:1``: the next ``count`` calls of that action made by the
worker in this process return from CCBill and then raise ``SimulatedCrash`` before the outcome is recorded - what a
worker dying at that moment leaves behind (a record ``in_progress``, CCBill's change applied, the message handed
back to the queue). Counts are per process. Nothing here runs unless ``BILLOPS_ENV`` is ``local``: in AWS the
variable is ignored, however it got there.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

VARIABLE = "BILLOPS_LOCAL_FAULTS"
CRASH_AFTER_CALL = "crash_after_call"

_lock = threading.Lock()
_parsed_from: str | None = None
_remaining: dict[str, int] = {}


class SimulatedCrash(RuntimeError):
    """The worker 'died' between the CCBill call and the outcome write (a local test fault)."""


def _armed(spec: str) -> dict[str, int]:
    """``{action: count}`` of the crash_after_call directives in ``spec``; counts persist while spec is unchanged."""
    global _parsed_from, _remaining
    if spec != _parsed_from:
        remaining: dict[str, int] = {}
        for directive in filter(None, (part.strip() for part in spec.split(","))):
            kind, _, rest = directive.partition(":")
            action, _, count = rest.partition(":")
            if kind != CRASH_AFTER_CALL or not action or not count.isdigit():
                raise ValueError(f"{VARIABLE}: {directive!r} is not crash_after_call:<action>:<count>")
            remaining[action] = remaining.get(action, 0) + int(count)
        _parsed_from, _remaining = spec, remaining
    return _remaining


def after_ccbill_call(action: str | None) -> None:
    """Called by the worker right after CCBill answered and before the outcome is written."""
    spec = os.environ.get(VARIABLE, "").strip()
    if not spec or os.environ.get("BILLOPS_ENV", "").strip().lower() != "local" or not action:
        return
    with _lock:
        remaining = _armed(spec)
        if remaining.get(action, 0) <= 0:
            return
        remaining[action] -= 1
    logger.warning("local fault: simulated crash after %s, before the outcome is recorded", action)
    raise SimulatedCrash(f"{VARIABLE}: simulated crash after {action}, before the outcome was recorded")
