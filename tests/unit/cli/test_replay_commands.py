"""``billops dlq`` and ``billops quarantine`` against moto: what is sent back, what stays, what is recorded."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from billops_cli import replay_commands as replay
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

SUBSCRIPTION = "0126015401000000321"


# --- operations dead-letter queue -----------------------------------------------------------------------------------


def _operation(key: str, **extra) -> str:
    return json.dumps({"operation_type": "extend", "subscription_id": SUBSCRIPTION, "idempotency_key": key,
                       "parameters": {"days": 3}, **extra})


def _dead_letter(local_resources, body: str, *, dedup: str, reason: str | None = None) -> None:
    kwargs = {}
    if reason:
        kwargs["MessageAttributes"] = {"reason": {"DataType": "String", "StringValue": reason}}
    local_resources.client("sqs").send_message(QueueUrl=local_resources.queue_url("OperationsDeadLetterQueue"),
                                               MessageBody=body, MessageGroupId=SUBSCRIPTION,
                                               MessageDeduplicationId=dedup, **kwargs)


def _drain(local_resources, logical_id: str) -> list[dict]:
    """Every message of the queue, received and deleted."""
    sqs = local_resources.client("sqs")
    found: list[dict] = []
    while True:
        batch = sqs.receive_message(QueueUrl=local_resources.queue_url(logical_id), MaxNumberOfMessages=10,
                                    AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return found
        found.extend(batch)
        for message in batch:  # a FIFO group hands out its next messages once these are gone
            sqs.delete_message(QueueUrl=local_resources.queue_url(logical_id), ReceiptHandle=message["ReceiptHandle"])


def test_operations_dead_letters_go_back_unless_they_would_be_refused_again(local_resources, run_cli):
    _dead_letter(local_resources, _operation("ext-1"), dedup="ext-1")
    _dead_letter(local_resources, _operation("ext-2", priority="high"), dedup="bad",
                 reason="message_invalid: priority: Extra inputs are not permitted")
    _dead_letter(local_resources, _operation("ext-3"), dedup="conflict",
                 reason="idempotency_key_conflict: the key was already used for another request")

    listed = run_cli("dlq", "list", "--queue", "operations", "--json")
    assert listed.code == 0, listed.err
    views = {view.get("idempotency_key") or "invalid": view for view in listed.json()["messages"]}
    assert views["ext-1"]["reason"].startswith("failed on every receive")
    assert views["invalid"]["valid"] is False and "priority" in views["invalid"]["problem"]
    assert all("Body" not in view and "body" not in view for view in views.values())

    dry = run_cli("dlq", "replay", "--queue", "operations", "--dry-run", "--json")
    assert dry.code == 0 and dry.json()["counts"] == {"would_replay": 1, "kept": 2}
    assert not _drain(local_resources, "OperationsQueue")

    done = run_cli("dlq", "replay", "--queue", "operations", "--json")
    assert done.code == 1  # two stay: the command says so
    assert done.json()["counts"] == {"replayed": 1, "kept": 2}
    (sent,) = _drain(local_resources, "OperationsQueue")
    assert json.loads(sent["Body"])["idempotency_key"] == "ext-1"
    assert sent["Attributes"]["MessageGroupId"] == SUBSCRIPTION
    # Sent less than five minutes ago under "ext-1": SQS would drop that ID, so a fresh one is used.
    assert sent["Attributes"]["MessageDeduplicationId"] != "ext-1"
    left = _drain(local_resources, "OperationsDeadLetterQueue")
    assert sorted(m["Attributes"]["MessageDeduplicationId"] for m in left) == ["bad", "conflict"]


def test_a_message_left_at_the_head_of_its_group_does_not_hide_the_ones_behind_it(local_resources, run_cli):
    _dead_letter(local_resources, _operation("head", priority="high"), dedup="head", reason="message_invalid: x")
    for index in range(11):
        _dead_letter(local_resources, _operation(f"behind-{index}"), dedup=f"behind-{index}")
    done = run_cli("dlq", "replay", "--queue", "operations", "--json")
    assert done.json()["counts"] == {"replayed": 11, "kept": 1}
    sent = [json.loads(m["Body"])["idempotency_key"] for m in _drain(local_resources, "OperationsQueue")]
    assert sent == [f"behind-{index}" for index in range(11)]  # in their original order
    (left,) = _drain(local_resources, "OperationsDeadLetterQueue")
    assert left["Attributes"]["MessageDeduplicationId"] == "head"


def test_force_sends_even_what_would_be_refused(local_resources, run_cli):
    _dead_letter(local_resources, _operation("ext-9", priority="high"), dedup="bad", reason="message_invalid: x")
    done = run_cli("dlq", "replay", "--queue", "operations", "--force", "--json")
    assert done.code == 0 and done.json()["counts"] == {"replayed": 1}
    assert len(_drain(local_resources, "OperationsQueue")) == 1


def test_the_original_deduplication_id_is_kept_once_sqs_has_forgotten_it():
    old = {"MessageId": "m1", "Attributes": {"MessageDeduplicationId": "key-1", "SentTimestamp": "1000"}}
    now = datetime.fromtimestamp(1, UTC) + timedelta(minutes=6)
    assert replay.deduplication_id_for(old, now) == "key-1"
    recent = replay.deduplication_id_for(old, datetime.fromtimestamp(1, UTC) + timedelta(minutes=4))
    assert recent != "key-1" and len(recent) == 64
    assert recent == replay.deduplication_id_for(old, datetime.fromtimestamp(1, UTC) + timedelta(minutes=4))


# --- projector dead-letter queue ------------------------------------------------------------------------------------


def _store_delivery(local_resources, event_type: str = "NewSaleSuccess", **overrides) -> str:
    from billops.settings import Settings
    from billops.storage.events_table import EventsTable
    from billops.webhooks.intake import WebhookIntake

    fields = sample_fields(event_type, subscriptionId=SUBSCRIPTION, **overrides)
    body, content_type = encode_body(fields, "urlencoded")
    events = EventsTable(local_resources.table("EventsTable"), local_resources.client("dynamodb"))
    result = WebhookIntake(Settings(environment="local"), events, cipher=_cipher(local_resources)).replay(
        body, content_type, webhook_query(event_type, fields, None))
    assert result.status == 200, result.body
    return str(result.key)


def _cipher(local_resources):
    """The receiver's encryption of personal data, under the stack's key (moto's KMS)."""
    from billops.privacy.field_encryption import FieldCipher

    return FieldCipher(local_resources.created.kms_keys["BillopsKey"].key_id, lambda: local_resources.client("kms"))


def _log_deliveries(local_resources) -> None:
    """What the projector does first with every stream batch, even one it then fails to fold: log its deliveries."""
    from billops.storage.delivery_log_table import DeliveryLogTable, entries_from_stream

    streams = local_resources.client("dynamodbstreams")
    arn = local_resources.stream_arn()
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator)["Records"])
    DeliveryLogTable(local_resources.table("DeliveryLogTable"),
                     local_resources.client("dynamodb")).record(entries_from_stream(records))


