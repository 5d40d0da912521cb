"""The AWS call recorder (billops_local.aws_call_recording) against moto's server: what a function's call becomes
(action, canonical resource ARN, condition values), who it is attributed to, and one file per process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from billops_local import aws_call_recording
from billops_local.aws_call_recording import Recorder, acting_as, not_recorded
from billops_local.aws_environment import LocalFunction, aws_client

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ACCOUNT = "123456789012"


def _lines(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("calls-*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def hooked(aws_tables, tmp_path):
    recorder = Recorder(tmp_path / "calls")

    def client(service: str):
        made = aws_client(service, aws_tables.endpoint_url)
        if aws_call_recording.recorder() is not None:  # make test's own recording: these calls are made up
            aws_call_recording.recorder().unhook(made)
        recorder.hook(made)
        return made

    return recorder, client


def test_a_functions_calls_are_recorded_as_iam_authorizes_them(aws_tables, hooked) -> None:
    recorder, client = hooked
    dynamodb, kms, sqs = client("dynamodb"), client("kms"), client("sqs")
    key_id = os.environ["BILLOPS_PII_KEY_ID"]
    queue_url = sqs.get_queue_url(QueueName="billops-local-OperationsQueue.fifo")["QueueUrl"]
    dynamodb.get_item(TableName=aws_tables.events_table, Key={"pk": {"S": "nothing"}})  # nobody's call: not kept
    with acting_as("MerchantApiFunction"):
        dynamodb.update_item(TableName="billops-local-ApiKeysTable", Key={"key_hash": {"S": "throttle#1.2.3.4#60"}},
                             UpdateExpression="SET a = :a", ExpressionAttributeValues={":a": {"S": "x"}})
        dynamodb.query(TableName=aws_tables.subscriptions_table, IndexName="by_status_created",
                       KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
                       ExpressionAttributeValues={":s": {"S": "active"}})
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256",
                              EncryptionContext={"billops:purpose": "subscriber-pii"})
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": "1", "MessageBody": "{}", "MessageGroupId": "g", "MessageDeduplicationId": "d"}])
        with not_recorded():
            sqs.purge_queue(QueueUrl=queue_url)
    recorded = {(line["action"], line["resource"]): line for line in _lines(recorder.directory)}
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/"
    assert set(recorded) == {
        ("dynamodb:UpdateItem", table + "billops-local-ApiKeysTable"),
        ("dynamodb:Query", table + "billops-local-SubscriptionsTable/index/by_status_created"),
        ("kms:GenerateDataKey", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/BillopsKey"),  # moto's random id, canonical
        ("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:billops-local-OperationsQueue.fifo"),
    }
    assert all(line["function"] == "MerchantApiFunction" and line["via"] == "handler" for line in recorded.values())
    assert recorded[("dynamodb:UpdateItem", table + "billops-local-ApiKeysTable")]["context"] == {
        "dynamodb:LeadingKeys": ["throttle#…"]}  # the item kind only: the rest is elided
    assert recorded[("kms:GenerateDataKey", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/BillopsKey")]["context"] == {
        "kms:CallerAccount": ACCOUNT, "kms:EncryptionContext:billops:purpose": "subscriber-pii",
        "kms:EncryptionContextKeys": ["billops:purpose"]}
    assert "test_a_functions_calls_are_recorded" in recorded[("sqs:SendMessage", next(
        resource for action, resource in recorded if action == "sqs:SendMessage"))]["seen_in"]


def test_a_decrypt_names_its_key_from_the_answer_and_secrets_lose_motos_suffix(aws_tables, hooked) -> None:
    recorder, client = hooked
    kms, secrets = client("kms"), client("secretsmanager")
    blob = kms.encrypt(KeyId=os.environ["BILLOPS_PII_KEY_ID"], Plaintext=b"x",
                       EncryptionContext={"billops:purpose": "ccbill-upgrade-enc"})["CiphertextBlob"]
    arn = secrets.create_secret(Name="billops-local-UpgradeLinkSigningSecret-test", SecretString="s")["ARN"]
    with acting_as("UpgradePageFunction"):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"billops:purpose": "ccbill-upgrade-enc"})
        secrets.get_secret_value(SecretId=arn)
    resources = {line["action"]: line["resource"] for line in _lines(recorder.directory)}
    assert resources == {
        "kms:Decrypt": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/BillopsKey",
        "secretsmanager:GetSecretValue":
            f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:billops-local-UpgradeLinkSigningSecret-test-000000",
    }


def test_the_local_stack_attributes_a_handlers_calls_to_its_function(aws_tables, hooked, tmp_path) -> None:
    recorder, client = hooked
    dynamodb = client("dynamodb")
    function = LocalFunction("billops-local-UpgradePageFunction", logical_id="UpgradePageFunction",
                             handler=lambda event, context: dynamodb.get_item(
                                 TableName=aws_tables.subscriptions_table, Key={"subscription_id": {"S": "1"}}))
    function.invoke({})
    (line,) = _lines(recorder.directory)
    assert (line["function"], line["action"]) == ("UpgradePageFunction", "dynamodb:GetItem")
    assert line["context"] == {"dynamodb:LeadingKeys": ["…"]}


def test_each_process_writes_its_own_file_and_the_check_merges_them(aws_tables, hooked) -> None:
    """pytest-xdist workers and local stacks record at the same time: one file per process, never shared."""
    from iam_check.checking import read_recordings

    recorder, client = hooked
    dynamodb = client("dynamodb")
    with acting_as("WebhookReceiverFunction"):
        dynamodb.get_item(TableName=aws_tables.events_table, Key={"pk": {"S": "a#1"}})
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            with acting_as("WebhookReceiverFunction"):
                dynamodb.get_item(TableName=aws_tables.events_table, Key={"pk": {"S": "a#2"}})
                dynamodb.put_item(TableName=aws_tables.events_table, Item={"pk": {"S": "b#1"}})
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    files = sorted(recorder.directory.glob("calls-*.jsonl"))
    assert [path.name for path in files] == sorted([f"calls-{os.getpid()}.jsonl", f"calls-{child}.jsonl"])
    merged = read_recordings([recorder.directory])
    assert sorted((call.action, tuple(call.context.get("dynamodb:LeadingKeys", ()))) for call in merged) == [
        ("dynamodb:GetItem", ("a#…",)), ("dynamodb:PutItem", ("b#…",))]  # the same call twice counts once


def test_a_service_the_recorder_does_not_know_is_reported_not_guessed(aws_tables, hooked) -> None:
    recorder, client = hooked
    events = client("events")
    scheduler_like = client("sts")
    with acting_as("ReconciliationFunction"):
        events.put_events(Entries=[{"Source": "billops", "DetailType": "t", "Detail": "{}",
                                    "EventBusName": "billops-local-DomainEventBus"}])
        scheduler_like.get_caller_identity()
    lines = {line["action"]: line for line in _lines(recorder.directory)}
    assert lines["events:PutEvents"]["resource"] == \
        f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/billops-local-DomainEventBus"
    assert lines["sts:GetCallerIdentity"]["resource"] is None and "teach" in lines["sts:GetCallerIdentity"][
        "unsupported"]
    assert aws_call_recording.RECORD_VARIABLE == "BILLOPS_RECORD_AWS_CALLS"
