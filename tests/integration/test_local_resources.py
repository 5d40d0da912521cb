"""The local stack's AWS resources and HTTP routes come from template.yaml and cannot drift from it.

Expectations are read from the raw YAML here, independently of billops_local.template_resources, and compared with
what exists in moto and what the gateway routes. The gateway's HTTP API behaviour is exercised with small fake
handler modules written to tmp_path (not the real handlers).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from billops_local.aws_environment import (
    EnvironmentConflict,
    LocalFunction,
    MotoServer,
    aws_client,
    create_resources,
    function_environments,
    merged_function_environment,
)
from billops_local.http_gateway import HttpGateway, Route, RouteTable, response_from_lambda
from billops_local.stack import LocalSettings, LocalStack, LocalStackError
from billops_local.template_resources import TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
TOKEN = "integration-test-token"


class _RawLoader(yaml.SafeLoader):
    """Reads the template without billops_local: every !Tag becomes {"Tag": value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_RawLoader.add_multi_constructor("!", _tagged)


_LOCAL_PSEUDO_PARAMETERS = {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "AWS::Partition": "aws",
                            "AWS::StackName": "billops-local", "Environment": "local"}


def _with_local_pseudo_parameters(value: Any) -> Any:
    """A key policy value as the local stack must resolve it: !Ref / !Sub of pseudo parameters and Environment."""
    if isinstance(value, list):
        return [_with_local_pseudo_parameters(item) for item in value]
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return _LOCAL_PSEUDO_PARAMETERS[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda match: _LOCAL_PSEUDO_PARAMETERS[match.group(1)], value["Sub"])
    if isinstance(value, dict):
        return {key: _with_local_pseudo_parameters(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def raw_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_RawLoader)


@pytest.fixture(scope="module")
def moto_endpoint():
    server = MotoServer(port=0)
    server.start()
    requests.post(f"{server.endpoint_url}/moto-api/reset", timeout=10)  # moto's backends are process-wide
    yield server.endpoint_url
    server.stop()


@pytest.fixture(scope="module")
def template():
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def created(template, moto_endpoint):
    return create_resources(template, moto_endpoint, secret_values={"WebhookTokenSecret": TOKEN})


def _expected_tables(raw_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"billops-local-{logical_id}": resource["Properties"]
        for logical_id, resource in raw_template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


# ----------------------------------------------------------------------------------------------------------------
# Resources in moto == resources in the template
# ----------------------------------------------------------------------------------------------------------------


def test_moto_has_exactly_the_template_tables(raw_template, created, moto_endpoint) -> None:
    names = aws_client("dynamodb", moto_endpoint).list_tables()["TableNames"]
    assert sorted(names) == sorted(_expected_tables(raw_template))


def test_tables_have_exactly_the_template_keys_indexes_and_streams(raw_template, created, moto_endpoint) -> None:
    dynamodb = aws_client("dynamodb", moto_endpoint)
    for name, expected in _expected_tables(raw_template).items():
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == expected["KeySchema"], name
        assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
            expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
        ), name
        got_indexes = {
            index["IndexName"]: (index["KeySchema"], index["Projection"]["ProjectionType"],
                                 sorted(index["Projection"].get("NonKeyAttributes") or []))
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        want_indexes = {
            index["IndexName"]: (index["KeySchema"], index["Projection"]["ProjectionType"],
                                 sorted(index["Projection"].get("NonKeyAttributes") or []))
            for index in expected.get("GlobalSecondaryIndexes", [])
        }
        assert got_indexes == want_indexes, name
        assert not table.get("LocalSecondaryIndexes") and not expected.get("LocalSecondaryIndexes")
        stream = expected.get("StreamSpecification")
        if stream:
            assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
            assert table["LatestStreamArn"] == created.tables[name.removeprefix("billops-local-")].stream_arn
        else:
            assert not table.get("StreamSpecification", {}).get("StreamEnabled"), name
        assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"], name
        assert table["SSEDescription"]["Status"] == "ENABLED", name
        backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", name


def test_queues_and_secrets_come_from_the_template(raw_template, created, moto_endpoint) -> None:
    resources = raw_template["Resources"]
    queue_ids = sorted(i for i, r in resources.items() if r["Type"] == "AWS::SQS::Queue")
    assert sorted(created.queues) == queue_ids
    sqs = aws_client("sqs", moto_endpoint)
    for logical_id in queue_ids:
        attributes = sqs.get_queue_attributes(QueueUrl=created.queues[logical_id].url, AttributeNames=["All"])[
            "Attributes"
        ]
        expected = resources[logical_id]["Properties"]
        fifo = expected.get("FifoQueue") is True
        assert attributes["QueueArn"].endswith(f":billops-local-{logical_id}" + (".fifo" if fifo else ""))
        assert attributes.get("FifoQueue", "false") == ("true" if fifo else "false")
        if "ContentBasedDeduplication" in expected:
            assert attributes["ContentBasedDeduplication"] == str(expected["ContentBasedDeduplication"]).lower()
        for name in ("MessageRetentionPeriod", "VisibilityTimeout"):
            if name in expected:
                assert attributes[name] == str(expected[name]), (logical_id, name)
        if expected.get("SqsManagedSseEnabled"):
            assert attributes["SqsManagedSseEnabled"] == "true"
        if "RedrivePolicy" in expected:
            redrive = json.loads(attributes["RedrivePolicy"])
            target = expected["RedrivePolicy"]["deadLetterTargetArn"]["GetAtt"].split(".")[0]
            assert redrive == {"deadLetterTargetArn": created.queues[target].arn,
                               "maxReceiveCount": expected["RedrivePolicy"]["maxReceiveCount"]}
        else:
            assert "RedrivePolicy" not in attributes
    secret_ids = sorted(i for i, r in resources.items() if r["Type"] == "AWS::SecretsManager::Secret")
    assert sorted(created.secrets) == secret_ids
    secrets = aws_client("secretsmanager", moto_endpoint)
    for logical_id in secret_ids:
        literal = resources[logical_id]["Properties"].get("SecretString")
        if literal is not None:
            value = secrets.get_secret_value(SecretId=created.secrets[logical_id].arn)["SecretString"]
            assert value == literal, logical_id


def test_event_buses_and_archives_come_from_the_template(raw_template, created, moto_endpoint) -> None:
    resources = raw_template["Resources"]
    events = aws_client("events", moto_endpoint)
    bus_ids = sorted(i for i, r in resources.items() if r["Type"] == "AWS::Events::EventBus")
    assert sorted(created.event_buses) == bus_ids
    names = {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}
    assert names == {"default"} | {f"billops-local-{logical_id}" for logical_id in bus_ids}
    archive_ids = sorted(i for i, r in resources.items() if r["Type"] == "AWS::Events::Archive")
    assert sorted(created.event_archives) == archive_ids
    for logical_id in archive_ids:
        expected = resources[logical_id]["Properties"]
        archive = events.describe_archive(ArchiveName=created.event_archives[logical_id].name)
        source = expected["SourceArn"]["GetAtt"].split(".")[0]
        assert archive["EventSourceArn"] == created.event_buses[source].arn
        assert archive["RetentionDays"] == expected["RetentionDays"]


def test_kms_keys_and_aliases_come_from_the_template(raw_template, created, moto_endpoint) -> None:
    resources = raw_template["Resources"]
    kms = aws_client("kms", moto_endpoint)
    key_ids = sorted(i for i, r in resources.items() if r["Type"] == "AWS::KMS::Key")
    assert sorted(created.kms_keys) == key_ids
    for logical_id in key_ids:
        expected = resources[logical_id]["Properties"]
        key = created.kms_keys[logical_id]
        assert kms.get_key_rotation_status(KeyId=key.key_id)["KeyRotationEnabled"] is bool(
            expected.get("EnableKeyRotation"))
        policy = json.loads(kms.get_key_policy(KeyId=key.key_id, PolicyName="default")["Policy"])
        # A statement behind an !If is there when its condition holds locally (PersonalDataReaderPrincipals: not).
        wanted = [s for s in expected["KeyPolicy"]["Statement"] if "Sid" in s]
        assert [s["Sid"] for s in policy["Statement"]] == [s["Sid"] for s in wanted]
        for got, want in zip(policy["Statement"], wanted, strict=True):
            assert (got["Action"], got.get("Condition")) == (
                want["Action"], _with_local_pseudo_parameters(want.get("Condition")))
            principal = want["Principal"].get("AWS")
            if isinstance(principal, dict) and "GetAtt" in principal:  # a role SAM makes: its local ARN
                role = principal["GetAtt"].split(".")[0]
                assert got["Principal"]["AWS"] == f"arn:aws:iam::123456789012:role/billops-local-{role}"
            else:
                assert got["Principal"] == _with_local_pseudo_parameters(want["Principal"])
    aliases = {alias["AliasName"]: alias.get("TargetKeyId") for alias in kms.list_aliases()["Aliases"]}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::KMS::Alias":
            target = resource["Properties"]["TargetKeyId"]["Ref"]
            assert aliases[f"alias/billops-local-{logical_id}"] == created.kms_keys[target].key_id


def test_the_upgrade_key_round_trips_through_the_template_key_with_its_context(created, moto_endpoint) -> None:
    from billops.ccbill.upgrade_encryption import encrypt_key_for_configuration

    kms = aws_client("kms", moto_endpoint)
    key = "0123456789abcdeffedcba987654321089abcdef01234567"
    ciphertext = encrypt_key_for_configuration(kms, created.kms_keys["BillopsKey"].arn, key)
    blob = base64.b64decode(ciphertext)
    plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"billops:purpose": "ccbill-upgrade-enc"})
    assert plain["Plaintext"].decode() == key
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=blob)  # without the encryption context


