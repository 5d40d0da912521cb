"""A container's init kept out of the cyclic garbage collector's way.

A handler module's imports and set-up make a few hundred thousand objects that live as long as the container, and the
collector kept walking them while they were made: about 30 ms of CPU of the webhook receiver's ~230 ms import
(the collections timed with gc.callbacks in the cold probe of ``python -m bench --only cold``). Imports leave next to no
cyclic garbage, so ``container_init`` holds the collector off while the handler module sets up, then freezes what
exists (gc.freeze: those objects stay out of every later collection, the warm invocations' included) and lets the
collector run again. ``first_invocation`` does the same for the container's first invocation, which makes the rest of
what lives as long as the container: the AWS clients (botocore's service models), the event type's model, the
secrets and data key (another ~8 ms of collections).

Once per process each: a module loaded again in the same interpreter (the tests, the local stack) sets up with the
collector running as usual, so repeated loads never freeze (and keep) each other's garbage.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

_first_init = True
_first_call = True


@contextmanager
def _collector_held_off() -> Iterator[None]:
    """The block without the cyclic collector, then what exists frozen out of later collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def container_init() -> Iterator[None]:
    """The block (a handler module's imports and set-up) with the collector held off, then what exists frozen."""
    global _first_init
    if not _first_init:
        yield
        return
    _first_init = False
    with _collector_held_off():
        yield


def first_invocation(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``handler`` whose first invocation in the process runs like ``container_init``."""

    @wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        global _first_call
        if not _first_call:
            return handler(event, context)
        _first_call = False
        # Threads (the local stack) that start meanwhile run without the collector too, until this call ends.
        with _collector_held_off():
            return handler(event, context)

    return invoke
