"""Which test process this is (pytest-xdist runs ``make test`` in several) and where its artifacts go.

Each xdist worker is its own process with its own session: its session-scoped fixtures (the e2e ``local_stack``, the
integration ``moto_server``) are its own, on its own ports. Files a session writes go under
``test-artifacts/<what>/<worker>/`` so that no two processes write one file; the controller merges what must be
seen whole (tests/conftest.py: the e2e log check).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SINGLE_PROCESS = "main"


def worker_id() -> str:
    """``gw0``, ``gw1``... in a pytest-xdist worker; ``main`` in a run without workers (``-p no:xdist``, ``-n 0``)."""
    return os.environ.get("PYTEST_XDIST_WORKER") or SINGLE_PROCESS


def is_xdist_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def artifacts_dir(what: str) -> Path:
    """``test-artifacts/<what>/<worker>/``: this process's own directory (created)."""
    directory = ARTIFACTS / what / worker_id()
    directory.mkdir(parents=True, exist_ok=True)
    return directory
