"""template.yaml and its nested templates (templates/*.yaml): every part is found, linted, validated, scanned and
seen by the least-privilege checks, and each nested stack gets what it declares from the parent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from billops_local.template_resources import load_template, load_yaml
from sam_transform import (
    ROOT,
    TEMPLATE,
    flattened_template,
    main,
    nested_locations,
    output_name,
    template_parts,
    transform_template,
)

pytestmark = pytest.mark.template

VENV_BIN = Path(sys.executable).parent
NESTED = {"EgressNetwork": "templates/egress-network.yaml", "Monitoring": "templates/monitoring.yaml"}


@pytest.fixture(scope="module")
def parts() -> dict[str, Path]:
    return template_parts()


def test_every_part_is_found_and_lives_under_templates(parts: dict[str, Path]) -> None:
    root = load_yaml(TEMPLATE)
    locations = nested_locations(root)
    assert {name: locations[name] for name in NESTED} == NESTED
    assert set(parts) == {"template.yaml", *locations.values()}
    for name, path in parts.items():
        assert path.is_file(), name
        # make security lints `templates/*.yaml`: a nested template anywhere else would go unlinted.
        assert name == "template.yaml" or re.fullmatch(r"templates/[^/]+\.yaml", name), name


def test_make_security_lints_and_scans_every_part() -> None:
    security = re.search(r"^security:.*?(?=^\S)", (ROOT / "Makefile").read_text(encoding="utf-8"),
                         re.MULTILINE | re.DOTALL).group(0)
    assert re.search(r"cfn-lint template\.yaml templates/\*\.yaml", security)
    assert "tests/template/sam_transform.py $(SECURITY_OUT)/transformed" in security
    assert re.search(r"checkov --directory \$\(SECURITY_OUT\)/transformed --framework cloudformation", security)
    assert "templates/monitoring/generate.py --check" in security


def test_the_scan_input_holds_one_cloudformation_document_per_part(tmp_path: Path, parts: dict[str, Path]) -> None:
    (tmp_path / "stale.json").write_text("{}", encoding="utf-8")  # a part that no longer exists is not scanned
    assert main(["sam_transform.py", str(tmp_path)]) == 0
    written = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in tmp_path.glob("*.json")}
    assert set(written) == {output_name(name) for name in parts}
    for document in written.values():
        assert document["Resources"]
        assert not {r["Type"] for r in document["Resources"].values()} & {
            "AWS::Serverless::Function", "AWS::Serverless::Application", "AWS::Serverless::HttpApi"}


@pytest.mark.parametrize("part", sorted(set(template_parts()) - {"template.yaml"}))
def test_every_nested_template_passes_cfn_lint_and_sam_validate_lint(part: str) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "AWS_DEFAULT_REGION": "us-east-1",
           "SAM_CLI_TELEMETRY": "0"}
    lint = subprocess.run([str(VENV_BIN / "cfn-lint"), str(ROOT / part)], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    validate = subprocess.run([str(VENV_BIN / "sam"), "validate", "--lint", "--template-file", str(ROOT / part)],
                              capture_output=True, text=True, timeout=300, env=env, check=False)
    assert validate.returncode == 0 and "is a valid SAM Template" in validate.stdout + validate.stderr, \
        validate.stdout + validate.stderr


def test_each_nested_stack_gets_every_parameter_it_needs_and_none_it_does_not_declare() -> None:
    root = load_yaml(TEMPLATE)
    for stack_id, location in nested_locations(root).items():
        declared = load_yaml(ROOT / location).get("Parameters") or {}
        passed = root["Resources"][stack_id]["Properties"].get("Parameters") or {}
        assert set(passed) <= set(declared), f"{stack_id}: passes undeclared {set(passed) - set(declared)}"
        required = {name for name, declaration in declared.items() if "Default" not in declaration}
        assert required <= set(passed), f"{stack_id}: CloudFormation would refuse it without {required - set(passed)}"


def test_the_monitoring_stack_receives_what_each_parameter_is_named_after() -> None:
    """The nested alarms name the parent's resources through parameters of the same name (a queue's name:
    <Queue>Name): a swapped pair would alarm on the wrong function."""
    passed = load_yaml(TEMPLATE)["Resources"]["Monitoring"]["Properties"]["Parameters"]
    for name, value in passed.items():
        if name == "ParentStackName":
            assert value == {"Ref": "AWS::StackName"}
        elif name.endswith("QueueName"):
            assert value == {"Fn::GetAtt": [name.removesuffix("Name"), "QueueName"]}, name
        else:
            assert value == {"Ref": name}, name


def test_the_flattened_view_holds_every_resource_of_every_part(parts: dict[str, Path]) -> None:
    """What the least-privilege checks and iam_check read: nothing of a nested stack is left out."""
    flattened = flattened_template()
    expected = set(transform_template(TEMPLATE)["Resources"])
    for name, path in parts.items():
        if name != "template.yaml":
            expected |= set(transform_template(path)["Resources"])
    assert set(flattened["Resources"]) == expected
    # The nested stacks' own conditions come along, under the condition of the stack itself.
    assert flattened["Conditions"]["EgressNetworkAllocatesItsOwnEip"] == {"Fn::And": [
        {"Condition": "HasFixedEgressIp"}, {"Fn::Equals": [{"Ref": "WorkerEgressEipAllocationId"}, ""]}]}
    assert flattened["Resources"]["WorkerVpc"]["Condition"] == "HasFixedEgressIp"
    assert "Condition" not in flattened["Resources"]["WebhookReceiverErrorsAlarm"]


@pytest.mark.parametrize("egress", ["true", "false"])
def test_the_local_stack_reads_the_template_with_the_network_on_and_off(egress: str) -> None:
    """The local stack creates its tables, queues, secrets, keys and functions from template.yaml; the nested
    stacks (alarms, the VPC) are AWS only and are left to CloudFormation."""
    template = load_template(parameter_overrides={"WorkerFixedEgressIp": egress})
    assert set(template.functions) == {name for name, r in load_yaml(TEMPLATE)["Resources"].items()
                                       if r["Type"] == "AWS::Serverless::Function"}
    assert {"EventsTable", "SubscriptionsTable", "OperationsTable", "ApiKeysTable", "DeliveryLogTable"} <= set(
        template.tables)
    assert set(template.kms_keys) == {"StorageKey", "BillopsKey"}
    assert {route.route_key for route in template.http_routes} >= {"POST /webhooks/ccbill", "ANY /v1/{proxy+}"}


def _types(document: dict[str, Any]) -> set[str]:
    return {resource["Type"] for resource in document["Resources"].values()}


def test_the_application_stays_in_template_yaml_and_the_rest_moved_out() -> None:
    """Issue 13: API, layer, functions, tables, queues, keys and bus in template.yaml; alarms, dashboard and the
    network in their nested stacks."""
    root = _types(load_yaml(TEMPLATE))
    assert {"AWS::Serverless::HttpApi", "AWS::Serverless::LayerVersion", "AWS::Serverless::Function",
            "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::KMS::Key", "AWS::Events::EventBus"} <= root
    assert not {t for t in root if t.startswith("AWS::EC2::")}
    assert not root & {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"}
    assert _types(load_yaml(ROOT / NESTED["Monitoring"])) == {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"}
    assert "AWS::EC2::NatGateway" in _types(load_yaml(ROOT / NESTED["EgressNetwork"]))