def test_the_webhook_token_is_the_whole_secret_string(created, moto_endpoint) -> None:
    secrets = aws_client("secretsmanager", moto_endpoint)
    value = secrets.get_secret_value(SecretId=created.secrets["WebhookTokenSecret"].arn)["SecretString"]
    assert value == TOKEN


def test_function_environments_resolve_to_the_local_resources(template, created) -> None:
    environments = function_environments(template, created)
    receiver = environments["WebhookReceiverFunction"]
    assert receiver["BILLOPS_ENV"] == "local"
    assert receiver["BILLOPS_EVENTS_TABLE"] == "billops-local-EventsTable"
    assert receiver["BILLOPS_SUBSCRIPTIONS_TABLE"] == "billops-local-SubscriptionsTable"
    assert receiver["BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"] == created.secrets["WebhookTokenSecret"].arn
    assert receiver["BILLOPS_ALLOWED_CIDRS"] == "64.38.212.0/24,64.38.215.0/24,64.38.240.0/24,64.38.241.0/24"
    assert receiver["BILLOPS_CLIENT_ACCNUM"] == ""
    assert receiver["BILLOPS_MAX_BODY_BYTES"] == "65536"
    # Personal data is encrypted under the template's key, created locally: the receiver makes data keys of it and
    # the merchant API opens them.
    assert receiver["BILLOPS_PII_KEY_ID"] == created.kms_keys["BillopsKey"].key_id
    assert environments["MerchantApiFunction"]["BILLOPS_PII_KEY_ID"] == created.kms_keys["BillopsKey"].key_id
    assert receiver["POWERTOOLS_SERVICE_NAME"] == "billops"
    assert "BILLOPS_WEBHOOK_TOKEN" not in receiver
    merged = merged_function_environment(environments)  # one process: no variable may have two values
    assert merged["BILLOPS_EVENTS_TABLE"] == "billops-local-EventsTable"
    worker = environments["OperationWorkerFunction"]
    assert worker["BILLOPS_OPERATIONS_TABLE"] == "billops-local-OperationsTable"
    assert worker["BILLOPS_OPERATIONS_QUEUE_URL"] == created.queues["OperationsQueue"].url
    assert worker["BILLOPS_OPERATIONS_DLQ_URL"] == created.queues["OperationsDeadLetterQueue"].url
    assert worker["BILLOPS_EVENT_BUS_NAME"] == created.event_buses["DomainEventBus"].name
    assert worker["BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN"] == created.secrets["CCBillCredentialsSecret"].arn
    assert worker["BILLOPS_SETTLE_WINDOW_SECONDS"] == "1800"
    assert worker["BILLOPS_UPGRADE_KEY_CIPHERTEXT"] == ""
    assert worker["BILLOPS_UPGRADE_CATALOGUE"] == "[]"
    postback = environments["UpgradePostbackFunction"]
    assert postback["BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"] == receiver["BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"]


