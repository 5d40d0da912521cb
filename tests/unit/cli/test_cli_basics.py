"""The CLI's frame: options, targets (local names, stack outputs), output formatting, the progress bar."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from billops_cli.__main__ import build_parser
from billops_cli.output import CliError, cell, plain, render_table, to_json
from billops_cli.progress import Progress
from billops_cli.targets import AwsTarget, LocalTarget, resolve_target
from botocore.stub import Stubber

# --- options ------------------------------------------------------------------------------------------------------


def test_target_and_output_options_go_before_or_after_the_command():
    parser = build_parser()
    before = parser.parse_args(["--stack", "billops-dev", "--json", "dlq", "list", "--queue", "operations"])
    after = parser.parse_args(["dlq", "list", "--queue", "operations", "--stack", "billops-dev", "--json"])
    for args in (before, after):
        assert (args.stack, args.json, args.queue, args.local) == ("billops-dev", True, "operations", False)
    neither = parser.parse_args(["subscriptions", "show", "0126015401000000123"])
    assert (neither.stack, neither.json, neither.local) == (None, False, False)


def test_every_command_is_there():
    parser = build_parser()
    for argv in (["api-keys", "create", "--name", "x"], ["api-keys", "list"], ["api-keys", "revoke", "key_x"],
                 ["subscriptions", "show", "1"], ["dlq", "list", "--queue", "projector"],
                 ["dlq", "replay", "--queue", "operations", "--dry-run", "--max", "5"],
                 ["quarantine", "list", "--since", "2026-11-01"], ["quarantine", "show", "abc"],
                 ["quarantine", "replay", "--all", "--dry-run"],
                 ["bulk", "discount", "--csv", "x.csv", "--amount", "2.00", "--key-prefix", "p"],
                 ["bulk", "cancel", "--csv", "x.csv", "--key-prefix", "p", "--wait"],
                 ["bulk", "extend", "--csv", "x.csv", "--days", "7", "--key-prefix", "p", "--run-at",
                  "2026-12-01T09:00:00Z"],
                 ["reconcile"], ["reconcile", "--subscription", "1", "--wait"]):
        assert callable(parser.parse_args(argv).handler), argv


@pytest.mark.parametrize("argv", [
    ["bulk", "discount", "--csv", "x.csv", "--key-prefix", "p"],  # --amount or --new-price
    ["bulk", "discount", "--csv", "x.csv", "--amount", "1", "--new-price", "9", "--key-prefix", "p"],
    ["bulk", "cancel", "--csv", "x.csv"],  # --key-prefix is required: it is what makes a re-run harmless
    ["bulk", "extend", "--csv", "x.csv", "--key-prefix", "p"],  # --days
    ["dlq", "list", "--queue", "elsewhere"],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 2


def test_usage_problems_found_later_exit_2_too(run_cli, tmp_path):
    assert run_cli("--local", "--stack", "x", "reconcile").code == 2
    assert run_cli("--region", "eu-west-1", "reconcile").code == 2
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text("subscription_id\n1\n")
    bad_amount = run_cli("bulk", "discount", "--csv", str(csv_file), "--amount", "2.001", "--key-prefix", "p")
    assert bad_amount.code == 2 and "invalid options" in bad_amount.err
    bad_prefix = run_cli("bulk", "cancel", "--csv", str(csv_file), "--key-prefix", "has space")
    assert bad_prefix.code == 2 and "--key-prefix" in bad_prefix.err


# --- targets ------------------------------------------------------------------------------------------------------


def test_local_target_follows_the_local_stack_ports_and_names():
    from billops_local.template_resources import physical_name

    target = resolve_target(env={"BILLOPS_AWS_PORT": "5123", "BILLOPS_API_PORT": "3123"})
    assert isinstance(target, LocalTarget)
    assert (target.aws_endpoint, target.api_url) == ("http://127.0.0.1:5123", "http://127.0.0.1:3123")
    assert target.table("SubscriptionsTable") == physical_name("SubscriptionsTable")
    assert target.event_bus() == physical_name("DomainEventBus")
    assert resolve_target(env={}).aws_endpoint == "http://127.0.0.1:5000"
    with pytest.raises(CliError):
        resolve_target(env={"BILLOPS_AWS_PORT": "nope"})


def test_the_stack_may_come_from_billops_stack_and_local_overrides_it():
    target = resolve_target(env={"BILLOPS_STACK": "billops-prod"}, region="eu-west-1")
    assert isinstance(target, AwsTarget) and target.stack_name == "billops-prod"
    assert target.description == "stack billops-prod (eu-west-1)"
    assert resolve_target(stack="billops-dev", env={"BILLOPS_STACK": "billops-prod"}).stack_name == "billops-dev"
    assert isinstance(resolve_target(local=True, env={"BILLOPS_STACK": "billops-prod"}), LocalTarget)
    assert isinstance(resolve_target(env={"BILLOPS_STACK": " "}), LocalTarget)


def test_local_queue_urls_are_looked_up_including_fifo_names(local_resources):
    target = resolve_target()
    assert target.queue_url("OperationsQueue") == local_resources.queue_url("OperationsQueue")
    assert target.queue_url("OperationsQueue").endswith(".fifo")
    assert target.queue_url("ProjectorDeadLetterQueue") == local_resources.queue_url("ProjectorDeadLetterQueue")


def test_local_target_never_sends_the_operators_credentials(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production-admin")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.example")
    target = resolve_target(env={"BILLOPS_AWS_PORT": "5123"})
    target.activate("EventsTable")
    import os

    assert "AWS_PROFILE" not in os.environ and "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5123"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["BILLOPS_EVENTS_TABLE"] == "billops-local-EventsTable"
    assert os.environ["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull


def _stack_target() -> tuple[AwsTarget, Stubber]:
    target = AwsTarget(description="stack billops-dev", stack_name="billops-dev", region="eu-west-1")
    cloudformation = target.client("cloudformation")
    return target, Stubber(cloudformation)


def test_a_stack_is_read_from_its_outputs_then_its_resources():
    target, stub = _stack_target()
    stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": "billops-dev", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "UPDATE_COMPLETE",
        "Parameters": [{"ParameterKey": "Environment", "ParameterValue": "dev"}],
        "Outputs": [{"OutputKey": "OperationsQueueUrl", "OutputValue": "https://sqs.eu-west-1.amazonaws.com/1/ops.fifo"},
                    {"OutputKey": "EventsTableName", "OutputValue": "billops-dev-EventsTable-ABC"},
                    {"OutputKey": "DomainEventBusName", "OutputValue": "billops-dev"}]}]},
        {"StackName": "billops-dev"})
    stub.add_response("describe_stack_resource", {"StackResourceDetail": {
        "LogicalResourceId": "ReconciliationFunction", "PhysicalResourceId": "billops-dev-reconciliation",
        "ResourceType": "AWS::Lambda::Function", "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
        "ResourceStatus": "UPDATE_COMPLETE"}},
        {"StackName": "billops-dev", "LogicalResourceId": "ReconciliationFunction"})
    with stub:
        assert target.queue_url("OperationsQueue") == "https://sqs.eu-west-1.amazonaws.com/1/ops.fifo"
        assert target.table("EventsTable") == "billops-dev-EventsTable-ABC"
        assert target.environment_name() == "dev"
        assert target.event_bus() == "billops-dev"
        assert target.physical_id("ReconciliationFunction") == "billops-dev-reconciliation"
        environment = target.library_environment(["EventsTable", "OperationsQueue"])
    stub.assert_no_pending_responses()
    assert environment["BILLOPS_EVENTS_TABLE"] == "billops-dev-EventsTable-ABC"
    assert environment["AWS_REGION"] == "eu-west-1" and "AWS_ENDPOINT_URL" not in environment


def test_a_missing_stack_is_a_clear_error():
    target, stub = _stack_target()
    stub.add_client_error("describe_stacks", "ValidationError", "Stack with id billops-dev does not exist")
    with stub, pytest.raises(CliError, match="does not exist"):
        target.table("EventsTable")


def test_reconcile_on_aws_invokes_the_function_and_reports_its_failure():
    target, stub = _stack_target()
    lambda_client = target.client("lambda", read_timeout=330)
    resource = {"StackResourceDetail": {
        "LogicalResourceId": "ReconciliationFunction", "PhysicalResourceId": "billops-dev-reconciliation",
        "ResourceType": "AWS::Lambda::Function", "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
        "ResourceStatus": "UPDATE_COMPLETE"}}
    from botocore.response import StreamingBody

    def payload(document) -> StreamingBody:
        data = json.dumps(document).encode()
        return StreamingBody(io.BytesIO(data), len(data))

    with stub, Stubber(lambda_client) as lambda_stub:
        stub.add_response("describe_stack_resource", resource)
        lambda_stub.add_response("invoke", {"StatusCode": 200, "Payload": payload({"errors": 0, "settled": {}})})
        assert target.run_schedule("ReconciliationFunction") == {"errors": 0, "settled": {}}
        stub.add_response("describe_stack_resource", resource)
        lambda_stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                            "Payload": payload({"errorMessage": "boom"})})
        with pytest.raises(CliError, match="boom"):
            target.run_schedule("ReconciliationFunction")


# --- output -------------------------------------------------------------------------------------------------------


def test_dynamodb_values_print_as_plain_json():
    assert plain({"a": Decimal(3), "b": Decimal("2.50"), "c": {1, 2}}) == {"a": 3, "b": "2.50", "c": [1, 2]}
    assert json.loads(to_json({"n": Decimal(7)})) == {"n": 7}
    assert cell(None) == "-" and cell(True) == "yes" and cell(["read", "write"]) == "read, write"


def test_tables_are_aligned_and_cut():
    text = render_table([{"a": "x", "b": "y" * 100}], [("a", "A"), ("b", "B")], max_width=10)
    lines = text.splitlines()
    assert lines[0].startswith("A  B") and lines[2].endswith("…") and len(lines[2]) == 13


# --- progress -----------------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_redraws_in_place_on_a_terminal():
    stream, clock = io.StringIO(), _Clock()
    with Progress(200, "sending", stream=stream, tty=True, clock=clock) as progress:
        for _ in range(20):
            clock.now += 0.5
            progress.advance(10)
    text = stream.getvalue()
    assert "\n" not in text.rstrip("\n") and text.endswith("\n")
    assert text.count("\r") == 22 and "200/200 100%" in text and "ETA" in text


def test_progress_prints_a_line_per_tenth_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(5000, "sending", stream=stream, tty=False) as progress:
        for _ in range(500):
            progress.advance(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in stream.getvalue()
    assert lines[0].endswith("0/5000   0%") and lines[-1].endswith("5000/5000 100%")


def test_progress_can_be_off():
    stream = io.StringIO()
    with Progress(10, "x", stream=stream, enabled=False) as progress:
        progress.advance(10)
    assert stream.getvalue() == ""
