"""Deliveries stored by the receiver, carried by the table's stream to the projector, folded into subscriptions."""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

import pytest

from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

TOKEN = "projector-test-token"
SUB = "0117240102000000777"


@pytest.fixture
def stack(aws_tables, monkeypatch, lambda_context, handler_loader):
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    receiver = handler_loader("webhook_receiver")
    projector = handler_loader("subscription_projector")

    class Stack:
        tables = aws_tables

        def post(self, event_type: str, body_format: str = "json", **overrides: str) -> int:
            fields = sample_fields(event_type, subscriptionId=SUB, **overrides)
            body, content_type = encode_body(fields, body_format)
            event = http_api_event("POST", "/webhooks/ccbill", urlencode(webhook_query(event_type, fields, TOKEN)),
                                   {"content-type": content_type}, body, "64.38.212.20")
            return receiver.handler(event, lambda_context)["statusCode"]

        def project(self) -> dict:
            records = aws_tables.new_stream_records()
            return projector.handler({"Records": records}, lambda_context) if records else {"batchItemFailures": []}

    return Stack()


LIFECYCLE = [
    ("NewSaleSuccess", {"transactionId": SUB, "timestamp": "2026-01-01 10:00:00", "subscriptionRecurringPrice": "19.95",
                        "subscriptionCurrencyCode": "840", "nextRenewalDate": "2026-01-31"}),
    ("RenewalSuccess", {"transactionId": "0117240102000000801", "timestamp": "2026-01-31 10:00:00",
                        "nextRenewalDate": "2026-03-02"}),
    ("RenewalFailure", {"transactionId": "0117240102000000802", "timestamp": "2026-03-02 10:00:00",
                        "failureCode": "BE-31", "failureReason": "Insufficient Funds"}),
    ("RenewalSuccess", {"transactionId": "0117240102000000803", "timestamp": "2026-03-05 10:00:00",
                        "nextRenewalDate": "2026-04-04"}),
    ("Chargeback", {"transactionId": "0117240102000000804", "timestamp": "2026-03-10 10:00:00"}),
    ("Cancellation", {"timestamp": "2026-03-11 10:00:00", "reason": "Customer Request"}),
]


def _state(stack) -> dict:
    subscription = stack.tables.subscription(SUB)
    assert subscription is not None
    return subscription


def test_lifecycle_becomes_one_up_to_date_record(stack):
    for event_type, overrides in LIFECYCLE:
        assert stack.post(event_type, **overrides) == 200
    assert stack.project() == {"batchItemFailures": []}
    record = _state(stack)
    assert record["status"] == "cancelled"
    assert record["recurring_price"] == "19.95" and record["currency"] == "USD"
    assert record["times_rebilled"] == 2 and record["chargebacks"] == 1
    assert record["last_renewal_failure"]["decline_text"] == "Insufficient Funds"
    assert record["next_renewal_date"] == "2026-04-04"
    assert [entry["event_type"] for entry in record["history"]] == [event for event, _ in LIFECYCLE]
    assert record["subscriber"]["email"]  # personal data kept apart, in one map
    assert "password" not in json.dumps(record, default=str)


def test_shuffled_duplicated_deliveries_converge_to_the_ordered_state(stack):
    for event_type, overrides in LIFECYCLE:
        stack.post(event_type, **overrides)
    stack.project()
    ordered = _state(stack)

    stack.tables.dynamodb.delete_item(TableName=stack.tables.subscriptions_table,
                                      Key={"subscription_id": {"S": SUB}})
    rng = random.Random(3)
    deliveries = LIFECYCLE * 3
    rng.shuffle(deliveries)
    for event_type, overrides in deliveries:
        assert stack.post(event_type, body_format=rng.choice(["json", "urlencoded"]), **overrides) == 200
        if rng.random() < 0.5:
            stack.project()
    stack.project()
    # The events table already held every delivery: replaying the whole stream rebuilds the same record.
    stack.tables._iterators.clear()
    stack.project()
    shuffled = _state(stack)
    for volatile in ("created_at", "updated_at", "revision"):
        ordered.pop(volatile), shuffled.pop(volatile)
    assert shuffled == ordered


def test_a_renewal_before_its_sale_is_not_lost(stack):
    renewal_type, renewal = LIFECYCLE[1]
    stack.post(renewal_type, **renewal)
    stack.project()
    early = _state(stack)
    assert early["times_rebilled"] == 1 and early["known_from_sale"] is False
    sale_type, sale = LIFECYCLE[0]
    stack.post(sale_type, **sale)
    stack.project()
    record = _state(stack)
    assert record["known_from_sale"] is True and record["recurring_price"] == "19.95"
    assert record["times_rebilled"] == 1


def test_quarantined_and_failure_events_do_not_create_subscriptions(stack):
    assert stack.post("NewSaleSuccess", eventType="RenewalSuccess") == 400  # a contradictory identity: quarantined
    fields_without_subscription = sample_fields("NewSaleFailure")
    assert "subscriptionId" not in fields_without_subscription
    stack.project()
    assert stack.tables.subscription(SUB) is None