def test_every_template_function_has_its_handler_file(template) -> None:
    for logical_id, spec in template.functions.items():
        assert spec.module_path.is_file(), f"{logical_id}: {spec.module_path} is missing"


def test_template_specs_carry_the_queue_sources_and_schedules(template, raw_template) -> None:
    raw_functions = {logical_id: resource["Properties"] for logical_id, resource in raw_template["Resources"].items()
                     if resource["Type"] == "AWS::Serverless::Function"}
    raw_queue_events = [(logical_id, event_id, event["Properties"])
                        for logical_id, properties in raw_functions.items()
                        for event_id, event in (properties.get("Events") or {}).items() if event["Type"] == "SQS"]
    assert [(s.function_logical_id, s.event_id) for s in template.queue_sources] == [
        (logical_id, event_id) for logical_id, event_id, _ in raw_queue_events]
    parameters = raw_template["Parameters"]
    for source, (logical_id, _, raw) in zip(template.queue_sources, raw_queue_events, strict=True):
        assert source.queue_logical_id == raw["Queue"]["GetAtt"].split(".")[0]
        assert source.batch_size == raw["BatchSize"]
        assert source.report_batch_item_failures is ("ReportBatchItemFailures" in raw["FunctionResponseTypes"])
        maximum = raw["ScalingConfig"]["MaximumConcurrency"]
        assert source.maximum_concurrency == parameters[maximum["Ref"]]["Default"]
        reserved = raw_functions[logical_id]["ReservedConcurrentExecutions"]
        assert template.functions[logical_id].reserved_concurrency == parameters[reserved["Ref"]]["Default"]
    raw_schedules = sorted((logical_id, event_id, event["Properties"]["Schedule"])
                           for logical_id, properties in raw_functions.items()
                           for event_id, event in (properties.get("Events") or {}).items()
                           if event["Type"] == "Schedule")
    assert sorted((s.function_logical_id, s.event_id, s.expression) for s in template.schedules) == raw_schedules
    assert all(s.enabled for s in template.schedules)
    for logical_id, properties in raw_functions.items():
        retries = (properties.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2)
        assert template.functions[logical_id].maximum_retry_attempts == retries


