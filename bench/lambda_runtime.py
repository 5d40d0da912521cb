"""What the benchmarks need of a Lambda container: a handler imported by file path (its module-level setup runs
then, as in a cold start) and a context object."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE_HANDLER = ROOT / "bench/baseline_receiver.py"


def function_specs() -> dict[str, Any]:
    """Every function of template.yaml (logical ID -> billops_local's FunctionSpec: module_path, memory_size, ...),
    read afresh: the benchmark follows the template, whatever functions it has today."""
    from billops_local.template_resources import load_template

    return dict(load_template().functions)


def load_module(path: Path, name: str | None = None) -> Any:
    name = name or path.stem
    code_dir = str(path.parent)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(self, function_name: str = "bench-function", memory_limit_in_mb: int = 256) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]bench"
        self.aws_request_id = str(uuid.uuid4())

    def fresh(self) -> LambdaContext:
        """A new request id, as every invocation gets."""
        self.aws_request_id = str(uuid.uuid4())
        return self

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000