def test_personal_fields_are_copied_encrypted_newest_value_first_with_the_data_keys_they_need(stack, monkeypatch):
    from billops.privacy import field_encryption
    from billops.privacy.field_encryption import FieldCipher, data_key_references, is_encrypted
    from billops.privacy.subscriber_view import revealed_subscriber

    monkeypatch.setenv("BILLOPS_PII_DATA_KEY_MAX_MESSAGES", "12")  # a new data key for (almost) every delivery
    field_encryption.reset_default_cipher()
    # The newer address arrives first; the older sale must not overwrite it.
    assert stack.post("CustomerDataUpdate", timestamp="2026-02-01 10:00:00", email="new.address@example.org",
                      transactionId="0117240102000000901", username=None) == 200
    assert stack.post("NewSaleSuccess", timestamp="2026-01-01 10:00:00", transactionId=SUB,
                      email="old.address@example.org", username="janesale") == 200
    receiver_cipher = field_encryption.default_cipher()
    assert receiver_cipher.kms_requests == 2  # two data keys: the record needs both

    # The projector never decrypts: with KMS out of reach it still folds both deliveries.
    def no_kms():
        raise AssertionError("the projector called KMS")

    monkeypatch.setattr(field_encryption, "_default", FieldCipher(None, no_kms))
    assert stack.project() == {"batchItemFailures": []}
    record = _state(stack)
    stored = json.dumps(record, default=str)
    assert "@example.org" not in stored and "janesale" not in stored
    assert all(is_encrypted(value) for value in record["subscriber"].values())
    assert set(record["subscriber_keys"]) == data_key_references(record["subscriber"].values())
    assert len(record["subscriber_keys"]) == 2

    monkeypatch.setattr(field_encryption, "_default", receiver_cipher)
    clear = revealed_subscriber(record)
    assert clear["email"] == "new.address@example.org"  # the newest value of each field wins
    assert clear["username"] == "janesale"  # only the sale carried it


@pytest.mark.parametrize("event_type", ["NewSaleFailure", "UpgradeFailure", "UpSaleFailure", "CrossSaleFailure"])
def test_a_declined_purchase_naming_a_subscription_never_makes_it_active(stack, event_type):
    assert stack.post(event_type, transactionId="0117240102000000990", timestamp="2026-01-01 09:00:00",
                      failureCode="BE-31", failureReason="Insufficient Funds") == 200
    assert stack.project() == {"batchItemFailures": []}
    record = _state(stack)
    assert record["status"] == "declined" and record["known_from_sale"] is False
    assert [entry["event_type"] for entry in record["history"]] == [event_type]
    # The sale CCBill then approved under that ID makes it active, whatever the order.
    sale_type, sale = LIFECYCLE[0]
    assert stack.post(sale_type, **sale) == 200
    stack.project()
    assert _state(stack)["status"] == "active"


def test_a_declined_purchase_never_reactivates_an_expired_subscription(stack):
    sale_type, sale = LIFECYCLE[0]
    stack.post(sale_type, **sale)
    stack.post("Expiration", timestamp="2026-03-01 10:00:00")
    stack.project()
    assert _state(stack)["status"] == "expired"
    for number, event_type in enumerate(["NewSaleFailure", "UpgradeFailure", "UpSaleFailure", "CrossSaleFailure"]):
        assert stack.post(event_type, transactionId=f"011724010200000095{number}", timestamp="2026-03-05 10:00:00",
                          clientSubacc="0001") == 200
    stack.project()
    record = _state(stack)
    assert record["status"] == "expired" and record["client_subacc"] == "0000" and record["event_count"] == 6


def test_a_reactivation_sorts_after_an_expiration_received_before_it_even_one_stamped_later(stack):
    """CCBill's clock or time zone ahead of ours: the expiration reads a later time than our clock when the
    reactivation arrives. CCBill sent the expiration first, so the reactivation wins."""
    sale_type, sale = LIFECYCLE[0]
    stack.post(sale_type, **sale)
    assert stack.post("Expiration", timestamp="2099-01-01 10:00:00") == 200
    stack.project()
    assert _state(stack)["status"] == "expired"
    assert stack.post("UserReactivation", nextRenewalDate="2099-02-01") == 200
    stack.project()
    record = _state(stack)
    assert record["status"] == "active" and record.get("expired_at") is None
    assert [entry["event_type"] for entry in record["history"]] == ["NewSaleSuccess", "Expiration",
                                                                      "UserReactivation"]