def test_template_routes_may_not_use_the_local_control_prefix(tmp_path: Path) -> None:
    document = TEMPLATE.read_text().replace("Path: /postbacks/ccbill/upgrade/{outcome}",
                                            "Path: /__local/schedules/{outcome}")
    copy = tmp_path / "template.yaml"
    copy.write_text(document)
    with pytest.raises(TemplateError, match="__local"):
        load_template(copy)


def test_the_stack_refuses_to_start_when_a_handler_file_is_missing(tmp_path: Path) -> None:
    document = TEMPLATE.read_text().replace("CodeUri: functions/operation_worker/",
                                            f"CodeUri: {tmp_path / 'nowhere'}/")
    copy = tmp_path / "template.yaml"
    copy.write_text(document)
    stack = LocalStack(LocalSettings(aws_port=0, api_port=0, sandbox_port=0, template_path=copy), announce=False)
    with pytest.raises(LocalStackError, match="OperationWorkerFunction.*operation_worker_handler.py"):
        stack.start()
    assert stack.state.moto is None  # everything started was stopped again


def test_two_functions_giving_one_variable_two_values_is_refused() -> None:
    with pytest.raises(EnvironmentConflict, match="SHARED"):
        merged_function_environment({"A": {"SHARED": "1", "ONLY_A": "x"}, "B": {"SHARED": "2"}})
    assert merged_function_environment({"A": {"SHARED": "1"}, "B": {"SHARED": "1"}}) == {"SHARED": "1"}