def _on_failure_record(local_resources, shard: str | None = None) -> dict:
    streams = local_resources.client("dynamodbstreams")
    arn = local_resources.stream_arn()
    shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    return {
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": "arn:aws:lambda:::function:projector",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2026-11-22T10:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": shard or shard_id, "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": first["ApproximateCreationDateTime"].isoformat(),
            "approximateArrivalOfLastRecord": last["ApproximateCreationDateTime"].isoformat(),
            "batchSize": len(records), "streamArn": arn},
    }


def _subscription(local_resources) -> dict | None:
    from billops.storage.subscriptions_table import SubscriptionsTable

    return SubscriptionsTable(local_resources.table("SubscriptionsTable"), local_resources.client("dynamodb"),
                              local_resources.table("SubscriptionHistoryTable")).get(SUBSCRIPTION)


@pytest.mark.parametrize("from_stream", [True, False])
def test_a_dead_lettered_stream_batch_is_folded_into_the_subscription(local_resources, run_cli, from_stream,
                                                                       monkeypatch):
    sale = _store_delivery(local_resources, transactionId=SUBSCRIPTION)
    renewal = _store_delivery(local_resources, "RenewalSuccess")
    _log_deliveries(local_resources)
    record = _on_failure_record(local_resources)
    if not from_stream:  # older than the stream's 24 hours (moto cannot trim): found by their arrival times
        def trimmed(*_args, **_kwargs):
            raise replay.StreamGone("TrimmedDataAccessException")

        monkeypatch.setattr(replay, "keys_from_stream", trimmed)
    sqs = local_resources.client("sqs")
    sqs.send_message(QueueUrl=local_resources.queue_url("ProjectorDeadLetterQueue"), MessageBody=json.dumps(record))

    listed = run_cli("dlq", "list", "--queue", "projector", "--json").json()["messages"]
    assert listed[0]["batch_size"] == 2 and listed[0]["condition"] == "RetryAttemptsExhausted"

    dry = run_cli("dlq", "replay", "--queue", "projector", "--dry-run", "--json")
    assert dry.code == 0 and dry.json()["messages"][0]["deliveries"] == {"would_apply": 2}
    assert _subscription(local_resources) is None

    done = run_cli("dlq", "replay", "--queue", "projector", "--json")
    assert done.code == 0, done.err
    (message,) = done.json()["messages"]
    assert message["outcome"] == "replayed" and message["deliveries"] == {"applied": 2}
    assert message["keys"] == [sale, renewal]
    assert message["source"] == "stream" if from_stream else message["source"].startswith("events received")
    folded = _subscription(local_resources)
    assert folded["status"] == "active" and folded["times_rebilled"] == 1
    assert not _drain(local_resources, "ProjectorDeadLetterQueue")

    # Replaying the same batch again changes nothing (the fold ignores what it has).
    sqs.send_message(QueueUrl=local_resources.queue_url("ProjectorDeadLetterQueue"), MessageBody=json.dumps(record))
    again = run_cli("dlq", "replay", "--queue", "projector", "--json").json()["messages"][0]
    assert again["deliveries"] == {"already_applied": 2}
    assert _subscription(local_resources)["revision"] == folded["revision"]


