"""template.yaml and samconfig.toml: sam validate --lint, sam build (no Docker, arm64 layer), and the rules the
template must keep (encryption, backups, logs, alarms, least privilege, no token in access logs).

`sam build` needs PyPI (it downloads the layer's arm64 wheels); it runs once per session.
"""

from __future__ import annotations

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
from sam_transform import flattened_template, transform_template

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
VENV_BIN = Path(sys.executable).parent
SAM = VENV_BIN / "sam"
ELF_MACHINE_AARCH64 = 183
FUNCTIONS = {
    "WebhookReceiverFunction", "SubscriptionProjectorFunction", "OperationWorkerFunction",
    "OperationSchedulerFunction", "ReconciliationFunction", "UpgradePostbackFunction", "UpgradePageFunction",
    "MerchantApiFunction",
}
CCBILL_CONNECT_PLUS_READ_TIMEOUT = 5 + 40  # docs/ccbill-client.md: BILLOPS_CCBILL_CONNECT_TIMEOUT + READ_TIMEOUT
UPGRADE_KEY_CONTEXT = {"kms:EncryptionContext:billops:purpose": "ccbill-upgrade-enc"}
SUBSCRIBER_PII_CONTEXT = {"kms:EncryptionContext:billops:purpose": "subscriber-pii"}
UPGRADE_IDENTITY_CONTEXT = {"kms:EncryptionContext:billops:purpose": "upgrade-identity"}


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
def transformed() -> dict[str, Any]:
    """The CloudFormation that the SAM transform makes of the template (roles with their expanded policies)."""
    return transform_template(TEMPLATE)


@pytest.fixture(scope="session")
def deployed() -> dict[str, dict[str, Any]]:
    """The transformed template with its nested stacks' resources brought in, in its own terms (the alarms and the
    dashboard of templates/monitoring.yaml name the functions and queues as template.yaml does)."""
    return flattened_template(TEMPLATE)["Resources"]


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
    assert (layer / "billops" / "settings" / "__init__.py").is_file()
    for package in ("aws_lambda_powertools", "pydantic", "pydantic_core", "requests"):
        assert (layer / package).is_dir(), f"{package} is missing from the built layer"
    extensions = list((layer / "pydantic_core").glob("_pydantic_core*.so"))
    assert extensions, "pydantic_core has no compiled extension in the layer"
    for extension in extensions:
        header = extension.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", f"{extension.name} is not an ELF shared object"
        machine = int.from_bytes(header[18:20], "little")
        assert machine == ELF_MACHINE_AARCH64, f"{extension.name} is built for ELF machine {machine}, not aarch64"
    for name in FUNCTIONS:
        assert (sam_build / name).is_dir()


def test_the_built_layer_ships_bytecode_valid_whatever_the_timestamps(sam_build: Path) -> None:
    """Lambda cannot write __pycache__: the layer carries a .pyc for every module (issue 14), checked by hash never
    by timestamp (PEP 552 flags: bit 0 hash-based, bit 1 check_source off), so a cold start never compiles."""
    import importlib.util

    layer = sam_build / "BillopsLayer" / "python"
    sources = [path for path in layer.rglob("*.py") if "dist-info" not in str(path) and "/bin/" not in str(path)]
    assert len(sources) > 100
    missing = [path for path in sources if not Path(importlib.util.cache_from_source(str(path))).is_file()]
    assert not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:3]}"
    for path in (layer / "billops" / "settings" / "base.py", layer / "pydantic" / "main.py"):
        flags = int.from_bytes(Path(importlib.util.cache_from_source(str(path))).read_bytes()[4:8], "little")
        assert flags == 0b01, f"{path.name}: bytecode flags {flags:#b}, not unchecked-hash"


def test_built_template_points_at_built_artifacts(sam_build: Path) -> None:
    built = load_yaml(sam_build / "template.yaml")["Resources"]
    assert built["BillopsLayer"]["Properties"]["ContentUri"] == "BillopsLayer"
    for name in FUNCTIONS:
        assert built[name]["Properties"]["CodeUri"] == name
        handler_module = built[name]["Properties"]["Handler"].rpartition(".")[0]
        assert (sam_build / name / f"{handler_module}.py").is_file(), f"{name}: the handler is not in the build"
    # The optional analytics export (AnalyticsExport) is built beside them, as a nested template.
    assert built["AnalyticsExportStack"]["Properties"]["Location"] == "AnalyticsExportStack/template.yaml"
    assert "DeliveryStream" in load_yaml(sam_build / "AnalyticsExportStack" / "template.yaml")["Resources"]


# ----------------------------------------------------------------------------------------------------------------
# Rules of the template
# ----------------------------------------------------------------------------------------------------------------


def test_every_table_has_point_in_time_recovery_and_encryption(resources: dict[str, dict[str, Any]]) -> None:
    tables = {name: r for name, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) >= {"EventsTable", "SubscriptionsTable", "OperationsTable", "ApiKeysTable"}
    for name, table in tables.items():
        assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain"), name
        properties = table["Properties"]
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert properties["SSESpecification"] == {
            "SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Fn::GetAtt": ["StorageKey", "Arn"]}}, name
        assert properties["BillingMode"] == "PAY_PER_REQUEST", name
        assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}, name


