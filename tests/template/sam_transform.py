"""The CloudFormation that SAM's transform makes of template.yaml (the roles with their expanded policies, the
functions' event source mappings): what the template tests check and what `make security` gives checkov.

template.yaml names nested templates (`AWS::Serverless::Application` with a local `Location`, e.g.
templates/monitoring.yaml): `template_parts` finds every one of them, recursively, so that the scans and the tests
cover each part, not only the root.

Run as a script, it writes each part as JSON into a directory: `python tests/template/sam_transform.py OUT_DIR`
(OUT_DIR/template.json for template.yaml, OUT_DIR/templates-monitoring.json for templates/monitoring.yaml, ...).
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
NESTED_TYPES = ("AWS::Serverless::Application", "AWS::CloudFormation::Stack")


def nested_locations(document: dict[str, Any]) -> dict[str, str]:
    """Logical ID -> the local path of each nested template the document names (S3 URLs and SAR apps left out)."""
    found = {}
    for logical_id, resource in (document.get("Resources") or {}).items():
        if resource.get("Type") not in NESTED_TYPES:
            continue
        properties = resource.get("Properties") or {}
        location = properties.get("Location", properties.get("TemplateURL"))
        if isinstance(location, str) and "://" not in location:
            found[logical_id] = location
    return found


def template_parts(path: Path = TEMPLATE) -> dict[str, Path]:
    """template.yaml and every nested template it names with a local path, recursively: name -> file, the name
    being the path relative to the repository (`template.yaml`, `templates/monitoring.yaml`)."""
    from billops_local.template_resources import load_yaml

    parts: dict[str, Path] = {}
    pending = [Path(path).resolve()]
    while pending:
        current = pending.pop(0)
        name = current.relative_to(ROOT).as_posix() if current.is_relative_to(ROOT) else current.name
        if name in parts:
            continue
        parts[name] = current
        for location in nested_locations(load_yaml(current)).values():
            nested = (current.parent / location).resolve()
            if not nested.is_file():
                raise FileNotFoundError(f"{name} names a nested template that does not exist: {location}")
            pending.append(nested)
    return parts


def transform_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """One template as CloudFormation deploys it: SAM's transform applied when it declares one (local code paths
    replaced by S3 URLs, as `sam validate` does), a plain CloudFormation template as it is."""
    from billops_local.template_resources import load_yaml

    document = copy.deepcopy(load_yaml(path))
    if "Transform" not in document:
        return document
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

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


def transform_parts(path: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """Every part (template_parts), transformed."""
    return {name: transform_template(part) for name, part in template_parts(path).items()}


def output_name(part: str) -> str:
    """`templates/monitoring.yaml` -> `templates-monitoring.json`."""
    return part.rsplit(".", 1)[0].replace("/", "-") + ".json"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: sam_transform.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    for part, document in transform_parts().items():
        (out / output_name(part)).write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
        print(f"{part} -> {out / output_name(part)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
