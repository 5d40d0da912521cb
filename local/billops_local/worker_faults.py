"""Local only: the operation worker "dies" between its CCBill call and the write that records the outcome.

The CCBill sandbox can misbehave on its side of the wire (docs/ccbill-client.md, "Fault injection"); what it cannot
do is kill *our* worker after CCBill answered and before the outcome is written. Tests that drive the local stack
from outside (tests/e2e, tests/reliability) start it with::

    BILLOPS_LOCAL_FAULTS=crash_after_call:<CCBill action>:<count>[,...]

e.g. ``crash_after_call:chargeByPreviousTransactionId:1``: the next ``count`` calls of that action made by the
operation worker return from CCBill and then raise ``SimulatedCrash`` before the outcome is recorded - what a worker
dying at that moment leaves behind (a record ``in_progress``, CCBill's change applied, the message handed back to
the queue). The counts are the stack's: shared by all the worker's execution environments (processes).

How it gets in: the layer's composition root takes the hook as a parameter (``on_ccbill_answered`` of
``billops.operations.wiring.build_services``, handed to the ``OperationRunner``; None in AWS). The local stack runs
``WorkerFaults`` in the worker's process before its handler is imported (billops_local.function_process's
``setups``): it wraps that composition root so the handler's own call to it passes the hook. Nothing in the layer
names this module.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("billops_local.faults")

VARIABLE = "BILLOPS_LOCAL_FAULTS"
CRASH_AFTER_CALL = "crash_after_call"
WORKER_FUNCTION = "OperationWorkerFunction"
COMPOSITION_ROOT = ("billops.operations.wiring", "build_services")
"""The function that builds the worker's objects, and takes ``on_ccbill_answered``."""
HOOK_PARAMETER = "on_ccbill_answered"


class SimulatedCrash(RuntimeError):
    """The worker 'died' between the CCBill call and the outcome write (a local test fault)."""


def parse(spec: str) -> dict[str, int]:
    """``{action: count}`` of the crash_after_call directives in ``spec``."""
    remaining: dict[str, int] = {}
    for directive in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, rest = directive.partition(":")
        action, _, count = rest.partition(":")
        if kind != CRASH_AFTER_CALL or not action or not count.isdigit():
            raise ValueError(f"{VARIABLE}: {directive!r} is not crash_after_call:<action>:<count>")
        remaining[action] = remaining.get(action, 0) + int(count)
    return remaining


class WorkerFaults:
    """The crashes still to come, per action, in shared memory (``multiprocessing.Value``): made by the stack,
    drawn from by every worker process. Picklable while a process is being started, as ``setups`` are."""

    def __init__(self, counts: Mapping[str, int], context: Any = None) -> None:
        if context is None:
            from billops_local.function_process import process_context

            context = process_context()
        self._remaining = {action: context.Value("i", count) for action, count in counts.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerFaults | None:
        spec = (env.get(VARIABLE) or "").strip()
        return cls(parse(spec)) if spec else None

    def describe(self) -> str:
        return ", ".join(f"crash after {action} x{value.value}" for action, value in self._remaining.items())

    def after_ccbill_call(self, action: str | None) -> None:
        """The hook: raises SimulatedCrash while the action has crashes left."""
        remaining = self._remaining.get(action or "")
        if remaining is None:
            return
        with remaining.get_lock():
            if remaining.value <= 0:
                return
            remaining.value -= 1
        logger.warning("local fault: simulated crash after %s, before the outcome is recorded", action)
        raise SimulatedCrash(f"{VARIABLE}: simulated crash after {action}, before the outcome was recorded")

    def __call__(self) -> None:
        """In the worker's process, before its handler is imported: the composition root passes the hook."""
        module = importlib.import_module(COMPOSITION_ROOT[0])
        original = getattr(module, COMPOSITION_ROOT[1])

        @functools.wraps(original)
        def with_faults(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault(HOOK_PARAMETER, self.after_ccbill_call)
            return original(*args, **kwargs)

        setattr(module, COMPOSITION_ROOT[1], with_faults)
