"""template.yaml and samconfig.toml: sam validate --lint, sam build (no Docker, arm64 layer), and the rules the
template must keep (encryption, backups, logs, alarms, least privilege, no token in access logs).

`sam build` needs PyPI (it downloads the layer's arm64 wheels); it runs once per session.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from billops_local.template_resources import load_yaml

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
VENV_BIN = Path(sys.executable).parent
SAM = VENV_BIN / "sam"
ELF_MACHINE_AARCH64 = 183


def _sam_environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") or key == "AWS_CA_BUNDLE"
    }
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # python3.11 for the pip workflow
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "SAM_CLI_TELEMETRY": "0",
        }
    )
    return env


def _run_sam(*arguments: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SAM), *arguments],
        cwd=cwd,
        env=_sam_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return template["Resources"]


@pytest.fixture(scope="session")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation that the SAM transform makes of the template (roles with their expanded policies)."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    document = copy.deepcopy(template)
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


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of the template into a temporary directory, once per session (no container, no cache)."""
    work = tmp_path_factory.mktemp("sam-build")
    build_dir = work / "build"
    result = _run_sam(
        "build",
        "--template-file", str(TEMPLATE),
        "--build-dir", str(build_dir),
        "--cache-dir", str(work / "cache"),
        "--no-cached",
        "--parallel",
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}\n{result.stderr}"
    return build_dir