def test_template_specs_carry_the_stream_source_settings(template, raw_template) -> None:
    (source,) = template.stream_sources
    raw = raw_template["Resources"]["SubscriptionProjectorFunction"]["Properties"]["Events"]["EventsStream"]
    raw_properties = raw["Properties"]
    assert source.table_logical_id == raw_properties["Stream"]["GetAtt"].split(".")[0]
    assert source.batch_size == raw_properties["BatchSize"]
    assert source.starting_position == raw_properties["StartingPosition"]
    assert source.maximum_retry_attempts == raw_properties["MaximumRetryAttempts"]
    assert source.bisect_batch_on_function_error is raw_properties["BisectBatchOnFunctionError"]
    assert source.report_batch_item_failures is True
    assert source.on_failure_queue_logical_id == "ProjectorDeadLetterQueue"


# ----------------------------------------------------------------------------------------------------------------
# Gateway routes == template routes
# ----------------------------------------------------------------------------------------------------------------


def _expected_route_keys(raw_template: dict[str, Any]) -> set[str]:
    keys = set()
    for resource in raw_template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                keys.add(f"{event['Properties']['Method'].upper()} {event['Properties']['Path']}")
    return keys


def test_gateway_routes_exactly_the_template_routes(raw_template, template) -> None:
    functions = {
        logical_id: LocalFunction(spec.physical_name, handler=lambda event, context: {})
        for logical_id, spec in template.functions.items()
    }
    table = RouteTable.from_template(template.http_routes, functions)
    assert table.route_keys == _expected_route_keys(raw_template)
    route, parameters = table.find("POST", "/webhooks/ccbill")
    assert route.function is functions["WebhookReceiverFunction"] and parameters == {}
    route, parameters = table.find("POST", "/postbacks/ccbill/upgrade/approval")
    assert route.function is functions["UpgradePostbackFunction"] and parameters == {"outcome": "approval"}
    assert table.find("POST", "/postbacks/ccbill/upgrade") is None
    assert table.find("GET", "/postbacks/ccbill/upgrade/denial") is None
    assert table.find("GET", "/webhooks/ccbill") is None
    assert table.find("POST", "/webhooks/ccbill/extra") is None


# ----------------------------------------------------------------------------------------------------------------
# Gateway behaviour, with fake handler modules
# ----------------------------------------------------------------------------------------------------------------

_ECHO_HANDLER = '''
import base64, json, threading, time

active = 0
peak = 0
_lock = threading.Lock()


def handler(event, context):
    global active, peak
    with _lock:
        active += 1
        peak = max(peak, active)
    try:
        if event["rawPath"].startswith("/slow"):
            time.sleep(0.2)
        if event["rawPath"] == "/boom":
            raise RuntimeError("boom")
        if event["rawPath"] == "/plain":
            return {"plain": True}
        if event["rawPath"] == "/text":
            return "just text"
        if event["rawPath"] == "/binary":
            return {"statusCode": 201, "isBase64Encoded": True, "body": base64.b64encode(b"\\x00\\x01").decode(),
                    "headers": {"content-type": "application/octet-stream"}, "cookies": ["a=1", "b=2; Path=/"]}
        if event["rawPath"] == "/malformed":
            return {"statusCode": "teapot"}
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json", "x-function": context.function_name},
            "body": json.dumps({
                "routeKey": event["routeKey"],
                "rawPath": event["rawPath"],
                "rawQueryString": event["rawQueryString"],
                "pathParameters": event.get("pathParameters"),
                "sourceIp": event["requestContext"]["http"]["sourceIp"],
                "method": event["requestContext"]["http"]["method"],
                "body": event.get("body"),
                "isBase64Encoded": event["isBase64Encoded"],
                "remaining": context.get_remaining_time_in_millis(),
                "memory": context.memory_limit_in_mb,
                "requestId": context.aws_request_id,
            }),
        }
    finally:
        with _lock:
            active -= 1
'''


