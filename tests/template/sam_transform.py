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
import re
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


def flattened_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Every part in one CloudFormation document, for the checks that must see all of them at once (least
    privilege, encryption at rest, iam_check): each nested stack's resources, conditions and outputs brought into
    its parent, its parameters replaced by what the parent passes it, its resources under the parent's condition
    for the nested stack. An analysis view, not something to deploy."""
    return _flatten(transform_template(path), Path(path).resolve().parent)


def _flatten(document: dict[str, Any], base: Path) -> dict[str, Any]:
    resources = document["Resources"]
    conditions = document.setdefault("Conditions", {})
    outputs_of: dict[str, dict[str, Any]] = {}
    for stack_id, location in nested_locations(document).items():
        stack = resources[stack_id]
        nested_path = (base / location).resolve()
        nested = _flatten(transform_template(nested_path), nested_path.parent)
        passed = (stack.get("Properties") or {}).get("Parameters") or {}
        values = {}
        for name, declaration in (nested.get("Parameters") or {}).items():
            if name in passed:
                values[name] = passed[name]
            elif "Default" in (declaration or {}):
                values[name] = declaration["Default"]
            else:
                raise ValueError(f"{stack_id}: the parent passes no {name} and it has no default")
        renamed = {name: f"{stack_id}{name}" for name in nested.get("Conditions") or {}}
        substitute = _substitution(values, renamed)
        under = stack.get("Condition")
        for name, expression in (nested.get("Conditions") or {}).items():
            expression = substitute(expression)
            conditions[renamed[name]] = {"Fn::And": [{"Condition": under}, expression]} if under else expression
        for logical_id, resource in nested["Resources"].items():
            if logical_id in resources:
                raise ValueError(f"{stack_id}: {logical_id} is also a resource of the parent")
            resource = substitute(resource)
            if "Condition" in resource:
                resource["Condition"] = renamed[resource["Condition"]]
            elif under:
                resource["Condition"] = under
            resources[logical_id] = resource
        outputs_of[stack_id] = {name: substitute(output["Value"])
                                for name, output in (nested.get("Outputs") or {}).items()}
    if outputs_of:
        document["Resources"] = _replace_outputs(resources, outputs_of)
        document["Outputs"] = _replace_outputs(document.get("Outputs") or {}, outputs_of)
    return document


def _substitution(values: dict[str, Any], conditions: dict[str, str]):
    """A nested template's values rewritten in its parent's terms: parameters by what the parent passes,
    conditions by their new names."""

    def in_sub(value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return "${" + value["Ref"] + "}"
        if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
            return "${" + ".".join(value["Fn::GetAtt"]) + "}"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ValueError(f"cannot write {value!r} into a Fn::Sub")

    def rewrite_text(text: str, shadowed: set[str]) -> str:
        return re.sub(r"\$\{([^}!]+)\}", lambda m: in_sub(values[m.group(1)])
                      if m.group(1) in values and m.group(1) not in shadowed else m.group(0), text)

    def substitute(value: Any) -> Any:
        if isinstance(value, list):
            return [substitute(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"} and value["Ref"] in values:
            return copy.deepcopy(values[value["Ref"]])
        if set(value) == {"Condition"} and isinstance(value["Condition"], str):
            return {"Condition": conditions.get(value["Condition"], value["Condition"])}
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return {"Fn::If": [conditions.get(name, name), substitute(when_true), substitute(when_false)]}
        if set(value) == {"Fn::Sub"}:
            argument = value["Fn::Sub"]
            if isinstance(argument, str):
                return {"Fn::Sub": rewrite_text(argument, set())}
            text, variables = argument
            return {"Fn::Sub": [rewrite_text(text, set(variables)), substitute(variables)]}
        return {key: substitute(item) for key, item in value.items()}

    return substitute


def _replace_outputs(value: Any, outputs_of: dict[str, dict[str, Any]]) -> Any:
    """`!GetAtt <NestedStack>.Outputs.<Name>` -> the nested output's value."""
    if isinstance(value, list):
        return [_replace_outputs(item, outputs_of) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        stack, attribute = target.split(".", 1) if isinstance(target, str) else target
        if stack in outputs_of and attribute.startswith("Outputs."):
            return copy.deepcopy(outputs_of[stack][attribute.removeprefix("Outputs.")])
    return {key: _replace_outputs(item, outputs_of) for key, item in value.items()}


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