def test_a_batchs_subscription_changes_are_put_ten_to_a_call_and_a_refused_call_loses_only_its_own(
        aws_tables, monkeypatch, lambda_context, handler_loader):
    """SubscriptionChanged events are put once the batch is folded, 10 per PutEvents (EventBridge's limit), not one
    call per fold; a call EventBridge refuses is logged and counted, and the batch's other calls are still made."""
    import boto3

    from billops.storage.aws_clients import aws_client

    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="projector-test-bus")
    queue_url = sqs.create_queue(QueueName="projector-test-consumer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="projector-test-bus", EventPattern=json.dumps({"source": ["billops"]}))
    events.put_targets(Rule="all", EventBusName="projector-test-bus", Targets=[{"Id": "consumer", "Arn": queue_arn}])
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("BILLOPS_EVENT_BUS_NAME", "projector-test-bus")
    receiver = handler_loader("webhook_receiver")
    projector = handler_loader("subscription_projector")
    subscriptions = [f"01172401020000{index:05d}" for index in range(23)]
    for subscription_id in subscriptions:
        fields = sample_fields("NewSaleSuccess", subscriptionId=subscription_id, transactionId=subscription_id)
        body, content_type = encode_body(fields, "json")
        event = http_api_event("POST", "/webhooks/ccbill", urlencode(webhook_query("NewSaleSuccess", fields, TOKEN)),
                               {"content-type": content_type}, body, "64.38.212.20")
        assert receiver.handler(event, lambda_context)["statusCode"] == 200

    puts: list[int] = []
    aws_client("events").meta.events.register(
        "provide-client-params.eventbridge.PutEvents", lambda params, **_: puts.append(len(params["Entries"])))
    publish = projector.projector.publisher.publish
    refused = []

    def first_call_refused(chunk):
        if not refused:
            refused.append([event.detail["subscription_id"] for event in chunk])
            from billops.domain_events.publishing import DomainEventsUnavailable

            raise DomainEventsUnavailable("injected: PutEvents refused 10 of 10 events")
        publish(chunk)

    monkeypatch.setattr(projector.projector.publisher, "publish", first_call_refused)
    records = aws_tables.new_stream_records()
    assert len(records) == 23
    assert projector.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}
    assert puts == [10, 3]  # 23 events: the first 10 refused, then 10 and 3 put
    received = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        received.extend(json.loads(message["Body"])["detail"]["subscription_id"] for message in messages)
    assert len(refused[0]) == 10
    assert sorted(received) == sorted(set(subscriptions) - set(refused[0]))


def test_a_batch_reads_its_subscriptions_with_one_request_and_folds_each_on_the_state_it_wrote(
        aws_tables, monkeypatch, lambda_context, handler_loader):
    """Ten sales and their renewals in one stream batch: one BatchGetItem reads the ten state items (none exist
    yet), and each renewal is looked at on the item its sale's fold wrote (kept from the batch), so no GetItem and no
    refused conditional write; every record ends up right."""
    from billops.storage.aws_clients import aws_client

    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    receiver = handler_loader("webhook_receiver")
    projector = handler_loader("subscription_projector")
    subscriptions = [f"01172401020000{index:05d}" for index in range(10)]
    posted = [("NewSaleSuccess", {"transactionId": subscription_id, "timestamp": "2026-01-01 10:00:00",
                                  "nextRenewalDate": "2026-01-31"}) for subscription_id in subscriptions]
    posted += [("RenewalSuccess", {"transactionId": f"02{subscription_id[2:]}", "timestamp": "2026-01-31 10:00:00",
                                   "nextRenewalDate": "2026-03-02"}) for subscription_id in subscriptions]
    for index, (event_type, overrides) in enumerate(posted):
        fields = sample_fields(event_type, subscriptionId=subscriptions[index % 10], **overrides)
        body, content_type = encode_body(fields, "json")
        event = http_api_event("POST", "/webhooks/ccbill", urlencode(webhook_query(event_type, fields, TOKEN)),
                               {"content-type": content_type}, body, "64.38.212.20")
        assert receiver.handler(event, lambda_context)["statusCode"] == 200

    calls: list[tuple[str, list[str]]] = []

    def seen(params, model, **_):
        tables = list(params.get("RequestItems") or {}) or [params.get("TableName")]
        calls.append((model.name, tables))

    aws_client("dynamodb").meta.events.register("provide-client-params.dynamodb", seen)
    records = aws_tables.new_stream_records()
    assert len(records) == 20
    outcomes = []
    apply = projector.projector.apply
    monkeypatch.setattr(projector.projector, "apply", lambda delivery: outcomes.append(apply(delivery)) or outcomes[-1])
    assert projector.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}
    import os

    table = os.environ["BILLOPS_SUBSCRIPTIONS_TABLE"]
    on_states = [name for name, tables in calls if table in tables]
    assert on_states.count("BatchGetItem") == 1
    assert "GetItem" not in on_states
    # A new subscription's first fold replays its history, which already holds the renewal (a batch's history
    # entries are written before it is folded); the renewal then finds itself folded in the item that fold kept.
    assert outcomes == ["applied"] * 10 + ["already_applied"] * 10
    assert on_states.count("PutItem") == 10
    for subscription_id in subscriptions:
        record = aws_tables.subscription(subscription_id)
        assert record["status"] == "active" and record["times_rebilled"] == 1
        assert record["next_renewal_date"] == "2026-03-02"