@pytest.fixture
def gateway(tmp_path: Path):
    module = tmp_path / "fake_gateway_echo_handler.py"
    module.write_text(textwrap.dedent(_ECHO_HANDLER))
    function = LocalFunction("fake-echo", module_path=module, memory_size=512, timeout=5)
    routes = [
        Route("POST /things", "POST", "/things", function),
        Route("GET /things/{id}", "GET", "/things/{id}", function),
        Route("GET /things/special", "GET", "/things/special", function),
        Route("ANY /files/{proxy+}", "ANY", "/files/{proxy+}", function),
        *(Route(f"GET /{name}", "GET", f"/{name}", function)
          for name in ("boom", "plain", "text", "binary", "malformed", "slow")),
    ]
    server = HttpGateway(RouteTable(routes), port=0)
    server.start()
    yield server, function
    server.stop()


def test_gateway_builds_payload_v2_events_with_the_tcp_peer_as_source_ip(gateway) -> None:
    server, _ = gateway
    response = requests.post(
        f"{server.url}/things?token=secret&a=1",
        json={"x": 1},
        headers={"X-Forwarded-For": "64.38.212.10"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["x-function"] == "fake-echo"
    echoed = response.json()
    assert echoed["routeKey"] == "POST /things"
    assert echoed["rawPath"] == "/things"
    assert echoed["rawQueryString"] == "token=secret&a=1"
    assert echoed["sourceIp"] == "127.0.0.1"
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"x": 1}
    assert 0 < echoed["remaining"] <= 5000
    assert echoed["memory"] == 512


def test_gateway_path_parameters_and_most_specific_route(gateway) -> None:
    server, _ = gateway
    assert requests.get(f"{server.url}/things/42", timeout=10).json()["pathParameters"] == {"id": "42"}
    special = requests.get(f"{server.url}/things/special", timeout=10).json()
    assert special["routeKey"] == "GET /things/special" and special["pathParameters"] is None
    greedy = requests.delete(f"{server.url}/files/a/b%20c.txt", timeout=10).json()
    assert greedy["routeKey"] == "ANY /files/{proxy+}"
    assert greedy["pathParameters"] == {"proxy": "a/b c.txt"}


def test_gateway_answers_unknown_routes_like_http_api(gateway) -> None:
    server, _ = gateway
    for method, path in (("GET", "/nope"), ("POST", "/things/42"), ("GET", "/files"), ("PUT", "/things")):
        response = requests.request(method, f"{server.url}{path}", timeout=10)
        assert response.status_code == 404, path
        assert response.json() == {"message": "Not Found"}


def test_gateway_answers_500_when_the_handler_raises(gateway, caplog) -> None:
    server, _ = gateway
    response = requests.get(f"{server.url}/boom", timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    malformed = requests.get(f"{server.url}/malformed", timeout=10)
    assert malformed.status_code == 500
    assert malformed.json() == {"message": "Internal Server Error"}


def test_gateway_maps_results_like_http_api(gateway) -> None:
    server, _ = gateway
    plain = requests.get(f"{server.url}/plain", timeout=10)
    assert plain.status_code == 200 and plain.json() == {"plain": True}
    assert plain.headers["content-type"] == "application/json"
    text = requests.get(f"{server.url}/text", timeout=10)
    assert text.status_code == 200 and text.text == "just text"
    binary = requests.get(f"{server.url}/binary", timeout=10)
    assert binary.status_code == 201
    assert binary.content == b"\x00\x01"
    assert binary.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2; Path=/"]


def test_gateway_runs_one_invocation_at_a_time_per_function(gateway) -> None:
    server, _ = gateway
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: requests.get(f"{server.url}/slow", timeout=10), range(4)))
    assert all(response.ok for response in responses)
    module = sys.modules["fake_gateway_echo_handler"]
    assert module.peak == 1


