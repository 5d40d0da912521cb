"""The CloudFormation that SAM's transform makes of template.yaml (the roles with their expanded policies, the
functions' event source mappings): what the template tests check and what `make security` gives checkov.

Run as a script, it writes that template as JSON: `python tests/template/sam_transform.py OUT.json`.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def transform_template(path: Path = TEMPLATE) -> dict[str, Any]:
    from billops_local.template_resources import load_yaml
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    document = copy.deepcopy(load_yaml(path))
    for resource in document["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = "s3://bucket/key"  # what `sam validate` substitutes for local paths
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        return Translator(managed_policy_map={}, sam_parser=Parser()).translate(
            sam_template=document, parameter_values={}
        )
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: sam_transform.py OUT.json", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(transform_template(), indent=1, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
