"""Each measurement runs in a fresh interpreter: handler modules keep state at module level (clients, caches, the
Powertools logger bound to stdout, Metrics' shared store), so billops and the baseline must never share a process,
and a cold start must really be cold. A worker module is run as ``python -m <module> <args> --result <file>`` and
writes its findings as JSON to that file; its stdout (the handlers' log lines) goes where the caller says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class BenchFailure(RuntimeError):
    """A measurement could not be taken."""


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without AWS_* / BILLOPS_* / POWERTOOLS_* (a developer's profile or endpoint must
    not leak into a measurement), with dummy credentials and no config files."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "BILLOPS_", "POWERTOOLS_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    env.update(extra)
    return env


def run_isolated(module: str, args: list[str], *, timeout: float, stdout_path: Path | None = None,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args --result <tmp>`` and return the JSON it wrote."""
    with tempfile.TemporaryDirectory(prefix="billops-bench-") as work:
        result_path = Path(work) / "result.json"
        stdout_target = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            process = subprocess.run(
                [sys.executable, "-m", module, *args, "--result", str(result_path)],
                cwd=ROOT, env=env or clean_environment(), stdin=subprocess.DEVNULL, stdout=stdout_target,
                stderr=subprocess.PIPE, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            raise BenchFailure(f"{module} {' '.join(args)} took longer than {timeout:.0f} s") from error
        finally:
            if stdout_path:
                stdout_target.close()
        if process.returncode != 0 or not result_path.exists():
            tail = process.stderr.decode("utf-8", "replace")[-3000:]
            raise BenchFailure(f"{module} {' '.join(args)} exited {process.returncode}:\n{tail}")
        return json.loads(result_path.read_text())


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=1, sort_keys=True, default=str))


def stdout_position() -> int:
    """Bytes written to this process's stdout so far (stdout must be a regular file)."""
    sys.stdout.flush()
    return os.fstat(sys.stdout.fileno()).st_size