def test_tables_have_the_documented_keys_indexes_and_stream(resources: dict[str, dict[str, Any]]) -> None:
    events = resources["EventsTable"]["Properties"]
    assert events["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    # No index: the receiver's PutItem is the whole write of a webhook (an index write would be a second one, and a
    # lagging index would throttle the intake itself).
    assert "GlobalSecondaryIndexes" not in events
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    _assert_index_attributes_are_strings(events)
    log = resources["DeliveryLogTable"]["Properties"]
    assert log["KeySchema"] == [{"AttributeName": "received_day", "KeyType": "HASH"},
                                {"AttributeName": "received_key", "KeyType": "RANGE"}]
    assert "GlobalSecondaryIndexes" not in log
    assert log["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    _assert_index_attributes_are_strings(log)
    subscriptions = resources["SubscriptionsTable"]["Properties"]
    assert subscriptions["KeySchema"] == [{"AttributeName": "subscription_id", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in subscriptions["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_status_created", "by_original_subscription", "by_customer_reference"}
    # Keyed by created_at, which no fold changes: a renewal writes nothing here (issue 14). Never ALL.
    assert [k["AttributeName"] for k in indexes["by_status_created"]["KeySchema"]] == ["status", "created_at"]
    assert indexes["by_status_created"]["Projection"] == {"ProjectionType": "INCLUDE",
                                                          "NonKeyAttributes": ["client_subacc", "ccbill_view"]}
    assert [k["AttributeName"] for k in indexes["by_original_subscription"]["KeySchema"]] == [
        "original_subscription_id", "signed_up_at"]
    # Keyed by created_at, which no fold changes, and carrying only the list's filters: a fold writes nothing here
    # unless the status, subaccount or reference itself changed.
    assert [k["AttributeName"] for k in indexes["by_customer_reference"]["KeySchema"]] == [
        "customer_reference", "created_at"]
    assert indexes["by_customer_reference"]["Projection"] == {"ProjectionType": "INCLUDE",
                                                              "NonKeyAttributes": ["status", "client_subacc"]}
    _assert_index_attributes_are_strings(subscriptions)
    # The history and personal data beside the bounded state item (issue 14): no index, no TTL (kept as long as
    # the subscription), encrypted and restorable like the others.
    history = resources["SubscriptionHistoryTable"]["Properties"]
    assert history["KeySchema"] == [{"AttributeName": "subscription_id", "KeyType": "HASH"},
                                    {"AttributeName": "position", "KeyType": "RANGE"}]
    assert "GlobalSecondaryIndexes" not in history and "TimeToLiveSpecification" not in history
    assert history["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    _assert_index_attributes_are_strings(history)


def _assert_index_attributes_are_strings(properties: dict[str, Any]) -> None:
    declared = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    keys = {k["AttributeName"] for k in properties["KeySchema"]}
    for index in properties.get("GlobalSecondaryIndexes") or []:
        keys |= {k["AttributeName"] for k in index["KeySchema"]}
    assert set(declared) == keys, "AttributeDefinitions must declare exactly the key attributes"
    assert set(declared.values()) == {"S"}


def test_operations_table_has_the_documented_key_and_indexes(resources: dict[str, dict[str, Any]]) -> None:
    operations = resources["OperationsTable"]["Properties"]
    assert operations["KeySchema"] == [{"AttributeName": "operation_id", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in operations["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_subscription", "by_due", "by_status"}
    keys = {name: [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] for name, index in indexes.items()}
    assert keys == {
        "by_subscription": [("subscription_id", "HASH"), ("created_at", "RANGE")],
        "by_due": [("waiting", "HASH"), ("due_at", "RANGE")],
        "by_status": [("status", "HASH"), ("updated_at", "RANGE")],
    }
    # by_due is sparse and narrow: never ALL (it is read every minute; the scheduler reads each due record itself).
    assert indexes["by_due"]["Projection"]["ProjectionType"] in ("KEYS_ONLY", "INCLUDE")
    assert "StreamSpecification" not in operations
    _assert_index_attributes_are_strings(operations)


def test_every_function_logs_to_its_own_log_group_with_retention(resources: dict[str, dict[str, Any]]) -> None:
    functions = _functions(resources)
    assert set(functions) == FUNCTIONS
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
def test_every_function_has_an_alarm(resources: dict[str, dict[str, Any]], deployed: dict[str, dict[str, Any]],
                                     metric: str) -> None:
    alarms = [r["Properties"] for r in deployed.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    for name in _functions(resources):
        matching = [
            alarm for alarm in alarms
            if alarm["Namespace"] == "AWS/Lambda" and alarm["MetricName"] == metric
            and {"Name": "FunctionName", "Value": {"Ref": name}} in alarm["Dimensions"]
        ]
        assert matching, f"{name} has no {metric} alarm"
        assert all(alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] for alarm in matching)


def test_operational_alarms_exist(resources: dict[str, dict[str, Any]], deployed: dict[str, dict[str, Any]]) -> None:
    alarms = {name: r["Properties"] for name, r in deployed.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    api = alarms["HttpApi5xxAlarm"]
    assert (api["Namespace"], api["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert api["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    dlq = alarms["ProjectorDeadLetterQueueAlarm"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarms["SubscriptionProjectorIteratorAgeAlarm"]["MetricName"] == "IteratorAge"
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


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
    events_table = json.dumps({"Fn::GetAtt": ["EventsTable", "Arn"]})
    # PutItem; GetItem only to find a delivery stored under its key of before keyed hashes (issue 11).
    assert dynamodb == [("dynamodb:PutItem", events_table), ("dynamodb:GetItem", events_table)]
    others = sorted((action, resource) for action, resource in granted if not action.startswith(("dynamodb:", "kms:")))
    assert [action for action, _ in others] == ["secretsmanager:GetSecretValue"] * 2
    assert all("WebhookTokenSecret" in resource or "DeliveryKeySecret" in resource for _, resource in others)
    assert any("DeliveryKeySecret" in resource for _, resource in others)


def test_projector_permissions_are_exactly_its_reads_writes_and_dead_letters(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["SubscriptionProjectorFunctionRole"]["Properties"]
    actions = sorted(
        action
        for policy in role["Policies"]
        for statement in _statements(policy["PolicyDocument"])
        for action in _actions(statement)
        if not action.startswith("kms:")  # StorageKey, through the services (test_least_privilege.py)
    )
    assert actions == sorted([
        # No events table: the stream brings the items (make check-iam saw no read).
        # SubscriptionsTable: no Query (an upgrade's sale arrives as the delivery itself; finding it by the
        # by_original_subscription index is the reconciliation job's, and make check-iam saw none here); a stream
        # batch's records read at once (BatchGetItem)
        "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem",
        "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem",  # OperationsTable: settles upgrades
        "sqs:SendMessage",
        "dynamodb:BatchWriteItem",  # DeliveryLogTable and history entries: each batch's, written before the fold
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",  # SubscriptionHistoryTable (issue 14)
        "events:PutEvents",  # SubscriptionChanged, the chargeback-ratio events, DeliveryCounted
        # ReportsTable: the daily figures (a transaction of Update actions), the counted keys, the directory, the
        # chargeback-ratio alerts
        "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
    ])
    granted = _grants(transformed, "SubscriptionProjectorFunction")
    assert granted["dynamodb:BatchWriteItem"] == {_arn("DeliveryLogTable"), _arn("SubscriptionHistoryTable")}
    assert granted["dynamodb:UpdateItem"] >= {_arn("OperationsTable")}
    assert _arn("OperationsTable") not in granted["dynamodb:PutItem"]
    assert granted["dynamodb:BatchGetItem"] == {_arn("ReportsTable"), _arn("SubscriptionsTable")}
    assert granted["events:PutEvents"] == {_bus_arn()}


def test_the_projectors_parallelization_is_a_parameter_from_one_to_ten_one_by_default(
        template: dict[str, Any]) -> None:
    """Lambda's range; one batch per shard at a time unless the operator raises it (docs/scale.md sizes it)."""
    parameter = template["Parameters"]["ProjectorParallelizationFactor"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (
        "Number", 1, 1, 10)


def test_the_local_stack_refuses_a_parallelization_it_does_not_emulate() -> None:
    from billops_local.template_resources import TemplateError, load_template

    load_template(TEMPLATE, parameter_overrides={"ProjectorParallelizationFactor": 1})
    with pytest.raises(TemplateError, match="ParallelizationFactor"):
        load_template(TEMPLATE, parameter_overrides={"ProjectorParallelizationFactor": 4})


def test_projector_reads_the_events_stream_like_the_architecture_says(resources: dict[str, dict[str, Any]]) -> None:
    event = resources["SubscriptionProjectorFunction"]["Properties"]["Events"]["EventsStream"]
    assert event["Type"] == "DynamoDB"
    properties = event["Properties"]
    assert properties["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["BatchSize"] == 25
    assert properties["ParallelizationFactor"] == {"Ref": "ProjectorParallelizationFactor"}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert isinstance(properties["MaximumRetryAttempts"], int)
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ProjectorDeadLetterQueue", "Arn"]
    }
    assert resources["ProjectorDeadLetterQueue"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::GetAtt": ["StorageKey", "Arn"]}


# ----------------------------------------------------------------------------------------------------------------
# Operations: functions, permissions, queue, key, bus
# ----------------------------------------------------------------------------------------------------------------


def _arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def _sub(text: str) -> str:
    return json.dumps({"Fn::Sub": text}, sort_keys=True)


def _bus_arn() -> str:
    return json.dumps({"Fn::Sub": [
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${eventBusName}",
        {"eventBusName": {"Ref": "DomainEventBus"}},
    ]}, sort_keys=True)


def _secret_arn(logical_id: str) -> str:
    return json.dumps({"Fn::Sub": ["${secretArn}", {"secretArn": {"Ref": logical_id}}]}, sort_keys=True)


def _grants(transformed: dict[str, Any], function: str, *, kms: bool = False) -> dict[str, set[str]]:
    """action -> the resources (as sorted JSON) the function's role grants it on. KMS actions (StorageKey, used
    through DynamoDB, SQS and Secrets Manager) only with kms=True: test_least_privilege.py checks them."""
    role = transformed["Resources"][f"{function}Role"]["Properties"]
    granted: dict[str, set[str]] = {}
    for policy in role["Policies"]:
        if "Fn::If" in policy:  # the worker's deny outside the fixed-egress VPC (its own test)
            continue
        for statement in _statements(policy["PolicyDocument"]):
            assert statement["Effect"] == "Allow"
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in _actions(statement):
                if action.startswith("kms:") and not kms:
                    continue
                granted.setdefault(action, set()).update(json.dumps(r, sort_keys=True) for r in resources)
    return granted


def test_every_function_role_scopes_every_statement_to_named_resources(transformed: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        for action, granted in _grants(transformed, function).items():
            assert '"*"' not in granted, f"{function}: {action} on every resource"


def test_operation_worker_permissions_are_exactly_what_it_does(transformed: dict[str, Any]) -> None:
    granted = _grants(transformed, "OperationWorkerFunction")
    assert set(granted) == {
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
        "sqs:SendMessage", "events:PutEvents", "secretsmanager:GetSecretValue",
    }
    operations, subscriptions = _arn("OperationsTable"), _arn("SubscriptionsTable")
    assert granted["dynamodb:UpdateItem"] == {operations}
    assert granted["dynamodb:PutItem"] == granted["dynamodb:GetItem"] == {operations, subscriptions}
    # No access to the events table: webhook evidence reaches operations through the projector. Query only on the
    # indexes (no code queries a table itself).
    assert granted["dynamodb:Query"] == {_sub("${OperationsTable.Arn}/index/*"),
                                         _sub("${SubscriptionsTable.Arn}/index/*"), _arn("SubscriptionHistoryTable")}
    assert granted["sqs:SendMessage"] == {_arn("OperationsQueue"), _arn("OperationsDeadLetterQueue")}
    assert granted["events:PutEvents"] == {_bus_arn()}
    assert granted["secretsmanager:GetSecretValue"] == {_secret_arn("CCBillCredentialsSecret")}
    # The SQS event source: Lambda's managed policy for receiving and deleting; SAM's VPC policy (VpcConfig), denied
    # back by an inline policy unless the worker is in the fixed-egress VPC; nothing else managed.
    role = transformed["Resources"]["OperationWorkerFunctionRole"]["Properties"]
    assert sorted(role["ManagedPolicyArns"]) == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    ]
    (deny_outside_the_vpc,) = [policy for policy in role["Policies"] if "Fn::If" in policy]
    condition, when_on, when_off = deny_outside_the_vpc["Fn::If"]
    assert (condition, when_on) == ("HasFixedEgressIp", {"Ref": "AWS::NoValue"})
    (deny,) = when_off["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and "ec2:CreateNetworkInterface" in deny["Action"]


def test_operation_scheduler_may_only_find_claim_and_enqueue(transformed: dict[str, Any]) -> None:
    granted = _grants(transformed, "OperationSchedulerFunction")
    assert granted == {
        "dynamodb:Query": {_sub("${OperationsTable.Arn}/index/by_due")},
        "dynamodb:UpdateItem": {_arn("OperationsTable")},
        "dynamodb:GetItem": {_arn("OperationsTable")},
        "sqs:SendMessage": {_arn("OperationsQueue")},
        # no events:PutEvents: the due records it moves produce no event, and events still pending on one are the
        # reconciliation job's to publish (scheduler.py moves with flush=False)
    }


def test_reconciliation_is_like_the_worker_without_the_dead_letter_queue(transformed: dict[str, Any]) -> None:
    worker = _grants(transformed, "OperationWorkerFunction")
    reconciler = _grants(transformed, "ReconciliationFunction")
    assert reconciler["sqs:SendMessage"] == {_arn("OperationsQueue")}
    assert {action: resources for action, resources in reconciler.items() if action != "sqs:SendMessage"} == {
        action: resources for action, resources in worker.items() if action != "sqs:SendMessage"}


def test_upgrade_postback_reads_the_token_and_settles_operations(transformed: dict[str, Any]) -> None:
    granted = _grants(transformed, "UpgradePostbackFunction")
    assert granted == {
        "dynamodb:GetItem": {_arn("OperationsTable")},
        "dynamodb:Query": {_sub("${OperationsTable.Arn}/index/*")},
        "dynamodb:UpdateItem": {_arn("OperationsTable")},
        "events:PutEvents": {_bus_arn()},
        "secretsmanager:GetSecretValue": {_secret_arn("WebhookTokenSecret")},
    }


def test_only_the_worker_reads_ccbill_credentials_or_may_decrypt(transformed: dict[str, Any],
                                                                 resources: dict[str, dict[str, Any]]) -> None:
    for function in FUNCTIONS:
        granted = _grants(transformed, function, kms=True)
        # A role may use only StorageKey (through the services); BillopsKey is granted by its key policy alone.
        kms_keys = {resource for action, keys in granted.items() if action.startswith("kms:") for resource in keys}
        assert kms_keys <= {_arn("StorageKey")}, f"{function}: {kms_keys}"
        if _secret_arn("CCBillCredentialsSecret") in granted.get("secretsmanager:GetSecretValue", set()):
            assert function in ("OperationWorkerFunction", "ReconciliationFunction")
    statements = resources["BillopsKey"]["Properties"]["KeyPolicy"]["Statement"]
    decrypting = [s for s in statements if "Fn::If" not in s and "kms:Decrypt" in _actions(s)
                  and "Fn::GetAtt" in s["Principal"]["AWS"]]
    assert decrypting == [{
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": {"Fn::GetAtt": [f"{function}Role", "Arn"]}},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": context},
    } for sid, function, context in (
        ("WorkerDecryptsTheUpgradeKey", "OperationWorkerFunction", UPGRADE_KEY_CONTEXT),
        ("ReconciliationDecryptsTheUpgradeKey", "ReconciliationFunction", UPGRADE_KEY_CONTEXT),  # ccbill check
        ("UpgradePageDecryptsTheUpgradeKey", "UpgradePageFunction", UPGRADE_KEY_CONTEXT),
        ("MerchantApiDecryptsTheUpgradeKey", "MerchantApiFunction", UPGRADE_KEY_CONTEXT),
        ("MerchantApiRevealsSubscriberData", "MerchantApiFunction", SUBSCRIBER_PII_CONTEXT),
        # An upgrade by username: the sealed username is opened for the call and the step-2 form only.
        ("MerchantApiOpensUpgradeUsernames", "MerchantApiFunction", UPGRADE_IDENTITY_CONTEXT),
        ("WorkerOpensUpgradeUsernames", "OperationWorkerFunction", UPGRADE_IDENTITY_CONTEXT),
        ("UpgradePageOpensUpgradeUsernames", "UpgradePageFunction", UPGRADE_IDENTITY_CONTEXT))]
    # The receiver makes data keys for subscribers' personal data and cannot decrypt them; the projector has no
    # statement at all (it copies ciphertexts); people read personal data through the PersonalDataReader policy.
    by_sid = {s["Sid"]: s for s in statements if "Sid" in s}
    assert by_sid["WebhookReceiverEncryptsSubscriberData"] == {
        "Sid": "WebhookReceiverEncryptsSubscriberData", "Effect": "Allow",
        "Principal": {"AWS": {"Fn::GetAtt": ["WebhookReceiverFunctionRole", "Arn"]}},
        "Action": "kms:GenerateDataKey", "Resource": "*", "Condition": {"StringEquals": SUBSCRIBER_PII_CONTEXT}}
    assert by_sid["MerchantApiSealsUpgradeUsernames"]["Action"] == "kms:Encrypt"
    assert by_sid["MerchantApiSealsUpgradeUsernames"]["Condition"] == {"StringEquals": UPGRADE_IDENTITY_CONTEXT}
    assert not [s for s in statements if "SubscriptionProjectorFunctionRole" in json.dumps(s)]
    # People: only the principals named in PersonalDataReaderPrincipals (none by default: the statement is absent).
    (named,) = [s["Fn::If"] for s in statements if "Fn::If" in s]
    condition, delegated, otherwise = named
    assert (condition, otherwise) == ("HasPersonalDataReaders", {"Ref": "AWS::NoValue"})
    assert (delegated["Action"], delegated["Condition"]) == (["kms:Decrypt", "kms:GenerateDataKey"], {
        "StringEquals": SUBSCRIBER_PII_CONTEXT, "ArnLike": {"aws:PrincipalArn": {"Ref": "PersonalDataReaderPrincipals"}}})
    replayer = resources["PersonalDataReplayer"]["Properties"]["PolicyDocument"]["Statement"]
    assert [(s["Action"], s["Condition"]) for s in replayer[:1]] == [
        ("kms:GenerateDataKey", {"StringEquals": SUBSCRIBER_PII_CONTEXT})]
    # and the delivery key, through Secrets Manager only, that secret only (issue 11: replays are keyed as received)
    assert [(s["Action"], s["Resource"]) for s in replayer[1:]] == [
        ("secretsmanager:GetSecretValue", {"Ref": "DeliveryKeySecret"}),
        ("kms:Decrypt", {"Fn::GetAtt": ["StorageKey", "Arn"]})]
    assert replayer[2]["Condition"]["StringEquals"]["kms:EncryptionContext:SecretARN"] == {"Ref": "DeliveryKeySecret"}
    reader = resources["PersonalDataReader"]["Properties"]["PolicyDocument"]["Statement"]
    assert reader == [{"Sid": "DecryptSubscriberPersonalData", "Effect": "Allow", "Action": "kms:Decrypt",
                       "Resource": {"Fn::GetAtt": ["BillopsKey", "Arn"]},
                       "Condition": {"StringEquals": SUBSCRIBER_PII_CONTEXT}}]


def test_billops_key_rotates_is_kept_and_is_administered_by_the_account(resources: dict[str, dict[str, Any]]) -> None:
    key = resources["BillopsKey"]
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = key["Properties"]
    assert properties["EnableKeyRotation"] is True
    statements = {s["Sid"]: s for s in properties["KeyPolicy"]["Statement"] if "Sid" in s}  # not the !If one
    root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    admin = statements["AccountAdministersTheKey"]
    assert admin["Principal"] == root
    assert {"kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:EnableKeyRotation"} <= set(_actions(admin))
    assert not {"kms:Decrypt", "kms:Encrypt", "kms:CreateGrant", "kms:ReEncryptFrom"} & set(_actions(admin))
    encrypt = statements["AccountEncryptsTheUpgradeKey"]
    assert (encrypt["Principal"], encrypt["Action"]) == (root, "kms:Encrypt")
    assert encrypt["Condition"] == {"StringEquals": UPGRADE_KEY_CONTEXT}
    alias = resources["BillopsKeyAlias"]["Properties"]
    assert alias == {"AliasName": {"Fn::Sub": "alias/billops-${Environment}"}, "TargetKeyId": {"Ref": "BillopsKey"}}


def test_operation_worker_trigger_timeout_and_concurrency(resources: dict[str, dict[str, Any]],
                                                          template: dict[str, Any]) -> None:
    worker = resources["OperationWorkerFunction"]["Properties"]
    assert worker["CodeUri"] == "functions/operation_worker/"
    assert worker["Handler"] == "operation_worker_handler.handler"
    assert worker["Timeout"] > CCBILL_CONNECT_PLUS_READ_TIMEOUT
    assert worker["ReservedConcurrentExecutions"] == {"Ref": "WorkerConcurrency"}
    concurrency = template["Parameters"]["WorkerConcurrency"]
    assert concurrency["Default"] == 2 and concurrency["MinValue"] >= 2  # SQS event sources take at least 2
    (event,) = worker["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["OperationsQueue", "Arn"]}
    # Every message of a batch must fit a full CCBill call in the invocation, or it is handed back unrun.
    assert event["Properties"]["BatchSize"] * CCBILL_CONNECT_PLUS_READ_TIMEOUT < worker["Timeout"]
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Lambda never throttles its own event source: the source is capped at the reserved concurrency.
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerConcurrency"}
    queue = resources["OperationsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]


def test_reconciliation_outlasts_its_ccbill_calls(resources: dict[str, dict[str, Any]]) -> None:
    for name in ("ReconciliationFunction",):
        assert resources[name]["Properties"]["Timeout"] > CCBILL_CONNECT_PLUS_READ_TIMEOUT


def test_operations_queue_is_fifo_with_a_fifo_dead_letter_queue(resources: dict[str, dict[str, Any]]) -> None:
    queue = resources["OperationsQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False  # senders give the idempotency key
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": ["StorageKey", "Arn"]}
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["OperationsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    dead = resources["OperationsDeadLetterQueue"]["Properties"]
    assert dead["FifoQueue"] is True
    assert dead["KmsMasterKeyId"] == {"Fn::GetAtt": ["StorageKey", "Arn"]}
    assert dead["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["MessageRetentionPeriod"] <= dead["MessageRetentionPeriod"]
    assert "QueueName" not in queue and "QueueName" not in dead


def test_operations_queue_alarms(resources: dict[str, dict[str, Any]], deployed: dict[str, dict[str, Any]]) -> None:
    alarms = {name: r["Properties"] for name, r in deployed.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    dead = alarms["OperationsDeadLetterQueueAlarm"]
    assert (dead["Namespace"], dead["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dead["Dimensions"] == [{"Name": "QueueName",
                                   "Value": {"Fn::GetAtt": ["OperationsDeadLetterQueue", "QueueName"]}}]
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    age = alarms["OperationsQueueAgeAlarm"]
    assert (age["Namespace"], age["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert age["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["OperationsQueue", "QueueName"]}}]
    assert age["ComparisonOperator"] == "GreaterThanThreshold"
    # Longer than a message that failed once waits (the visibility timeout), so one retry does not page anyone.
    assert age["Threshold"] > resources["OperationsQueue"]["Properties"]["VisibilityTimeout"]
    for alarm in (dead, age):
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_ccbill_circuit_breaker_is_alarmed_and_set_for_the_ccbill_callers(
        resources: dict[str, dict[str, Any]], deployed: dict[str, dict[str, Any]]) -> None:
    alarm = deployed["CCBillCallsPausedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Billops", "CCBillCallsPaused")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "billops"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    for name in ("OperationWorkerFunction", "ReconciliationFunction"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["BILLOPS_CCBILL_BREAKER_THRESHOLD"] == {"Ref": "CCBillBreakerThreshold"}
        # The breaker's item lives in the operations table, which every CCBill caller reads and updates.
        assert variables["BILLOPS_OPERATIONS_TABLE"] == {"Ref": "OperationsTable"}


def test_scheduled_functions_and_the_postback_route(resources: dict[str, dict[str, Any]]) -> None:
    expected = {
        "OperationSchedulerFunction": ("functions/operation_scheduler/", "operation_scheduler_handler.handler",
                                       "rate(1 minute)"),
        "ReconciliationFunction": ("functions/reconciliation/", "reconciliation_handler.handler",
                                   "rate(15 minutes)"),
    }
    for name, (code_uri, handler, rate) in expected.items():
        properties = resources[name]["Properties"]
        assert (properties["CodeUri"], properties["Handler"]) == (code_uri, handler)
        (event,) = properties["Events"].values()
        assert event["Type"] == "Schedule"
        assert event["Properties"]["Schedule"] == rate
        assert event["Properties"].get("State", "ENABLED") == "ENABLED"
        assert "ReservedConcurrentExecutions" not in properties
    postback = resources["UpgradePostbackFunction"]["Properties"]
    assert (postback["CodeUri"], postback["Handler"]) == ("functions/upgrade_postback/",
                                                          "upgrade_postback_handler.handler")
    (event,) = postback["Events"].values()
    assert event["Type"] == "HttpApi"
    assert event["Properties"] == {"ApiId": {"Ref": "HttpApi"}, "Method": "POST",
                                   "Path": "/postbacks/ccbill/upgrade/{outcome}", "PayloadFormatVersion": "2.0"}


def _function_variables(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {**template["Globals"]["Function"]["Environment"]["Variables"],
            **((template["Resources"][name]["Properties"].get("Environment") or {}).get("Variables") or {})}


def test_operations_environment(template: dict[str, Any]) -> None:
    worker = _function_variables(template, "OperationWorkerFunction")
    assert {name: worker[name] for name in (
        "BILLOPS_OPERATIONS_TABLE", "BILLOPS_OPERATIONS_QUEUE_URL", "BILLOPS_OPERATIONS_DLQ_URL",
        "BILLOPS_EVENT_BUS_NAME", "BILLOPS_SETTLE_WINDOW_SECONDS", "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN",
        "BILLOPS_UPGRADE_KEY_CIPHERTEXT", "BILLOPS_UPGRADE_CATALOGUE", "BILLOPS_CCBILL_SUBACCOUNTS")} == {
        "BILLOPS_OPERATIONS_TABLE": {"Ref": "OperationsTable"},
        "BILLOPS_OPERATIONS_QUEUE_URL": {"Ref": "OperationsQueue"},
        "BILLOPS_OPERATIONS_DLQ_URL": {"Ref": "OperationsDeadLetterQueue"},
        "BILLOPS_EVENT_BUS_NAME": {"Ref": "DomainEventBus"},
        "BILLOPS_SETTLE_WINDOW_SECONDS": {"Ref": "SettleWindowSeconds"},
        "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN": {"Ref": "CCBillCredentialsSecret"},
        "BILLOPS_UPGRADE_KEY_CIPHERTEXT": {"Ref": "UpgradeKeyCiphertext"},
        "BILLOPS_UPGRADE_CATALOGUE": {"Ref": "UpgradeCatalogue"},
        "BILLOPS_CCBILL_SUBACCOUNTS": {"Ref": "CCBillSubaccountSettings"},
    }
    # Only the worker, the upgrade page, the merchant API and `billops ccbill check` (run by the reconciliation
    # function) build `enc` upgrade forms, so only they get the key's ciphertext.
    for name in FUNCTIONS - {"OperationWorkerFunction", "UpgradePageFunction", "MerchantApiFunction",
                             "ReconciliationFunction"}:
        assert "BILLOPS_UPGRADE_KEY_CIPHERTEXT" not in _function_variables(template, name), name
    postback = _function_variables(template, "UpgradePostbackFunction")
    receiver = _function_variables(template, "WebhookReceiverFunction")
    for name in ("BILLOPS_WEBHOOK_TOKEN_SECRET_ARN", "BILLOPS_ALLOWED_CIDRS", "BILLOPS_CLIENT_ACCNUM",
                 "BILLOPS_CLIENT_SUBACCS"):
        assert postback[name] == receiver[name], name
    for name in ("SubscriptionProjectorFunction", "UpgradePostbackFunction", "ReconciliationFunction",
                 "OperationSchedulerFunction"):
        variables = _function_variables(template, name)
        assert variables["BILLOPS_OPERATIONS_TABLE"] == {"Ref": "OperationsTable"}
        assert (variables.get("BILLOPS_EVENT_BUS_NAME") == {"Ref": "DomainEventBus"}) is (
            name != "OperationSchedulerFunction"), name  # the scheduler publishes nothing


def test_a_variable_means_the_same_in_every_function(template: dict[str, Any]) -> None:
    """The local stack runs every handler in one process: one variable, one value (and it is tidier anyway)."""
    seen: dict[str, tuple[str, Any]] = {}
    for name in FUNCTIONS:
        for variable, value in _function_variables(template, name).items():
            if variable in seen:
                assert seen[variable][1] == value, f"{variable}: {seen[variable][0]} and {name} differ"
            seen[variable] = (name, value)


def test_operations_parameters(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    ciphertext = parameters["UpgradeKeyCiphertext"]
    assert (ciphertext["Type"], ciphertext["NoEcho"], ciphertext["Default"]) == ("String", True, "")
    assert json.loads(parameters["UpgradeCatalogue"]["Default"]) == []
    assert json.loads(parameters["CCBillSubaccountSettings"]["Default"]) == {}
    assert parameters["SettleWindowSeconds"]["Default"] == 1800


def test_ccbill_credentials_secret_is_a_placeholder_of_the_clients_shape(resources: dict[str, dict[str, Any]]) -> None:
    properties = resources["CCBillCredentialsSecret"]["Properties"]
    assert "GenerateSecretString" not in properties
    assert json.loads(properties["SecretString"]) == {"client_accnum": "", "username": "", "password": ""}


def test_domain_event_bus_and_archive(resources: dict[str, dict[str, Any]]) -> None:
    bus = resources["DomainEventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "billops-${Environment}"}
    archive = resources["DomainEventArchive"]["Properties"]
    assert archive["SourceArn"] == {"Fn::GetAtt": ["DomainEventBus", "Arn"]}
    assert archive["RetentionDays"] > 0


def test_dashboard_shows_the_operations(deployed: dict[str, dict[str, Any]]) -> None:
    body = deployed["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for name in ("OperationWorkerFunction", "OperationSchedulerFunction", "ReconciliationFunction",
                 "UpgradePostbackFunction", "OperationsQueue.QueueName", "OperationsDeadLetterQueue.QueueName"):
        assert "${" + name + "}" in body, name
    assert "ApproximateAgeOfOldestMessage" in body


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
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}  # layers/billops/Makefile
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
    assert outputs["OperationsQueueUrl"]["Value"] == {"Ref": "OperationsQueue"}
    assert outputs["OperationsDeadLetterQueueUrl"]["Value"] == {"Ref": "OperationsDeadLetterQueue"}
    assert outputs["DomainEventBusName"]["Value"] == {"Ref": "DomainEventBus"}
    assert outputs["DomainEventBusArn"]["Value"] == {"Fn::GetAtt": ["DomainEventBus", "Arn"]}
    assert outputs["OperationsTableName"]["Value"] == {"Ref": "OperationsTable"}
    assert outputs["CCBillCredentialsSecretArn"]["Value"] == {"Ref": "CCBillCredentialsSecret"}
    assert outputs["BillopsKeyArn"]["Value"] == {"Fn::GetAtt": ["BillopsKey", "Arn"]}


def test_samconfig_environments() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    for environment, stack in (("default", "billops-dev"), ("dev", "billops-dev"), ("prod", "billops-prod")):
        assert config[environment]["global"]["parameters"]["stack_name"] == stack
        deploy = config[environment]["deploy"]["parameters"]
        # AUTO_EXPAND: a SAM template (a transform) with nested stacks.
        assert deploy["capabilities"] == "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"
        assert deploy["resolve_s3"] is True
        assert deploy["parameter_overrides"] == f"Environment={'prod' if stack.endswith('prod') else 'dev'}"
        assert config[environment]["validate"]["parameters"]["lint"] is True
        assert config[environment]["build"]["parameters"] == {"cached": True, "parallel": True}
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


# ----------------------------------------------------------------------------------------------------------------
# The consumer upgrade page (docs/upgrade-page.md)
# ----------------------------------------------------------------------------------------------------------------


def test_upgrade_page_route_and_environment(template: dict[str, Any]) -> None:
    page = template["Resources"]["UpgradePageFunction"]["Properties"]
    assert (page["CodeUri"], page["Handler"]) == ("functions/upgrade_page/", "upgrade_page_handler.handler")
    (event,) = page["Events"].values()
    assert event["Type"] == "HttpApi"
    assert event["Properties"] == {"ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/upgrade/{token}",
                                   "PayloadFormatVersion": "2.0"}
    variables = _function_variables(template, "UpgradePageFunction")
    assert variables["BILLOPS_UPGRADE_LINK_SECRET_ARN"] == {"Ref": "UpgradeLinkSigningSecret"}
    assert variables["BILLOPS_OPERATIONS_TABLE"] == {"Ref": "OperationsTable"}
    assert variables["BILLOPS_UPGRADE_CATALOGUE"] == {"Ref": "UpgradeCatalogue"}
    assert variables["BILLOPS_UPGRADE_KEY_CIPHERTEXT"] == {"Ref": "UpgradeKeyCiphertext"}
    # The page never calls CCBill and never sees the DataLink login.
    assert "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN" not in variables


def test_upgrade_page_may_only_read_what_it_shows(transformed: dict[str, Any]) -> None:
    granted = _grants(transformed, "UpgradePageFunction")
    assert granted == {
        "dynamodb:GetItem": {_arn("SubscriptionsTable"), _arn("OperationsTable")},
        "dynamodb:Query": {_sub("${SubscriptionsTable.Arn}/index/by_original_subscription"),
                           _arn("SubscriptionHistoryTable")},  # the subscription's personal data and history
        "secretsmanager:GetSecretValue": {_secret_arn("UpgradeLinkSigningSecret")},
        # A late consumer's link records (never moves) and queues the second allowUpgrade post (issue 12).
        "dynamodb:PutItem": {_arn("OperationsTable")},
        "sqs:SendMessage": {_arn("OperationsQueue")},
    }
    role = transformed["Resources"]["UpgradePageFunctionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_upgrade_link_signing_secret_and_public_base_url(template: dict[str, Any],
                                                         resources: dict[str, dict[str, Any]]) -> None:
    secret = resources["UpgradeLinkSigningSecret"]["Properties"]
    assert secret["GenerateSecretString"]["PasswordLength"] >= 64  # at least 32 bytes of key (link_tokens.py)
    assert "SecretString" not in secret
    parameter = resources["PublicBaseUrlParameter"]["Properties"]
    assert parameter["Name"] == {"Fn::Sub": "/${AWS::StackName}/public-base-url"}
    assert parameter["Value"] == {"Fn::If": [
        "HasPublicBaseUrl", {"Ref": "PublicBaseUrl"},
        {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}]}
    assert template["Parameters"]["PublicBaseUrl"]["Default"] == ""
    pattern = re.compile(template["Parameters"]["PublicBaseUrl"]["AllowedPattern"])
    for good in ("", "https://billing.example.com", "https://example.com/billing"):
        assert pattern.fullmatch(good), good
    for bad in ("http://billing.example.com", "https://billing.example.com/", "https://x.example?a=1"):
        assert not pattern.fullmatch(bad), bad
    outputs = template["Outputs"]
    assert outputs["UpgradeLinkSigningSecretArn"]["Value"] == {"Ref": "UpgradeLinkSigningSecret"}
    assert outputs["PublicBaseUrlParameterName"]["Value"] == {"Ref": "PublicBaseUrlParameter"}


def _references(value: Any) -> set[str]:
    """Logical IDs a CloudFormation value depends on (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                target = item.split(".")[0] if isinstance(item, str) else item[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (item, {}) if isinstance(item, str) else (item[0], item[1])
                names = set(re.findall(r"\$\{([^!}][^}]*)\}", text)) - set(variables)
                found |= {name.split(".")[0] for name in names}
                found |= _references(variables)
            else:
                found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def test_the_transformed_template_has_no_circular_dependency(transformed: dict[str, Any]) -> None:
    """CloudFormation refuses a cycle that `sam validate --lint` does not report, e.g. a function integrated with
    the HTTP API that names the API in its environment (why the upgrade links' base URL is an SSM parameter)."""
    resources = transformed["Resources"]
    graph = {}
    for name, resource in resources.items():
        depends = resource.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else depends
        graph[name] = {ref for ref in _references(resource.get("Properties") or {}) | set(depends) if ref in resources}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, f"circular dependency: {' -> '.join(visiting[visiting.index(node):] + [node])}"
        visiting.append(node)
        for target in sorted(graph[node]):
            visit(target)
        visiting.pop()
        done.add(node)

    for name in sorted(graph):
        visit(name)


# ----------------------------------------------------------------------------------------------------------------
# The merchant API (docs/merchant-api.md)
# ----------------------------------------------------------------------------------------------------------------


def test_merchant_api_route_and_environment(template: dict[str, Any]) -> None:
    api = template["Resources"]["MerchantApiFunction"]["Properties"]
    assert (api["CodeUri"], api["Handler"]) == ("functions/merchant_api/", "merchant_api_handler.handler")
    (event,) = api["Events"].values()
    assert event["Type"] == "HttpApi"
    # One route for all of /v1: unknown paths and methods get the API's own 404 / 405 in ChargeBee's model.
    assert event["Properties"] == {"ApiId": {"Ref": "HttpApi"}, "Method": "ANY", "Path": "/v1/{proxy+}",
                                   "PayloadFormatVersion": "2.0"}
    variables = _function_variables(template, "MerchantApiFunction")
    assert {name: variables[name] for name in (
        "BILLOPS_API_KEYS_TABLE", "BILLOPS_OPERATIONS_TABLE", "BILLOPS_OPERATIONS_QUEUE_URL",
        "BILLOPS_UPGRADE_CATALOGUE", "BILLOPS_CCBILL_SUBACCOUNTS", "BILLOPS_UPGRADE_LINK_SECRET_ARN")} == {
        "BILLOPS_API_KEYS_TABLE": {"Ref": "ApiKeysTable"},
        "BILLOPS_OPERATIONS_TABLE": {"Ref": "OperationsTable"},
        "BILLOPS_OPERATIONS_QUEUE_URL": {"Ref": "OperationsQueue"},
        "BILLOPS_UPGRADE_CATALOGUE": {"Ref": "UpgradeCatalogue"},
        "BILLOPS_CCBILL_SUBACCOUNTS": {"Ref": "CCBillSubaccountSettings"},
        "BILLOPS_UPGRADE_LINK_SECRET_ARN": {"Ref": "UpgradeLinkSigningSecret"},
    }
    # The API validates with the worker's rules but never calls CCBill, so it never sees the DataLink login.
    assert "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN" not in variables


def test_merchant_api_permissions_are_exactly_what_it_does(transformed: dict[str, Any]) -> None:
    granted = _grants(transformed, "MerchantApiFunction")
    assert granted == {
        "dynamodb:GetItem": {_arn("SubscriptionsTable"), _arn("OperationsTable"), _arn("ApiKeysTable"),
                             _arn("ReportsTable")},
        "dynamodb:BatchGetItem": {_arn("SubscriptionsTable"), _arn("SubscriptionHistoryTable")},
        "dynamodb:Query": {_sub("${SubscriptionsTable.Arn}/index/by_status_created"), _arn("SubscriptionHistoryTable"),
                           _sub("${SubscriptionsTable.Arn}/index/by_customer_reference"),
                           _arn("DeliveryLogTable"), _arn("ReportsTable"),
                           _sub("${OperationsTable.Arn}/index/by_subscription")},
        # Operations are created, never moved (only the worker moves them); the keys table gets counters and
        # kept answers only (below); an upgrade link notes its offer on the subscription (issue 12).
        "dynamodb:PutItem": {_arn("OperationsTable"), _arn("ApiKeysTable"), _arn("SubscriptionsTable")},
        "dynamodb:UpdateItem": {_arn("ApiKeysTable")},
        "sqs:SendMessage": {_arn("OperationsQueue")},
        "ssm:GetParameter": {_sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/"
                                  "${AWS::StackName}/public-base-url")},
        "secretsmanager:GetSecretValue": {_secret_arn("UpgradeLinkSigningSecret")},
    }
    role = transformed["Resources"]["MerchantApiFunctionRole"]["Properties"]
    statements = {statement.get("Sid"): statement for policy in role["Policies"]
                  for statement in _statements(policy["PolicyDocument"])}
    # The function can neither make nor change a key: its writes to the keys table are limited by leading key.
    assert statements["CountAuthenticationFailures"]["Action"] == ["dynamodb:UpdateItem"]
    assert statements["CountAuthenticationFailures"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["throttle#*"]}}
    assert statements["KeepIdempotentAnswers"]["Action"] == ["dynamodb:PutItem"]
    assert statements["KeepIdempotentAnswers"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["idempotency#*"]}}
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_api_keys_table_is_keyed_by_hash_with_a_key_id_index_and_ttl(resources: dict[str, dict[str, Any]]) -> None:
    table = resources["ApiKeysTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "key_hash", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_key_id"
    assert index["KeySchema"] == [{"AttributeName": "key_id", "KeyType": "HASH"}]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}, "revocation needs the hash, nothing more"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "StreamSpecification" not in table
    _assert_index_attributes_are_strings(table)


def test_merchant_api_alarm_and_outputs(template: dict[str, Any], deployed: dict[str, dict[str, Any]]) -> None:
    alarm = deployed["MerchantApiInternalErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Billops", "ApiInternalErrors")
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    outputs = template["Outputs"]
    assert outputs["MerchantApiUrl"]["Value"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1"}
    assert outputs["ApiKeysTableName"]["Value"] == {"Ref": "ApiKeysTable"}


def test_the_built_layer_serves_the_openapi_document(sam_build: Path) -> None:
    document = sam_build / "BillopsLayer" / "python" / "billops" / "merchant_api" / "openapi.json"
    assert document.is_file(), "GET /v1/openapi.json reads the document from the layer"
    assert json.loads(document.read_text())["openapi"].startswith("3.1")


def test_sam_build_builds_the_nested_templates_beside_the_functions(sam_build: Path) -> None:
    """sam build copies each nested template (a local Location) into the build and points the parent at it; sam
    deploy then uploads it with the functions."""
    built = load_yaml(sam_build / "template.yaml")["Resources"]
    nested = {stack_id for stack_id, resource in load_yaml(ROOT / "template.yaml")["Resources"].items()
              if resource["Type"] == "AWS::Serverless::Application"}
    assert nested >= {"Monitoring", "EgressNetwork", "AnalyticsExportStack"}
    for stack_id in nested:
        assert built[stack_id]["Properties"]["Location"] == f"{stack_id}/template.yaml"
        assert (sam_build / stack_id / "template.yaml").is_file(), stack_id
    assert "CCBillRequestsThrottledAlarm" in load_yaml(sam_build / "Monitoring" / "template.yaml")["Resources"]
    assert "WorkerNatGateway" in load_yaml(sam_build / "EgressNetwork" / "template.yaml")["Resources"]


def test_upgrade_page_failures_are_alarmed(deployed: dict[str, dict[str, Any]]) -> None:
    # The page turns its failures into a 503 page (no Lambda error): its own metric carries them.
    alarm = deployed["UpgradePageFailuresAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Billops", "UpgradePageErrors")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "billops"}]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
