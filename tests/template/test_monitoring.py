"""The alarms and the dashboard (templates/monitoring.yaml, nested in template.yaml as Monitoring): generated from
their short list and up to date, every alarm and widget of the single-file template still there and the same,
every function alarmed, everything notifying the alarm topic."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from billops_local.template_resources import load_yaml
from monitoring_view import monitoring_view
from sam_transform import ROOT, TEMPLATE

pytestmark = pytest.mark.template

BEFORE_SPLIT = Path(__file__).with_name("monitoring_before_split.json")


def _generator():
    spec = importlib.util.spec_from_file_location("generate_monitoring", ROOT / "templates/monitoring/generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def view() -> dict[str, Any]:
    return json.loads(json.dumps(monitoring_view()))


def test_the_committed_monitoring_template_is_what_its_list_makes(capsys: pytest.CaptureFixture[str]) -> None:
    assert _generator().main(["--check"]) == 0, capsys.readouterr().err


def test_a_change_to_the_list_changes_the_template_and_fails_the_check(tmp_path: Path, monkeypatch) -> None:
    generator = _generator()
    original = generator.SOURCE.read_text(encoding="utf-8")
    assert "    Threshold: 1200\n" in original  # OperationsQueueAgeAlarm's 20 minutes
    changed = tmp_path / "alarms-and-dashboard.yaml"
    changed.write_text(original.replace("    Threshold: 1200\n", "    Threshold: 1800\n"), encoding="utf-8")
    rendered = load_yaml_text(generator.render(changed))
    assert rendered["Resources"]["OperationsQueueAgeAlarm"]["Properties"]["Threshold"] == 1800
    monkeypatch.setattr(generator, "SOURCE", changed)
    assert generator.main(["--check"]) == 1


def test_a_parameter_nothing_uses_or_a_reference_to_no_parameter_is_refused(tmp_path: Path) -> None:
    generator = _generator()
    original = generator.SOURCE.read_text(encoding="utf-8")
    unused = tmp_path / "unused.yaml"
    unused.write_text(original.replace("parameters:\n", "parameters:\n  Spare: Nothing uses it.\n"), encoding="utf-8")
    with pytest.raises(ValueError, match="Spare"):
        generator.render(unused)
    undeclared = tmp_path / "undeclared.yaml"
    undeclared.write_text(original.replace("!Ref OperationsQueueName}", "!Ref OperationsQueue}"), encoding="utf-8")
    with pytest.raises(ValueError, match="OperationsQueue"):
        generator.render(undeclared)


def load_yaml_text(text: str) -> dict[str, Any]:
    from billops_local.template_resources import CloudFormationLoader

    return yaml.load(text, Loader=CloudFormationLoader)  # nosec B506  # a yaml.SafeLoader subclass


def test_every_alarm_and_widget_of_before_the_split_is_still_there_the_same(view: dict[str, Any]) -> None:
    """Alarms and widgets compared in template.yaml's terms (what each dimension names), whatever parameter now
    carries it into the nested stack: metric, dimensions, statistic, period, threshold, description, actions."""
    before = json.loads(BEFORE_SPLIT.read_text(encoding="utf-8"))
    assert len(before["alarms"]) == 27 and len(before["dashboards"]["Dashboard"]) == 20
    for name, alarm in before["alarms"].items():
        assert view["alarms"].get(name) == alarm, name
    widgets = view["dashboards"]["Dashboard"]
    for widget in before["dashboards"]["Dashboard"]:
        assert widget in widgets, widget["properties"]["title"]


def test_every_function_has_an_errors_and_a_throttles_alarm(view: dict[str, Any]) -> None:
    functions = {name for name, resource in load_yaml(TEMPLATE)["Resources"].items()
                 if resource["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == 8
    for function in functions:
        for metric in ("Errors", "Throttles"):
            matching = [alarm for alarm in view["alarms"].values()
                        if (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
                        and alarm["Dimensions"] == {"FunctionName": f"Ref:{function}"}]
            assert len(matching) == 1, f"{function}: {metric}"


def test_every_alarm_notifies_the_alarm_topic_which_stays_in_template_yaml(view: dict[str, Any]) -> None:
    for name, alarm in view["alarms"].items():
        assert alarm["AlarmActions"] == ["Ref:AlarmTopic"], name
        assert alarm["OKActions"] in ([], ["Ref:AlarmTopic"]), name
    # The topic and its email subscription are the parent's: re-creating the alarms never asks to re-confirm.
    resources = load_yaml(TEMPLATE)["Resources"]
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    assert load_yaml(TEMPLATE)["Outputs"]["DashboardName"]["Value"] == {
        "Fn::GetAtt": ["Monitoring", "Outputs.DashboardName"]}
    dashboard = load_yaml(ROOT / "templates/monitoring.yaml")["Resources"]["Dashboard"]["Properties"]
    assert dashboard["DashboardName"] == {"Ref": "ParentStackName"}  # the stack's own name, as before