def test_a_message_that_is_no_on_failure_record_stays(local_resources, run_cli):
    sqs = local_resources.client("sqs")
    sqs.send_message(QueueUrl=local_resources.queue_url("ProjectorDeadLetterQueue"), MessageBody="hello")
    done = run_cli("dlq", "replay", "--queue", "projector", "--json")
    assert done.code == 1 and done.json()["counts"] == {"kept": 1}
    assert len(_drain(local_resources, "ProjectorDeadLetterQueue")) == 1


# --- quarantine -----------------------------------------------------------------------------------------------------


def _quarantine(local_resources, fields: dict, event_type: str, reason: str, param: str | None,
                body_format: str = "urlencoded", age: timedelta = timedelta(hours=3)) -> str:
    """What a receiver stored when it refused the delivery (its own _quarantine writes it)."""
    from billops.settings import Settings
    from billops.storage.events_table import EventsTable
    from billops.webhooks.delivery_decoding import MalformedDelivery
    from billops.webhooks.intake import WebhookIntake, WebhookRequest

    body, content_type = encode_body(fields, body_format)
    events = EventsTable(local_resources.table("EventsTable"), local_resources.client("dynamodb"))
    request = WebhookRequest("64.38.240.10", webhook_query(event_type, fields, "a-token"),
                             {"content-type": content_type}, base64.b64encode(body).decode(), True)
    result = WebhookIntake(Settings(environment="local"), events, cipher=_cipher(local_resources))._quarantine(
        request, body, datetime.now(UTC) - age, MalformedDelivery(reason, param))
    _log_deliveries(local_resources)
    return str(result.key)


def _event(local_resources, key: str) -> dict | None:
    from billops.storage.events_table import EventsTable

    return EventsTable(local_resources.table("EventsTable"), local_resources.client("dynamodb")).get(key)