def _functions(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement") or []
    return statements if isinstance(statements, list) else [statements]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action") or []
    return [actions] if isinstance(actions, str) else list(actions)


# ----------------------------------------------------------------------------------------------------------------
# sam validate --lint and sam build
# ----------------------------------------------------------------------------------------------------------------


def test_sam_validate_lint_is_clean() -> None:
    result = _run_sam("validate", "--lint", "--template-file", str(TEMPLATE), timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is a valid SAM Template" in output


def test_sam_build_succeeds_and_packages_the_layer_for_arm64(sam_build: Path) -> None:
    assert (sam_build / "template.yaml").is_file()
    layer = sam_build / "BillopsLayer" / "python"
    assert (layer / "billops" / "__init__.py").is_file(), "the billops package is not in the built layer"
    assert (layer / "billops" / "settings.py").is_file()
    for package in ("aws_lambda_powertools", "pydantic", "pydantic_core", "requests"):
        assert (layer / package).is_dir(), f"{package} is missing from the built layer"
    extensions = list((layer / "pydantic_core").glob("_pydantic_core*.so"))
    assert extensions, "pydantic_core has no compiled extension in the layer"
    for extension in extensions:
        header = extension.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", f"{extension.name} is not an ELF shared object"
        machine = int.from_bytes(header[18:20], "little")
        assert machine == ELF_MACHINE_AARCH64, f"{extension.name} is built for ELF machine {machine}, not aarch64"
    for name in ("WebhookReceiverFunction", "SubscriptionProjectorFunction"):
        assert (sam_build / name).is_dir()


def test_built_template_points_at_built_artifacts(sam_build: Path) -> None:
    built = load_yaml(sam_build / "template.yaml")["Resources"]
    assert built["BillopsLayer"]["Properties"]["ContentUri"] == "BillopsLayer"
    assert built["WebhookReceiverFunction"]["Properties"]["CodeUri"] == "WebhookReceiverFunction"
    assert built["SubscriptionProjectorFunction"]["Properties"]["CodeUri"] == "SubscriptionProjectorFunction"


# ----------------------------------------------------------------------------------------------------------------
# Rules of the template
# ----------------------------------------------------------------------------------------------------------------


def test_every_table_has_point_in_time_recovery_and_encryption(resources: dict[str, dict[str, Any]]) -> None:
    tables = {name: r for name, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {"EventsTable", "SubscriptionsTable"}
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert properties["BillingMode"] == "PAY_PER_REQUEST", name
        assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}, name


def test_tables_have_the_documented_keys_indexes_and_stream(resources: dict[str, dict[str, Any]]) -> None:
    events = resources["EventsTable"]["Properties"]
    assert events["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    (by_day,) = events["GlobalSecondaryIndexes"]
    assert by_day["IndexName"] == "by_received_day"
    assert by_day["KeySchema"] == [
        {"AttributeName": "received_day", "KeyType": "HASH"},
        {"AttributeName": "received_at", "KeyType": "RANGE"},
    ]
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    subscriptions = resources["SubscriptionsTable"]["Properties"]
    assert subscriptions["KeySchema"] == [{"AttributeName": "subscription_id", "KeyType": "HASH"}]
    (by_status,) = subscriptions["GlobalSecondaryIndexes"]
    assert by_status["IndexName"] == "by_status"
    assert [k["AttributeName"] for k in by_status["KeySchema"]] == ["status", "updated_at"]


def test_every_function_logs_to_its_own_log_group_with_retention(resources: dict[str, dict[str, Any]]) -> None:
    functions = _functions(resources)
    assert set(functions) == {"WebhookReceiverFunction", "SubscriptionProjectorFunction"}
    for name, function in functions.items():
        group_id = _ref(function["Properties"]["LoggingConfig"]["LogGroup"])
        assert group_id in resources, f"{name}: LoggingConfig.LogGroup is not a log group of the template"
        group = resources[group_id]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        function_name = function["Properties"]["FunctionName"]["Fn::Sub"]
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/{function_name}"}


def test_api_access_log_group_has_retention(resources: dict[str, dict[str, Any]]) -> None:
    destination = resources["HttpApi"]["Properties"]["AccessLogSettings"]["DestinationArn"]
    group = resources[destination["Fn::GetAtt"][0]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_alarm(resources: dict[str, dict[str, Any]], metric: str) -> None:
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    for name in _functions(resources):
        matching = [
            alarm for alarm in alarms
            if alarm["Namespace"] == "AWS/Lambda" and alarm["MetricName"] == metric
            and {"Name": "FunctionName", "Value": {"Ref": name}} in alarm["Dimensions"]
        ]
        assert matching, f"{name} has no {metric} alarm"
        assert all(alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] for alarm in matching)


def test_operational_alarms_exist(resources: dict[str, dict[str, Any]]) -> None:
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    api = alarms["HttpApi5xxAlarm"]
    assert (api["Namespace"], api["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert api["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    dlq = alarms["ProjectorDeadLetterQueueAlarm"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarms["SubscriptionProjectorIteratorAgeAlarm"]["MetricName"] == "IteratorAge"
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def test_no_iam_statement_has_a_wildcard_action(transformed: dict[str, Any]) -> None:
    offenders = []
    for name, resource in transformed["Resources"].items():
        properties = resource.get("Properties") or {}
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in properties.get("Policies") or []]
            documents.append(properties.get("AssumeRolePolicyDocument") or {})
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [properties["PolicyDocument"]]
        for document in documents:
            for statement in _statements(document):
                offenders += [(name, action) for action in _actions(statement) if "*" in action]
                assert "NotAction" not in statement, f"{name} uses NotAction"
    assert not offenders, f"wildcard actions: {offenders}"


def test_webhook_receiver_may_only_put_items_into_the_events_table(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["WebhookReceiverFunctionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    granted = [
        (action, json.dumps(statement["Resource"], sort_keys=True))
        for policy in role["Policies"]
        for statement in _statements(policy["PolicyDocument"])
        for action in _actions(statement)
    ]
    dynamodb = [(action, resource) for action, resource in granted if action.startswith("dynamodb:")]
    assert dynamodb == [("dynamodb:PutItem", json.dumps({"Fn::GetAtt": ["EventsTable", "Arn"]}))]
    others = sorted(action for action, _ in granted if not action.startswith("dynamodb:"))
    assert others == ["secretsmanager:GetSecretValue"]


def test_projector_permissions_are_exactly_its_reads_writes_and_dead_letters(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["SubscriptionProjectorFunctionRole"]["Properties"]
    actions = sorted(
        action
        for policy in role["Policies"]
        for statement in _statements(policy["PolicyDocument"])
        for action in _actions(statement)
    )
    assert actions == sorted([
        "dynamodb:GetItem", "dynamodb:Query",  # EventsTable
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",  # SubscriptionsTable
        "sqs:SendMessage",
    ])


def test_projector_reads_the_events_stream_like_the_architecture_says(resources: dict[str, dict[str, Any]]) -> None:
    event = resources["SubscriptionProjectorFunction"]["Properties"]["Events"]["EventsStream"]
    assert event["Type"] == "DynamoDB"
    properties = event["Properties"]
    assert properties["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["BatchSize"] == 25
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert isinstance(properties["MaximumRetryAttempts"], int)
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ProjectorDeadLetterQueue", "Arn"]
    }
    assert resources["ProjectorDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True


SAFE_ACCESS_LOG_VARIABLES = {
    "$context.requestId", "$context.extendedRequestId", "$context.requestTime", "$context.requestTimeEpoch",
    "$context.routeKey", "$context.status", "$context.identity.sourceIp", "$context.responseLength",
    "$context.responseLatency", "$context.integrationStatus", "$context.integrationErrorMessage",
    "$context.integrationLatency", "$context.error.message", "$context.error.responseType", "$context.httpMethod",
    "$context.protocol", "$context.apiId", "$context.stage", "$context.dataProcessed",
}


def test_access_log_format_cannot_contain_the_query_string(resources: dict[str, dict[str, Any]]) -> None:
    settings = resources["HttpApi"]["Properties"]["AccessLogSettings"]
    log_format = settings["Format"]
    json.loads(log_format)  # one JSON object per request
    variables = set(re.findall(r"\$context\.[A-Za-z0-9_.]+", log_format))
    assert "$context.routeKey" in variables
    assert variables <= SAFE_ACCESS_LOG_VARIABLES, f"not known to be free of the query: {variables - SAFE_ACCESS_LOG_VARIABLES}"
    for forbidden in ("$context.path", "querystring", "$request", "$input", "token"):
        assert forbidden.lower() not in log_format.lower()


def test_http_api_route_throttling_and_payload_version(resources: dict[str, dict[str, Any]]) -> None:
    api = resources["HttpApi"]["Properties"]
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    event = resources["WebhookReceiverFunction"]["Properties"]["Events"]["CcbillWebhook"]
    assert event["Type"] == "HttpApi"
    assert (event["Properties"]["Method"], event["Properties"]["Path"]) == ("POST", "/webhooks/ccbill")
    assert event["Properties"]["PayloadFormatVersion"] == "2.0"


def test_functions_share_runtime_architecture_layer_and_environment(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.11"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Layers"] == [{"Ref": "BillopsLayer"}]
    variables = function_globals["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "billops"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Billops"
    assert variables["BILLOPS_ENV"] == {"Ref": "Environment"}
    assert variables["BILLOPS_EVENTS_TABLE"] == {"Ref": "EventsTable"}
    assert variables["BILLOPS_SUBSCRIPTIONS_TABLE"] == {"Ref": "SubscriptionsTable"}
    layer = template["Resources"]["BillopsLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.11", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    receiver = template["Resources"]["WebhookReceiverFunction"]["Properties"]["Environment"]["Variables"]
    assert receiver["BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"] == {"Ref": "WebhookTokenSecret"}
    assert "BILLOPS_WEBHOOK_TOKEN" not in receiver, "the token must come from Secrets Manager in AWS"


def test_webhook_token_secret_is_generated(resources: dict[str, dict[str, Any]]) -> None:
    generate = resources["WebhookTokenSecret"]["Properties"]["GenerateSecretString"]
    assert generate == {"PasswordLength": 40, "ExcludePunctuation": True}


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["WebhookUrl"]["Value"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/webhooks/ccbill"
    }
    for name in ("WebhookTokenSecretArn", "EventsTableName", "SubscriptionsTableName", "ProjectorDeadLetterQueueUrl"):
        assert name in outputs


def test_samconfig_environments() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    for environment, stack in (("default", "billops-dev"), ("dev", "billops-dev"), ("prod", "billops-prod")):
        assert config[environment]["global"]["parameters"]["stack_name"] == stack
        deploy = config[environment]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        assert deploy["parameter_overrides"] == f"Environment={'prod' if stack.endswith('prod') else 'dev'}"
        assert config[environment]["validate"]["parameters"]["lint"] is True
        assert config[environment]["build"]["parameters"] == {"cached": True, "parallel": True}
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
