"""The local stack's DynamoDB fault injection (billops_local.dynamodb_fault_injection), on moto in this process:
the faults the webhook suite counts on are the ones DynamoDB would give, and a client retrying as the receiver does
sees what the spec says."""

from __future__ import annotations

import socket

import pytest
from billops_local import dynamodb_fault_injection as faults
from billops_local.aws_environment import MotoServer, create_resources
from billops_local.template_resources import load_template
from botocore.config import Config


@pytest.fixture(scope="module")
def moto_tables():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = MotoServer("127.0.0.1", port)
    server.start()
    created = create_resources(load_template(), server.endpoint_url)
    yield server.endpoint_url, created.tables["EventsTable"].name, created.tables["SubscriptionsTable"].name
    faults.install_from_env({})
    server.stop()


@pytest.fixture(autouse=True)
def faults_off_afterwards():
    yield
    faults.install_from_env({})


def _client(endpoint: str):
    import boto3

    # The receiver's client: standard retries, max_attempts 3 (= 3 retries after the first attempt).
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}))


def _put(client, table: str, key: str) -> str:
    from botocore.exceptions import ClientError

    try:
        client.put_item(TableName=table, Item={"pk": {"S": key}}, ConditionExpression="attribute_not_exists(pk)")
        return "stored"
    except ClientError as error:
        return error.response["Error"]["Code"]


def _exists(client, table: str, key: str) -> bool:
    return "Item" in client.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)


def test_nothing_happens_unless_the_variable_is_set(moto_tables):
    endpoint, events, _ = moto_tables
    assert faults.install_from_env({}) is None
    client = _client(endpoint)
    assert [_put(client, events, f"off-{n}") for n in range(20)] == ["stored"] * 20


def test_every_kind_and_a_retry_exhausting_repeat(moto_tables):
    endpoint, events, _ = moto_tables
    client = _client(endpoint)
    injector = faults.install_from_env({faults.VARIABLE: "throttle:1,repeat:1,backoff_scale:0"})
    assert _put(client, events, "throttled") == "ProvisionedThroughputExceededException"
    assert not _exists(client, events, "throttled")
    assert injector.counts["throttle"] == 4 and injector.counts["repeated"] == 3  # 1 + 3 retries, all refused

    injector = faults.install_from_env({faults.VARIABLE: "error:1,repeat:1,backoff_scale:0"})
    assert _put(client, events, "erred") == "InternalServerError"
    assert not _exists(client, events, "erred")

    # Written, then an error; the client's retry meets its own item: the condition fails, as in DynamoDB.
    injector = faults.install_from_env({faults.VARIABLE: "error_after:1,backoff_scale:0"})
    assert _put(client, events, "written") == "ConditionalCheckFailedException"
    assert _exists(client, events, "written")
    assert injector.counts["error_after"] == 1

    # ... unless the error sticks for every retry: the caller sees an error for an item that is stored.
    injector = faults.install_from_env({faults.VARIABLE: "error_after:1,repeat:1,backoff_scale:0"})
    assert _put(client, events, "written-unconfirmed") == "InternalServerError"
    assert _exists(client, events, "written-unconfirmed")
    assert injector.counts == {**injector.counts, "error_after": 1, "error": 3, "faults": 4}


def test_a_retry_after_a_single_fault_succeeds_and_other_tables_are_left_alone(moto_tables):
    endpoint, events, subscriptions = moto_tables
    client = _client(endpoint)
    injector = faults.install_from_env({faults.VARIABLE: "throttle:0.5,seed:3,backoff_scale:0"})
    outcomes = [_put(client, events, f"mixed-{n}") for n in range(40)]
    assert injector.counts["throttle"] > 5
    assert outcomes.count("stored") >= 36  # four attempts at 50 % each: giving up is rare
    assert all(_exists(client, events, f"mixed-{n}") for n, outcome in enumerate(outcomes) if outcome == "stored")
    seen = injector.counts["put_items"]
    for n in range(10):
        client.put_item(TableName=subscriptions, Item={"subscription_id": {"S": f"untouched-{n}"}})
    assert injector.counts["put_items"] == seen


@pytest.mark.parametrize("spec", ["throttle", "throttle:2", "error:x", "nonsense:1", "attempts:0",
                                  "throttle:0.6,error:0.6", "backoff_scale:3"])
def test_a_bad_spec_is_refused_with_its_name(spec):
    with pytest.raises(faults.FaultSpecError, match=faults.VARIABLE):
        faults.FaultSpec.parse(spec)