def test_quarantined_deliveries_are_listed_replayed_and_marked(local_resources, run_cli):
    fixed = _quarantine(local_resources, sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION,
                                                       transactionId=SUBSCRIPTION, bin="41111111"),
                        "NewSaleSuccess", "bin: must be 6 digits", "bin")
    broken_fields = sample_fields("Cancellation", subscriptionId=SUBSCRIPTION)
    del broken_fields["subscriptionId"]
    broken = _quarantine(local_resources, broken_fields, "Cancellation", "an older reason", "x", "json")

    listed = run_cli("quarantine", "list", "--json")
    assert listed.code == 0, listed.err
    assert {view["key"] for view in listed.json()["deliveries"]} == {fixed, broken}
    assert "someone" not in listed.out and "example.com" not in listed.out  # no personal data in a listing

    dry = run_cli("quarantine", "replay", "--all", "--dry-run", "--json")
    assert dry.code == 1
    assert dry.json()["counts"] == {"would_store": 1, "still_malformed": 1}
    assert _event(local_resources, f"NewSaleSuccess#txn#{SUBSCRIPTION}") is None
    assert "replay_attempts" not in _event(local_resources, broken)

    done = run_cli("quarantine", "replay", "--all", "--json")
    assert done.code == 1
    results = {result["key"]: result for result in done.json()["deliveries"]}
    assert results[fixed]["outcome"] == "replayed"
    assert results[broken]["outcome"] == "still_malformed" and results[broken]["param"] == "subscriptionId"

    delivery = _event(local_resources, f"NewSaleSuccess#txn#{SUBSCRIPTION}")
    assert delivery["record_type"] == "delivery" and delivery["replayed_from"] == fixed
    marked = _event(local_resources, fixed)
    assert marked["record_type"] == "quarantine"  # kept, never deleted
    assert (marked["replay_outcome"], marked["replayed_as"]) == ("accepted", delivery["pk"])
    assert marked["replayed_by"] and marked["replay_attempts"][0]["previous_reason"] == "bin: must be 6 digits"
    still = _event(local_resources, broken)
    assert (still["reason"], still["param"]) == ("subscriptionId is required", "subscriptionId")
    assert "replayed_at" not in still and still["replay_attempts"][0]["previous_reason"] == "an older reason"

    remaining = run_cli("quarantine", "list", "--json").json()["deliveries"]
    assert [view["key"] for view in remaining] == [broken]
    assert len(run_cli("quarantine", "list", "--all", "--json").json()["deliveries"]) == 2

    once_more = run_cli("quarantine", "replay", fixed.removeprefix("quarantine#"), "--json")
    assert once_more.code == 0 and once_more.json()["deliveries"][0]["outcome"] == "already_replayed"
    forced = run_cli("quarantine", "replay", fixed, "--again", "--json")
    assert forced.code == 0 and forced.json()["deliveries"][0]["outcome"] == "replayed_duplicate"


def test_show_hides_the_raw_body_unless_revealed(local_resources, run_cli):
    fields = sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION, transactionId=SUBSCRIPTION)
    key = _quarantine(local_resources, fields, "NewSaleSuccess", "some reason", None)
    hidden = run_cli("quarantine", "show", key)
    assert hidden.code == 0 and fields["email"] not in hidden.out and "--reveal" in hidden.out
    shown = run_cli("quarantine", "show", key, "--reveal", "--json")
    assert fields["email"].replace("@", "%40") in shown.json()["raw_body"]
    assert "password=[redacted]" in shown.json()["raw_body"]
    missing = run_cli("quarantine", "show", "0" * 64)
    assert missing.code == 1 and "no quarantined delivery" in missing.err


def test_replay_needs_keys_or_all(local_resources, run_cli):
    assert run_cli("quarantine", "replay").code == 2


def test_control_characters_from_webhook_data_are_shown_escaped(local_resources, run_cli):
    """Security review: a stranger's eventType or body printed raw could clear the screen, retitle the window or
    hide what follows (ESC sequences, bidi overrides). The listing and --reveal show them as escapes."""
    from billops.settings import Settings
    from billops.storage.events_table import EventsTable
    from billops.webhooks.delivery_decoding import MalformedDelivery
    from billops.webhooks.intake import WebhookIntake, WebhookRequest

    event_type = "Cancel\x1b]0;owned\x07lation\u202e"
    raw = '{"subscriptionId": "0126\x1b[2J\x1b[31m", "note": "line one\nline two\r\x9b1A"}'.encode()
    events = EventsTable(local_resources.table("EventsTable"), local_resources.client("dynamodb"))
    request = WebhookRequest("64.38.240.10", {"token": "a-token", "eventType": event_type},
                             {"content-type": "application/json"}, base64.b64encode(raw).decode(), True)
    key = str(WebhookIntake(Settings(environment="local"), events, cipher=_cipher(local_resources))._quarantine(
        request, raw, datetime.now(UTC) - timedelta(hours=1), MalformedDelivery("bad\x1b[8m reason", "x")).key)
    _log_deliveries(local_resources)

    for listed in (run_cli("quarantine", "list"), run_cli("quarantine", "list", "--json"),
                   run_cli("quarantine", "show", key, "--reveal"), run_cli("quarantine", "show", key, "--reveal",
                                                                          "--json")):
        assert listed.code == 0, listed.err
        for char in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
            assert char not in listed.out, (repr(char), listed.out)
    human = run_cli("quarantine", "list").out
    assert "Cancel\\x1b]0;owned\\x07lation\\u202e" in human and "bad\\x1b[8m reason" in human
    revealed = run_cli("quarantine", "show", key, "--reveal").out
    assert "0126\\x1b[2J\\x1b[31m" in revealed and "line one\nline two\\x0d\\x9b1A" in revealed  # newlines kept
    as_json = run_cli("quarantine", "show", key, "--reveal", "--json").json()
    assert as_json["event_type"] == event_type  # the JSON document still carries the exact text
