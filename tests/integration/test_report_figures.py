"""The daily figures, counted by the projector from the events stream, under the faults the fold is tested with:
redelivered batches, out-of-order and duplicated deliveries, a batch whose fold fails half way, a figures write
that happened although DynamoDB answered an error, a batch split over several transactions that fails between
them, two containers counting the same deliveries at once. Every case must end with the figures of counting each
delivery once (moto's DynamoDB, the real receiver and projector handlers)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import date
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from billops_local.http_api_events import http_api_event
from billops_local.template_resources import physical_name
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

TOKEN = "report-figures-token"
S1, S2, S3 = "0126110101000000101", "0126110101000000102", "0126110101000000103"
ACCOUNT = {"clientAccnum": "900100", "clientSubacc": "0000"}

# A small November: three sales (one a 3-day trial, one weekly), a renewal, a declined renewal and a declined
# purchase, a chargeback, a refund, a cancellation and an expiration (docs/reports.md for the definitions).
NOVEMBER = [
    ("NewSaleSuccess", dict(subscriptionId=S1, transactionId=S1, timestamp="2026-11-01 10:00:00",
                            accountingInitialPrice="19.95", accountingRecurringPrice="19.95", initialPeriod="30",
                            recurringPeriod="30", nextRenewalDate="2026-12-01", cardType="VISA")),
    ("NewSaleSuccess", dict(subscriptionId=S2, transactionId=S2, timestamp="2026-11-02 10:00:00",
                            accountingInitialPrice="2.95", accountingRecurringPrice="29.95", initialPeriod="3",
                            recurringPeriod="30", nextRenewalDate="2026-11-05", cardType="MASTERCARD")),
    ("NewSaleSuccess", dict(subscriptionId=S3, transactionId=S3, timestamp="2026-11-03 10:00:00",
                            accountingInitialPrice="9.99", accountingRecurringPrice="9.99", initialPeriod="7",
                            recurringPeriod="7", nextRenewalDate="2026-11-10", cardType="VISA")),
    ("RenewalSuccess", dict(subscriptionId=S2, transactionId="0126110501000000201", timestamp="2026-11-05 10:00:00",
                            accountingAmount="29.95", renewalDate="2026-11-05", nextRenewalDate="2026-12-05",
                            cardType="MASTERCARD")),
    ("RenewalFailure", dict(subscriptionId=S3, transactionId="0126111001000000202", timestamp="2026-11-10 10:00:00",
                            failureCode="BE-31", failureReason="Insufficient Funds", cardType="VISA")),
    ("Expiration", dict(subscriptionId=S3, timestamp="2026-11-13 10:00:00")),
    ("Chargeback", dict(subscriptionId=S1, transactionId="0126111501000000203", timestamp="2026-11-15 10:00:00",
                        accountingAmount="19.95", cardType="VISA")),
    ("Refund", dict(subscriptionId=S2, transactionId="0126112001000000204", timestamp="2026-11-20 10:00:00",
                    accountingAmount="29.95", cardType="MASTERCARD")),
    ("Cancellation", dict(subscriptionId=S2, timestamp="2026-11-21 10:00:00")),
    ("NewSaleFailure", dict(transactionId="0126112201000000205", timestamp="2026-11-22 10:00:00",
                            failureCode="BE-24", failureReason="Transaction Denied by Bank")),
]

EXPECTED_NOVEMBER = {
    "from": "2026-11-01", "to": "2026-11-30", "client_subacc": None,
    "sales": {"count": 3, "amount": "32.89"},
    "renewals": {"count": 1, "amount": "29.95", "success_rate": 0.5},
    "declines": {"count": 2, "sales": 1, "renewals": 1,
                 "by_code": {"24": {"count": 1, "text": "Transaction Denied by Bank"},
                             "31": {"count": 1, "text": "Insufficient Funds"}},
                 "by_reason": {"Insufficient Funds": 1, "Transaction Denied by Bank": 1}},
    "refunds": {"count": 1, "amount": "29.95"}, "voids": {"count": 0, "amount": "0.00"},
    "returns": {"count": 0, "amount": "0.00"},
    "chargebacks": {"count": 1, "amount": "19.95", "by_card_type": {"VISA": {"count": 1, "amount": "19.95"}}},
    "chargeback_ratio": 0.25, "refund_ratio": 0.25, "cancellations": 1, "expirations": 1,
    # S1 (paid to 12-01) and S2's renewal (to 12-05); S3's week ended on 11-10.
    "active_subscriptions": 2, "mrr": "49.90", "currency": "USD", "unconverted": {},
}
# (active, MRR) at the end of some days: the trial (29.95 normalised) and the weekly plan (9.99 x 30 / 7 = 42.81).
EXPECTED_DAYS = {"2026-11-01": (1, "19.95"), "2026-11-02": (2, "49.90"), "2026-11-03": (3, "92.71"),
                 "2026-11-05": (3, "92.71"), "2026-11-09": (3, "92.71"), "2026-11-10": (2, "49.90"),
                 "2026-11-30": (2, "49.90")}


@pytest.fixture
def stack(aws_tables, monkeypatch, lambda_context, handler_loader):
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("BILLOPS_REPORTS_TABLE", physical_name("ReportsTable"))
    monkeypatch.setenv("BILLOPS_REPORT_GAUGE_SECONDS", "0")
    receiver = handler_loader("webhook_receiver")

    class Stack:
        tables = aws_tables
        reports_table = physical_name("ReportsTable")
        projector = handler_loader("subscription_projector")

        def reload_projector(self):
            self.projector = handler_loader("subscription_projector")
            return self.projector

        def post(self, event_type: str, body_format: str = "json", **fields: str) -> None:
            payload = sample_fields(event_type, **{**ACCOUNT, **fields})
            body, content_type = encode_body(payload, body_format)
            event = http_api_event("POST", "/webhooks/ccbill", urlencode(webhook_query(event_type, payload, TOKEN)),
                                   {"content-type": content_type}, body, "64.38.212.20")
            assert receiver.handler(event, lambda_context)["statusCode"] == 200

        def records(self) -> list[dict]:
            return aws_tables.new_stream_records()

        def project(self, records: list[dict]) -> dict:
            if not records:
                return {"batchItemFailures": []}
            return self.projector.handler({"Records": records}, lambda_context)

        def summary(self, start: str = "2026-11-01", end: str = "2026-11-30") -> dict:
            from billops.reports.report_documents import summary_document
            from billops.reports.report_reading import ReportReader
            from billops.storage.reports_table import ReportsTable

            data = ReportReader(ReportsTable(self.reports_table, aws_tables.dynamodb)).read(
                date.fromisoformat(start), date.fromisoformat(end))
            return summary_document(data, "USD", None)["report"]

        def days(self) -> dict[str, tuple[int, str]]:
            from billops.reports.report_documents import daily_documents
            from billops.reports.report_reading import ReportReader
            from billops.storage.reports_table import ReportsTable

            data = ReportReader(ReportsTable(self.reports_table, aws_tables.dynamodb)).read(
                date(2026, 11, 1), date(2026, 11, 30))
            return {entry["daily_report"]["date"]: (entry["daily_report"]["active_subscriptions"],
                                                    entry["daily_report"]["mrr"])
                    for entry in daily_documents(data, "USD", None)["list"]}

    return Stack()


def _post_all(stack, deliveries=NOVEMBER, body_format: str = "json") -> list[dict]:
    for event_type, fields in deliveries:
        stack.post(event_type, body_format, **fields)
    return stack.records()


def _assert_november(stack) -> None:
    assert stack.summary() == EXPECTED_NOVEMBER
    days = stack.days()
    assert {day: days[day] for day in EXPECTED_DAYS} == EXPECTED_DAYS


def test_a_month_counted_once_gives_every_figure_to_the_cent(stack):
    records = _post_all(stack)
    assert stack.project(records) == {"batchItemFailures": []}
    _assert_november(stack)


def test_a_redelivered_batch_never_counts_twice(stack):
    records = _post_all(stack)
    for _ in range(3):
        assert stack.project(records) == {"batchItemFailures": []}
    _assert_november(stack)


def test_shuffled_deliveries_in_any_batches_and_a_replayed_stream_count_once(stack):
    rng = random.Random(16)
    deliveries = NOVEMBER * 2  # the second copy of each is a duplicate delivery: the receiver stores it once
    rng.shuffle(deliveries)
    for event_type, fields in deliveries:
        stack.post(event_type, rng.choice(["json", "urlencoded"]), **fields)
        if rng.random() < 0.4:
            stack.project(stack.records())
    stack.project(stack.records())
    stack.tables._iterators.clear()  # the whole stream again, from its start
    stack.project(stack.records())
    _assert_november(stack)


def test_a_batch_whose_fold_fails_half_way_is_redelivered_from_the_failure_and_counts_once(stack, monkeypatch):
    records = _post_all(stack)
    projection = stack.projector.projector.projection  # the handler's Projector (billops.composition.projector)
    apply = projection.apply_delivery
    failing = {"key": records[5]["dynamodb"]["NewImage"]["pk"]["S"]}

    def fold(delivery):
        if delivery["pk"] == failing.get("key"):
            failing.clear()
            from billops.storage.errors import RevisionConflict

            raise RevisionConflict("injected")
        return apply(delivery)

    monkeypatch.setattr(projection, "apply_delivery", fold)
    answer = stack.project(records)
    (failure,) = answer["batchItemFailures"]
    # Lambda checkpoints before the lowest failed record and delivers the rest again.
    position = [record["dynamodb"]["SequenceNumber"] for record in records].index(failure["itemIdentifier"])
    assert stack.project(records[position:]) == {"batchItemFailures": []}
    _assert_november(stack)


class FaultyDynamoDB:
    """The real client, with faults injected into TransactWriteItems: ``before`` (nothing written, an error),
    ``after`` (written, then an error: the caller cannot tell), ``refused_after`` (written, then an error the
    counter does not retry: the batch fails)."""

    def __init__(self, client, faults: list[str | None]) -> None:
        self.client = client
        self.faults = list(faults)
        self.transactions = 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs):
        self.transactions += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault == "before":
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "TransactWriteItems")
        answer = self.client.transact_write_items(**kwargs)
        if fault == "after":
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "TransactWriteItems")
        if fault == "refused_after":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "injected"}}, "TransactWriteItems")
        return answer


def _faulty(stack, faults):
    counter = stack.projector.projector.reports
    faulty = FaultyDynamoDB(stack.tables.dynamodb, faults)
    counter.table._client = faulty
    return faulty


def test_a_figures_write_that_happened_although_dynamodb_answered_an_error_counts_once(stack):
    records = _post_all(stack)
    faulty = _faulty(stack, ["before", "after"])
    assert stack.project(records) == {"batchItemFailures": []}
    assert faulty.transactions == 3  # refused, written-but-answered-an-error, then every key found counted
    _assert_november(stack)


def test_a_batch_split_over_transactions_that_fails_between_them_counts_once_when_retried(stack, monkeypatch):
    from billops.storage import reports_table

    monkeypatch.setattr(reports_table, "MAX_ACTIONS", 4)  # a few (scope, day)s per transaction
    records = _post_all(stack)
    faulty = _faulty(stack, [None, "refused_after"])
    with pytest.raises(Exception, match="ValidationException"):
        stack.project(records)  # the first transaction went through, the second was written but answered an error
    assert faulty.transactions == 2
    faulty.faults = []
    assert stack.project(records) == {"batchItemFailures": []}  # the stream's retry of the whole batch
    _assert_november(stack)


def test_two_containers_counting_the_same_deliveries_at_once_count_them_once(stack):
    records = _post_all(stack)
    second = stack.projector
    first = stack.reload_projector()
    from billops.storage.events_table import from_dynamodb

    items = [from_dynamodb(record["dynamodb"]["NewImage"]) for record in records]
    errors = []

    def count(counter, order):
        try:
            for start in range(0, len(order), 3):
                counter.count_deliveries(order[start:start + 3])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=count, args=(first.projector.reports, items)),
               threading.Thread(target=count, args=(second.projector.reports, list(reversed(items))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    _assert_november(stack)


def test_a_batch_costs_one_transaction_and_no_call_per_delivery(stack):
    """The hot path, counted with botocore's hooks: a batch of 10 deliveries over 12 (day, subaccount) items is one
    TransactWriteItems, plus the directory once per container and, because it holds a chargeback, the account's
    ratio check (directory GetItem + one Query per subaccount)."""
    records = _post_all(stack)
    calls: Counter[str] = Counter()
    client = stack.tables.dynamodb
    client.meta.events.register("before-send", lambda event_name, **_: calls.update([event_name.split(".", 2)[2]]))
    stack.projector.projector.reports.table._client = client
    # A container that started more than half an hour after the deploy: no delivery it sees can sit in a counted
    # item of the layout before, so it reads none (the next test covers the reading).
    stack.projector.projector.reports.table.minute_items_until = "2026-01-01T00:00:00"
    stack.projector.projector.reports.count_stream_batch(records)
    assert dict(calls) == {"TransactWriteItems": 1, "UpdateItem": 1, "GetItem": 1, "Query": 1}, json.dumps(calls)
    calls.clear()
    stack.projector.projector.reports.count_stream_batch(records)  # redelivered: the keys are found counted
    assert dict(calls) == {"TransactWriteItems": 1, "BatchGetItem": 1, "GetItem": 1, "Query": 1}, json.dumps(calls)


def test_a_ratio_crossing_is_published_once_even_when_the_first_publication_failed(stack, monkeypatch):
    from billops.domain_events.publishing import DomainEventsUnavailable, RecordingPublisher

    monkeypatch.setenv("BILLOPS_CHARGEBACK_THRESHOLDS", json.dumps({
        "VISA": {"warning": {"percent": "20", "min_chargebacks": 1},
                 "breach": {"percent": "50", "min_chargebacks": 1}, "denominator": "same_month"}}))
    projector = stack.reload_projector()
    records = _post_all(stack)

    class FlakyPublisher(RecordingPublisher):
        failures = 1

        def publish(self, events):
            if self.failures:
                self.failures -= 1
                raise DomainEventsUnavailable("injected")
            super().publish(events)

    publisher = FlakyPublisher()
    projector.projector.reports.publisher = publisher
    with pytest.raises(DomainEventsUnavailable):
        stack.project(records)
    for _ in range(3):  # the stream's retry, then redeliveries
        assert stack.project(records) == {"batchItemFailures": []}
    # VISA: 1 chargeback / 2 VISA sales = 50 %: both levels reached, each published once.
    assert sorted(event.detail_type for event in publisher.events) == ["ChargebackRatioBreached",
                                                                      "ChargebackRatioWarning"]
    breach = publisher.of_type("ChargebackRatioBreached")[0].detail
    assert {name: breach[name] for name in ("client_accnum", "month", "card_type", "chargebacks", "transactions",
                                            "percent", "threshold_percent")} == {
        "client_accnum": "900100", "month": "2026-11", "card_type": "VISA", "chargebacks": 1, "transactions": 2,
        "percent": "50.0000", "threshold_percent": "50"}
    _assert_november(stack)


def test_delivery_counted_facts_are_published_before_the_figures_and_again_on_a_retry(stack, monkeypatch):
    from billops.domain_events.publishing import RecordingPublisher

    monkeypatch.setenv("BILLOPS_REPORT_FACT_EVENTS", "true")
    projector = stack.reload_projector()
    publisher = RecordingPublisher()
    projector.projector.reports.publisher = publisher
    records = _post_all(stack)
    stack.project(records)
    stack.project(records)
    facts = publisher.of_type("DeliveryCounted")
    assert len(facts) == 2 * len(NOVEMBER)  # at least once: the queries deduplicate on event_id
    by_key = {fact.detail["event_id"]: fact.detail for fact in facts}
    assert len(by_key) == len(NOVEMBER)
    sale = next(detail for detail in by_key.values() if detail.get("subscription_id") == S3
                and detail["event_type"] == "NewSaleSuccess")
    assert sale == {"event_id": sale["delivery_key"], "delivery_key": sale["delivery_key"],
                    "event_type": "NewSaleSuccess", "day": "2026-11-03", "client_accnum": "900100",
                    "client_subacc": "0000", "subscription_id": S3, "card_type": "VISA", "amount": "9.99",
                    "currency": "USD", "period_start": "2026-11-03", "period_end": "2026-11-10", "mrr": "42.81"}
    assert "@" not in json.dumps([fact.detail for fact in facts])  # no e-mail address, no personal data
    _assert_november(stack)


def _counted_items(stack) -> dict[str, set[str]]:
    client = stack.tables.dynamodb
    items = client.scan(TableName=stack.reports_table)["Items"]
    return {item["day"]["S"]: set(item["keys"]["SS"]) for item in items if item["day"]["S"].startswith("counted#")}


def test_deliveries_an_older_version_counted_into_minute_items_are_not_counted_again(stack):
    """The counted items were keyed by the minute of receipt before (one minute of a burst outgrew DynamoDB's
    400 KB). A delivery counted by the older version and redelivered to this one (a stream retry across the deploy,
    the dead-letter replay) is found in its minute item, as long as it was received before the older version
    stopped (this process's start plus a margin)."""
    from billops.storage.reports_table import ReportsTable

    records = _post_all(stack)
    assert stack.project(records) == {"batchItemFailures": []}
    _assert_november(stack)
    # What the older version would have left: the same keys, in items named by the minute.
    client = stack.tables.dynamodb
    for day, keys in _counted_items(stack).items():
        assert len(day) == len("counted#2026-11-05#2026-11-05T10:00:00"), day  # by the second now
        client.delete_item(TableName=stack.reports_table, Key={"scope": {"S": "900100#0000"}, "day": {"S": day}})
        client.update_item(TableName=stack.reports_table,
                           Key={"scope": {"S": "900100#0000"}, "day": {"S": day[:-3]}},
                           UpdateExpression="ADD #keys :keys", ExpressionAttributeNames={"#keys": "keys"},
                           ExpressionAttributeValues={":keys": {"SS": sorted(keys)}})
    assert all(len(day) == len("counted#2026-11-05#2026-11-05T10:00") for day in _counted_items(stack))

    assert stack.project(records) == {"batchItemFailures": []}  # redelivered: found in the minute items
    _assert_november(stack)

    # A container that started long after the deploy does not look there, so the same redelivery would count
    # again: the read above is what kept the figures right.
    counter = stack.projector.projector.reports
    counter.table = ReportsTable(stack.reports_table, client, minute_items_until="2026-01-01T00:00:00")
    assert stack.project(records) == {"batchItemFailures": []}
    assert stack.summary()["sales"]["count"] == 2 * EXPECTED_NOVEMBER["sales"]["count"]


def test_a_burst_of_one_subaccount_keeps_every_counted_item_small(stack):
    """15,000 renewals of one subaccount received within one minute (250 a second), counted by the projector's
    counter in stream batches of 25: every one is counted once, and no counted item holds more than a second's
    deliveries (keyed by the minute, one item grew past DynamoDB's 400 KB at ~10,000 keys and every later batch of
    that minute failed for good)."""
    counter = stack.projector.projector.reports
    per_second, total = 250, 15_000

    def renewal(index: int) -> dict:
        return {"pk": f"RenewalSuccess#txn#0126110501{index:09d}", "record_type": "delivery", "known_type": True,
                "event_type": "RenewalSuccess", "occurred_at": "2026-11-05T10:00:00Z",
                "received_at": f"2026-11-05T10:00:{index // per_second:02d}.{index % 1000:03d}000Z",
                "client_accnum": "900100", "client_subacc": "0000", "subscription_id": f"0126{index:015d}",
                "fields": {"accountingAmount": "9.99", "renewalDate": "2026-11-05", "nextRenewalDate": "2026-12-05",
                           "cardType": "VISA"}}

    for start in range(0, total, 25):
        assert len(counter.count_deliveries([renewal(index) for index in range(start, start + 25)]).counted) == 25
    assert stack.summary("2026-11-05", "2026-11-05")["renewals"]["count"] == total
    sizes = [len(keys) for day, keys in _counted_items(stack).items() if day.startswith("counted#2026-11-05#")]
    assert len(sizes) == total // per_second and max(sizes) == per_second
    again = counter.count_deliveries([renewal(index) for index in range(4_990, 5_015)])  # across two seconds
    assert again.counted == set()
    assert stack.summary("2026-11-05", "2026-11-05")["renewals"]["count"] == total
