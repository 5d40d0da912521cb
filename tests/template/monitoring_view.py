"""The alarms and the dashboard of template.yaml, wherever they are written (in the template itself or in a nested
template it names), as one comparable view: every reference resolved to what it names in template.yaml
(`Ref:WebhookReceiverFunction`, `GetAtt:OperationsQueue.QueueName`), whatever parameter carried it into a nested
stack.

tests/template/monitoring_before_split.json is this view of template.yaml before monitoring moved into
templates/monitoring.yaml (made with `python tests/template/monitoring_view.py > ...` at main's c3170b0, the last
single-file template, with the daily figures' alarms and widgets);
test_monitoring.py checks that every alarm and widget of it still exists, the same.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from sam_transform import TEMPLATE, nested_locations

ALARM_FIELDS = ("AlarmDescription", "Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods",
                "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData")
_SUB = re.compile(r"\$\{([^}!]+)\}")


def _root_name(value: Any) -> Any:
    """A value as written in template.yaml -> what it names there."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"Ref:{value['Ref']}"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        logical_id, attribute = target.split(".", 1) if isinstance(target, str) else target
        return f"GetAtt:{logical_id}.{attribute}"
    if isinstance(value, (str, int, float)):
        return value
    raise ValueError(f"cannot name {value!r}")


def _resolver(parameters: dict[str, Any] | None):
    """How a value of a template resolves: in template.yaml itself (parameters None), a reference names itself; in
    a nested template, a parameter names what template.yaml gave it."""

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(item) for item in value]
        if isinstance(value, dict) and set(value) == {"Ref"} and parameters is not None:
            name = value["Ref"]
            if name in parameters:
                return _root_name(parameters[name])
            if name.startswith("AWS::"):
                return f"Ref:{name}"
            raise ValueError(f"nested template: !Ref {name} is no parameter")
        if isinstance(value, dict) and set(value) & {"Ref", "Fn::GetAtt"}:
            return _root_name(value)
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        return value

    return resolve


def _dashboard_widgets(body: Any, parameters: dict[str, Any] | None) -> list[dict[str, Any]]:
    text, variables = (body, {}) if isinstance(body, str) else body
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("AWS::"):
            return match.group(0)
        if name in variables:
            return f"«{_root_name(variables[name])}»"
        if parameters is not None:
            return f"«{_root_name(parameters[name])}»"
        return f"«Ref:{name}»"

    return json.loads(_SUB.sub(replace, text))["widgets"]


def _collect(document: dict[str, Any], parameters: dict[str, Any] | None, view: dict[str, Any]) -> None:
    resolve = _resolver(parameters)
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            alarm = {field: properties[field] for field in ALARM_FIELDS if field in properties}
            alarm["Dimensions"] = {d["Name"]: resolve(d["Value"]) for d in properties.get("Dimensions") or []}
            for actions in ("AlarmActions", "OKActions"):
                alarm[actions] = resolve(properties.get(actions) or [])
            view["alarms"][logical_id] = alarm
        elif resource["Type"] == "AWS::CloudWatch::Dashboard":
            view["dashboards"][logical_id] = _dashboard_widgets(properties["DashboardBody"]["Fn::Sub"], parameters)


def monitoring_view(path: Path = TEMPLATE) -> dict[str, Any]:
    from billops_local.template_resources import load_yaml

    root = load_yaml(path)
    view: dict[str, Any] = {"alarms": {}, "dashboards": {}}
    _collect(root, None, view)
    for logical_id, location in nested_locations(root).items():
        parameters = root["Resources"][logical_id]["Properties"].get("Parameters") or {}
        _collect(load_yaml(Path(path).parent / location), parameters, view)
    return view


if __name__ == "__main__":
    json.dump(monitoring_view(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
