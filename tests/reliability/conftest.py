"""The reliability suites (issue 7): long runs against the local stack, collected only when asked for.

    python -m pytest tests/reliability -m reliability      # what `make test-reliability` runs
    BILLOPS_RELIABILITY=1 python -m pytest tests/reliability/test_load.py

Plain ``pytest`` (``make test``) does not collect these files at all - they are ignored, not skipped - unless the
mark expression selects ``reliability`` or ``BILLOPS_RELIABILITY=1`` is set. Every test here is marked
``reliability``; the marker is registered here (pyproject's --strict-markers).

Each suite records its figures (``reliability <suite>: name=value ...``); they are printed together as the last
section of pytest's summary, and written to test-artifacts/reliability/<suite>.txt for CI's record.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parents[1] / "test-artifacts" / "reliability"
ENABLE_VARIABLE = "BILLOPS_RELIABILITY"
_figures: list[str] = []


def reliability_requested(config: pytest.Config) -> bool:
    if os.environ.get(ENABLE_VARIABLE, "").strip() == "1":
        return True
    expression = (config.getoption("markexpr", "") or "").replace("(", " ").replace(")", " ")
    words = expression.split()
    return any(word == "reliability" and (index == 0 or words[index - 1] != "not")
               for index, word in enumerate(words))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: a long reliability suite against the local stack "
                                       "(issue 7; run with -m reliability or BILLOPS_RELIABILITY=1)")
    config.addinivalue_line("markers", "runs_alone: a suite whose timing is part of what it checks (a rate, "
                                       "deadlines): `make test-reliability` runs it after the others, alone")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if (collection_path.parent == HERE and collection_path.name.startswith("test_")
            and not reliability_requested(config)):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


FIGURES_PROPERTY = "reliability figures"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # The figures ride on the test's report (user_properties), so a pytest-xdist controller gets them from its
    # workers as a single process gets them from itself.
    for name, line in report.user_properties:
        if name == FIGURES_PROPERTY and line not in _figures:
            _figures.append(line)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _figures:
        terminalreporter.section("reliability figures")
        for line in _figures:
            terminalreporter.write_line(line)


@pytest.fixture
def report_figures(request: pytest.FixtureRequest):
    """``report_figures("webhooks", {"deliveries": 10000, ...})``: print and keep a suite's figures line."""

    def report(suite: str, figures: dict[str, object], details: str = "") -> str:
        line = f"reliability {suite}: " + " ".join(f"{name}={value}" for name, value in figures.items())
        request.node.user_properties.append((FIGURES_PROPERTY, line))
        print(line)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{suite}.txt").write_text((details + "\n" if details else "") + line + "\n")
        return line

    return report
