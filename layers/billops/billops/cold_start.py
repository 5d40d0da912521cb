"""A container's init kept out of the cyclic garbage collector's way.

A handler module's imports and set-up make a few hundred thousand objects that live as long as the container, and the
collector kept walking them while they were made: about 30 ms of CPU of the webhook receiver's ~230 ms import
(bench: ``python -m bench --only cold``, which counts the collections with gc.callbacks). Imports leave next to no
cyclic garbage, so ``container_init`` holds the collector off while the handler module sets up, then freezes what
exists (gc.freeze: those objects stay out of every later collection, the warm invocations' included) and lets the
collector run again.

Once per process: a module loaded again in the same interpreter (the tests, the local stack) sets up with the
collector running as usual, so repeated loads never freeze (and keep) each other's garbage.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_first = True


@contextmanager
def container_init() -> Iterator[None]:
    global _first
    if not _first:
        yield
        return
    _first = False
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
