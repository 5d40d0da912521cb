"""``python tests/reliability/stack_launcher.py``: ``python -m billops_local`` whose functions see the JSON object in
``BILLOPS_RELIABILITY_FUNCTION_ENVIRONMENT`` over the template's own Environment.Variables - a stack deployed with
other values (e.g. a lease of a few seconds, where the template says 180 s, so that a crashed worker's claim runs
out while the suite waits). Used by reliability_stack.start_stack(function_environment=...).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

VARIABLE = "BILLOPS_RELIABILITY_FUNCTION_ENVIRONMENT"


def main() -> int:
    overrides = json.loads(os.environ.pop(VARIABLE, "") or "{}")
    if not isinstance(overrides, dict) or not all(isinstance(value, str) for value in overrides.values()):
        print(f"{VARIABLE} must be a JSON object of strings", file=sys.stderr)
        return 2

    import billops_local.stack as stack_module
    from billops_local.__main__ import main as run_stack

    template_environment = stack_module.merged_function_environment

    def with_overrides(environments: Any) -> dict[str, str]:
        return {**template_environment(environments), **overrides}

    stack_module.merged_function_environment = with_overrides
    return run_stack([])


if __name__ == "__main__":
    sys.exit(main())
