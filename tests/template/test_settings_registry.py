"""template.yaml against billops.settings.registry, the one list of BILLOPS_* variables and where a deployed
stack's value comes from: every variable the template gives a function is in the registry, with the value the
registry says (the resource, the parameter, the template's own value), and every variable the registry says the
template gives is given to some function. The function models (billops.settings.functions) name only registered
variables, so a variable cannot be read under one name and set under another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from billops.settings.functions import FUNCTION_SETTINGS
from billops.settings.registry import from_template, variables
from billops_local.template_resources import load_yaml

pytestmark = pytest.mark.template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _function_environments() -> dict[str, dict[str, Any]]:
    template = load_yaml(TEMPLATE)
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    return {logical_id: {**shared, **(((resource.get("Properties") or {}).get("Environment") or {})
                                      .get("Variables") or {})}
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"}


def test_every_variable_the_template_sets_is_registered_with_its_source():
    wrong = []
    for function, environment in _function_environments().items():
        for name, value in environment.items():
            if not name.startswith("BILLOPS_"):
                continue
            entry = variables().get(name)
            if entry is None:
                wrong.append(f"{function}: {name} is not in billops.settings.registry")
            elif not from_template(name):
                wrong.append(f"{function}: {name} is registered as {entry.source!r}, yet the template sets it")
            elif value != entry.template_value() and (entry.origin or "") not in json.dumps(value):
                # A conditional (!If) value must still name the registered resource or parameter.
                wrong.append(f"{function}: {name} is {value!r}, the registry says {entry.template_value()!r}")
    assert not wrong, "\n".join(wrong)


def test_every_variable_the_registry_gives_a_template_source_is_set_on_a_function():
    given = {name for environment in _function_environments().values() for name in environment}
    missing = sorted(name for name in variables() if from_template(name) and name not in given)
    assert not missing, f"registered as coming from the template, but no function has them: {missing}"


def test_the_function_models_cover_the_template_functions_and_read_only_registered_variables():
    assert set(FUNCTION_SETTINGS) <= set(_function_environments())
    unregistered = {f"{function}: {name}" for function, model in FUNCTION_SETTINGS.items()
                    for name in model.variables() if name not in variables()}
    assert not unregistered, sorted(unregistered)


def test_every_registered_output_holds_its_resource():
    """The CLI's --stack target reads a resource's name or URL from these outputs (billops_cli.targets)."""
    outputs = load_yaml(TEMPLATE)["Outputs"]
    wrong = {entry.output: (outputs.get(entry.output) or {}).get("Value") for entry in variables().values()
             if entry.output and entry.resource
             and (outputs.get(entry.output) or {}).get("Value") != {"Ref": entry.resource}}
    assert not wrong, wrong