def test_gateway_rejects_bodies_over_the_http_api_limit(gateway) -> None:
    server, _ = gateway
    response = requests.post(f"{server.url}/things", data=b"x" * (10 * 1024 * 1024 + 1), timeout=30)
    assert response.status_code == 413


def test_response_mapping_rejects_unusable_results() -> None:
    with pytest.raises(ValueError):
        response_from_lambda({"statusCode": 200, "body": {"not": "a string"}})
    with pytest.raises(ValueError):
        response_from_lambda({"statusCode": 99})
    assert response_from_lambda({"statusCode": 204}).body == b""


def test_gateway_releases_its_port_on_stop(tmp_path: Path) -> None:
    function = LocalFunction("noop", handler=lambda event, context: {"statusCode": 204})
    server = HttpGateway(RouteTable([Route("GET /", "GET", "/", function)]), port=0)
    server.start()
    port = server.port
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 204
    server.stop()
    again = HttpGateway(RouteTable([Route("GET /", "GET", "/", function)]), port=port)
    again.start()  # binds the same port again
    again.stop()


def test_local_function_context_and_failed_imports(tmp_path: Path) -> None:
    broken = tmp_path / "fake_broken_import_handler.py"
    broken.write_text("raise RuntimeError('init failed')\n")
    function = LocalFunction("broken", module_path=broken)
    with pytest.raises(RuntimeError, match="init failed"):
        function.invoke({})
    broken.write_text("def handler(event, context):\n    return context.invoked_function_arn\n")
    assert function.invoke({}) == "arn:aws:lambda:us-east-1:123456789012:function:broken"  # retried, like Lambda


def test_one_lock_per_function_not_per_gateway() -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(event, context):
        started.set()
        release.wait(5)
        return "slow"

    slow_function = LocalFunction("slow", handler=slow)
    fast_function = LocalFunction("fast", handler=lambda event, context: "fast")
    thread = threading.Thread(target=slow_function.invoke, args=({},))
    thread.start()
    assert started.wait(5)
    began = time.monotonic()
    assert fast_function.invoke({}) == "fast"  # another function is not blocked
    assert time.monotonic() - began < 1
    release.set()
    thread.join(5)


# ----------------------------------------------------------------------------------------------------------------
# Local parameter values
# ----------------------------------------------------------------------------------------------------------------


def _stack_with(env: dict[str, str]) -> LocalStack:
    return LocalStack(LocalSettings.from_env({"BILLOPS_AWS_PORT": "0", "BILLOPS_API_PORT": "0", **env}),
                      announce=False)


def test_a_parameter_backed_variable_in_the_environment_overrides_its_parameter() -> None:
    stack = _stack_with({"BILLOPS_SETTLE_WINDOW_SECONDS": "5", "BILLOPS_ENV": "prod",
                         "BILLOPS_EVENTS_TABLE": "not-a-parameter"})
    template = stack.template
    assert template.parameters["SettleWindowSeconds"] == "5"
    assert template.parameters["Environment"] == "local"  # never taken from the environment
    # WorkerFixedEgressIp=true is the local stack's own default (the sandbox whitelists 127.0.0.1 for allowUpgrade).
    assert stack.state.overridden_parameters == {"SettleWindowSeconds": "5", "WorkerFixedEgressIp": "true"}
    resolver = template.resolver
    worker = template.functions["OperationWorkerFunction"].environment
    assert resolver.resolve_string(worker["BILLOPS_SETTLE_WINDOW_SECONDS"], what="x") == "5"


def test_the_local_stack_has_a_fixed_egress_address_unless_told_otherwise() -> None:
    assert _stack_with({}).template.parameters["WorkerFixedEgressIp"] == "true"
    assert _stack_with({"BILLOPS_FIXED_EGRESS_IP": "false"}).template.parameters["WorkerFixedEgressIp"] == "false"
    overridden = _stack_with({"BILLOPS_LOCAL_PARAMETER_OVERRIDES": "WorkerFixedEgressIp=false"})
    assert overridden.template.parameters["WorkerFixedEgressIp"] == "false"


