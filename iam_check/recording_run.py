"""The short recording run `make check-iam` makes on its own when no test run recorded any call (a fresh clone).

A few minutes of the suites that together make every function run its paths: the operations (worker, scheduler,
reconciliation, upgrade postback, with the receiver and the projector fed by the CCBill sandbox), the merchant API,
the upgrade page, and two end-to-end files whose local stack runs the event source pollers (the projector's stream,
the worker's queue) with the functions' roles. `make test` records everything anyway; this only stands in for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404  # runs our own pytest
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = [
    "tests/integration/operations/test_operation_types.py",
    "tests/integration/operations/test_operation_schedules.py",
    "tests/integration/operations/test_upgrade_postback_replay.py",
    "tests/integration/merchant_api/test_merchant_api_reads.py",
    "tests/integration/merchant_api/test_merchant_api_operations.py",
    "tests/integration/upgrade_page/test_upgrade_page_handler.py",
    "tests/integration/test_subscription_projector_handler.py",
    "tests/e2e/test_local_operations_infrastructure.py",
    "tests/e2e/test_webhooks_over_http.py",
]


def record(directory: Path) -> int:
    """Run the suites with BILLOPS_RECORD_AWS_CALLS=directory; pytest's exit status."""
    shutil.rmtree(directory, ignore_errors=True)
    env = {**os.environ, "BILLOPS_RECORD_AWS_CALLS": str(directory)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode  # nosec B603  # our own pytest
