"""The end-to-end suite's log check across test processes (pytest-xdist).

Each process that ran e2e tests scans its own captured logs at its session end (tests/e2e/conftest.py): it holds
the needles its own tests registered (the values they sent, the secrets of the stacks it started). A worker sends
its findings (file, line, what - never a value) to the controller in ``workeroutput``; the controller (or a run
without workers) writes them all to test-artifacts/e2e-logs/leaks.txt and fails the run.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from support.parallel import ARTIFACTS

E2E_LOGS = ARTIFACTS / "e2e-logs"
LEAKS_REPORT = E2E_LOGS / "leaks.txt"
WORKER_OUTPUT_KEY = "billops_e2e_log_leaks"


def send_leaks_to_controller(config: pytest.Config, leaks: list[str]) -> None:
    config.workeroutput[WORKER_OUTPUT_KEY] = leaks  # type: ignore[attr-defined]


def leaks_from_worker(node: object) -> list[str] | None:
    """What a finished worker found (None: it captured no e2e logs)."""
    return (getattr(node, "workeroutput", None) or {}).get(WORKER_OUTPUT_KEY)


def report_leaks(session: pytest.Session, leaks: Iterable[str]) -> None:
    """Write the merged report (or remove a stale one) and fail the session on any finding."""
    leaks = list(leaks)
    if not leaks:
        if LEAKS_REPORT.exists():
            LEAKS_REPORT.unlink()
        return
    E2E_LOGS.mkdir(parents=True, exist_ok=True)
    LEAKS_REPORT.write_text("\n".join(leaks) + "\n", encoding="utf-8")
    message = (f"{len(leaks)} secret(s) or personal data found in captured logs "
               f"({LEAKS_REPORT.relative_to(E2E_LOGS.parents[1])}):\n" + "\n".join(f"  {leak}" for leak in leaks[:50]))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