def test_parameter_overrides_in_sams_syntax() -> None:
    stack = _stack_with({"BILLOPS_LOCAL_PARAMETER_OVERRIDES": 'WorkerConcurrency=3 ClientSubaccs="0000,0001"'})
    template = stack.template
    assert template.functions["OperationWorkerFunction"].reserved_concurrency == 3
    assert template.queue_sources[0].maximum_concurrency == 3
    assert template.parameters["ClientSubaccs"] == "0000,0001"
    with pytest.raises(LocalStackError, match="contradicts"):
        _ = _stack_with({"BILLOPS_LOCAL_PARAMETER_OVERRIDES": "SettleWindowSeconds=9",
                         "BILLOPS_SETTLE_WINDOW_SECONDS": "5"}).template
    with pytest.raises(LocalStackError, match="undeclared"):
        _ = _stack_with({"BILLOPS_LOCAL_PARAMETER_OVERRIDES": "NoSuchParameter=1"}).template
    with pytest.raises(LocalStackError, match="Name=Value"):
        _stack_with({"BILLOPS_LOCAL_PARAMETER_OVERRIDES": "justaword"})


def test_local_timing_settings() -> None:
    settings = LocalSettings.from_env({"BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": "0",
                                       "BILLOPS_LOCAL_SCHEDULE_SECONDS": "2", "BILLOPS_LOCAL_MAX_CONCURRENCY": "1"})
    assert settings.failure_visibility_timeout == 0
    assert settings.schedule_timing.fixed_seconds == 2
    assert settings.max_concurrency == 1
    defaults = LocalSettings.from_env({})
    assert (defaults.failure_visibility_timeout, defaults.max_concurrency) == (5, None)
    for bad in ({"BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": "-1"}, {"BILLOPS_LOCAL_MAX_CONCURRENCY": "0"},
                {"BILLOPS_LOCAL_SCHEDULE_SCALE": "never"}):
        with pytest.raises(LocalStackError):
            LocalSettings.from_env(bad)


def test_the_http_log_masks_upgrade_link_tokens_and_the_leak_scanner_finds_one(tmp_path: Path, caplog) -> None:
    """Security review: the local stack's HTTP log wrote each upgrade page request's full token (the consumer's
    credential for that page). It is masked now, and the end-to-end leak scanner looks for tokens too."""
    import logging
    from datetime import UTC, datetime, timedelta

    from billops.upgrade_page.link_tokens import UpgradeLinkClaims, sign
    from billops_local.log_leaks import LeakScanner

    module = tmp_path / "fake_upgrade_page_handler.py"
    module.write_text(textwrap.dedent(_ECHO_HANDLER))
    function = LocalFunction("fake-upgrade-page", module_path=module, memory_size=128, timeout=5)
    server = HttpGateway(RouteTable([Route("GET /upgrade/{token}", "GET", "/upgrade/{token}", function)]), port=0)
    server.start()
    token = sign(UpgradeLinkClaims("0126015401000000123", "enc", datetime.now(UTC) + timedelta(days=1),
                                   "nonce-abcdefgh", "gold"), b"k" * 32)
    try:
        with caplog.at_level(logging.INFO, logger="billops_local.http"):
            assert requests.get(f"{server.url}/upgrade/{token}", timeout=10).status_code == 200

            def logged_lines() -> list[str]:  # the line is written once the answer is sent
                return [record.getMessage() for record in caplog.records if record.name == "billops_local.http"]

            deadline = time.monotonic() + 10
            while not logged_lines() and time.monotonic() < deadline:
                time.sleep(0.05)
            logged = logged_lines()
    finally:
        server.stop()
    assert logged == [logged[0]] and "GET /upgrade/<upgrade token> -> 200" in logged[0]
    assert token not in caplog.text and token.split(".")[1] not in caplog.text
    leaks = LeakScanner().scan_text(f"GET /upgrade/{token} -> 200\nGET /upgrade/<upgrade token> -> 200\n", "log")
    assert [str(leak) for leak in leaks] == ["log:1: an upgrade link's token"]
