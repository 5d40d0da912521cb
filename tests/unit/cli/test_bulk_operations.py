"""``billops bulk``: the CSV, the checks the worker would make, batched sends and reads, the summary, exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from billops.ccbill.result_codes import result_code
from billops.operations.operation_messages import parse_message
from billops.operations.operation_records import new_record, operation_id_for
from billops.storage.operations_table import OperationsTable
from billops_cli import bulk_operations as bulk
from billops_cli.output import CliError, Output
from billops_cli.targets import Target
from boto3.dynamodb.types import TypeSerializer

SERIALIZER = TypeSerializer()


def subscription(subscription_id: str, *, price: str = "19.95", status: str = "active",
                 recurring: bool = True) -> dict[str, Any]:
    return {"subscription_id": subscription_id, "status": status, "recurring": recurring, "initial_price": price,
            "recurring_price": price, "initial_period": 30, "recurring_period": 30, "times_rebilled": 2,
            "client_accnum": "900100", "client_subacc": "0000", "last_event_at": "2026-11-01T00:00:00Z",
            "revision": 1, "subscriber": {"email": "someone@example.com"}, "history": []}


def ids(count: int, start: int = 1) -> list[str]:
    return [f"01260154010{index:08d}" for index in range(start, start + count)]


# --- the CSV ------------------------------------------------------------------------------------------------------


def test_csv_rows_keep_their_line_numbers_and_skip_blank_lines(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("\ufeffname,subscription_id\nann, 0126015401000000001 \n,\n\nbob,0126015401000000002\n",
                    encoding="utf-8")
    rows = bulk.read_rows(path, "subscription_id")
    assert [(row.line, row.subscription_id) for row in rows] == [(2, "0126015401000000001"),
                                                                  (5, "0126015401000000002")]


def test_a_file_of_bare_ids_needs_no_header(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("0126015401000000001\n0126015401000000002,extra\n")
    assert [row.subscription_id for row in bulk.read_rows(path, "ignored", no_header=True)] == [
        "0126015401000000001", "0126015401000000002"]


def test_a_missing_column_names_the_columns_there_are(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,name\n1,a\n")
    with pytest.raises(CliError, match="no column 'subscription_id'.*id, name"):
        bulk.read_rows(path, "subscription_id")


# --- checks -------------------------------------------------------------------------------------------------------


def _prepared(values: list[str], operation: str = "discount", parameters: dict | None = None,
              prefix: str = "retention-2026-11") -> list[bulk.Row]:
    rows = [bulk.Row(index + 2, value) for index, value in enumerate(values)]
    bulk.prepare_messages(rows, operation, prefix, {"discount_amount": "2.00"} if parameters is None else parameters,
                          None)
    return rows


def test_each_row_gets_the_key_prefix_plus_its_subscription():
    (row,) = _prepared(["0126015401000000001"])
    assert row.idempotency_key == "retention-2026-11:0126015401000000001"
    assert row.operation_id == operation_id_for(row.idempotency_key)
    assert json.loads(row.body) == {"idempotency_key": "retention-2026-11:0126015401000000001",
                                    "operation_type": "discount", "parameters": {"discount_amount": "2.00"},
                                    "subscription_id": "0126015401000000001", "suppress_domain_events": False}


def test_bad_ids_empty_ids_and_repeats_are_refused():
    rows = _prepared(["0126015401000000001", "12a", "", "0126015401000000001"])
    assert [row.status for row in rows] == ["pending", "invalid", "invalid", "invalid"]
    assert rows[1].param == "subscription_id"
    assert "same subscription as line 2" in rows[3].reason


def test_the_workers_rules_decide_against_the_known_subscription():
    rows = _prepared(ids(5))
    known = {rows[0].subscription_id: subscription(rows[0].subscription_id),
             rows[1].subscription_id: subscription(rows[1].subscription_id, price="5.95"),
             rows[2].subscription_id: subscription(rows[2].subscription_id, status="expired"),
             rows[3].subscription_id: subscription(rows[3].subscription_id, price="4.95")}
    bulk.check_subscriptions(rows, known, allow_unknown=False)
    ok, too_low, expired, ineligible, unknown = rows
    assert ok.status == "pending"
    assert ok.plan["param"] == "newRecurringPrice" and ok.plan["value"] == "17.95"  # the amount made a price
    assert (too_low.status, too_low.code) == ("invalid", -18)
    assert too_low.as_dict()["ccbill_meaning"] == result_code(-18).meaning, "the code with CCBill's meaning"
    assert ok.as_dict()["ccbill_meaning"] is None
    assert (expired.status, expired.code) == ("invalid", -22)
    assert (ineligible.status, ineligible.code) == ("invalid", -11)
    assert unknown.status == "invalid" and "unknown subscription" in unknown.reason


def test_unknown_subscriptions_may_be_sent_anyway():
    rows = _prepared(ids(1))
    bulk.check_subscriptions(rows, {}, allow_unknown=True)
    assert rows[0].status == "pending" and rows[0].plan["param"] == "discountAmount"


def test_a_new_price_above_the_current_one_is_refused_like_ccbill_would():
    rows = _prepared(ids(1), parameters={"new_recurring_price": "24.95"})
    bulk.check_subscriptions(rows, {rows[0].subscription_id: subscription(rows[0].subscription_id)},
                             allow_unknown=False)
    assert (rows[0].status, rows[0].code, rows[0].param) == ("invalid", -20, "newRecurringPrice")


def test_earlier_runs_are_not_sent_again_and_other_requests_under_a_key_are_refused():
    from datetime import UTC, datetime

    rows = _prepared(ids(2))
    same = new_record(rows[0].message, datetime.now(UTC), max_attempts=5) | {"status": "succeeded"}
    other_message = parse_message({**json.loads(rows[1].body), "parameters": {"discount_amount": "3.00"}})
    other = new_record(other_message, datetime.now(UTC), max_attempts=5)
    bulk.check_existing(rows, {same["operation_id"]: same, other["operation_id"]: other})
    assert (rows[0].status, rows[0].already_recorded) == ("succeeded", True)
    assert rows[1].status == "invalid" and "already used for another request" in rows[1].reason


# --- batches ------------------------------------------------------------------------------------------------------


class FakeSQS:
    def __init__(self, fail_first: set[str] | None = None, refuse: set[str] | None = None) -> None:
        self.calls: list[list[dict]] = []
        self.fail_first = set(fail_first or ())
        self.refuse = set(refuse or ())

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        assert 1 <= len(Entries) <= 10
        self.calls.append(Entries)
        successful, failed = [], []
        for entry in Entries:
            group = entry["MessageGroupId"]
            if group in self.refuse:
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": "InvalidParameterValue"})
            elif group in self.fail_first:
                self.fail_first.discard(group)
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
            else:
                successful.append({"Id": entry["Id"], "MessageId": f"m-{group}"})
        return {"Successful": successful, "Failed": failed}


class FakeDynamoDB:
    """BatchGetItem over in-memory tables; the first answer for a table leaves some keys unprocessed."""

    def __init__(self, tables: dict[str, dict[str, dict]], keys: dict[str, str]) -> None:
        self.tables, self.keys = tables, keys
        self.calls: list[tuple[str, int]] = []
        self.throttled_once: set[str] = set()

    def batch_get_item(self, RequestItems: dict) -> dict:
        ((table, request),) = RequestItems.items()
        assert len(request["Keys"]) <= 100
        self.calls.append((table, len(request["Keys"])))
        key_name = self.keys[table]
        wanted = [key[key_name]["S"] for key in request["Keys"]]
        unprocessed: list[str] = []
        if table not in self.throttled_once and len(wanted) > 1:
            self.throttled_once.add(table)
            wanted, unprocessed = wanted[:-1], wanted[-1:]
        items = [{name: SERIALIZER.serialize(value) for name, value in self.tables[table][key].items()}
                 for key in wanted if key in self.tables[table]]
        answer: dict[str, Any] = {"Responses": {table: items}}
        if unprocessed:
            answer["UnprocessedKeys"] = {table: {**request, "Keys": [{key_name: {"S": key}} for key in unprocessed]}}
        return answer


def test_sends_go_ten_at_a_time_and_retry_what_sqs_failed_to_take():
    rows = _prepared(ids(25))
    for row in rows:
        row.status = "pending"
    sqs = FakeSQS(fail_first={rows[3].subscription_id}, refuse={rows[7].subscription_id})
    bulk.send_rows(sqs, "queue", rows, sleep=lambda _: None)
    assert [len(call) for call in sqs.calls] == [10, 1, 10, 5]  # the retry carries only row 3
    assert rows[3].status == "queued"
    assert rows[7].status == "send_failed" and "InvalidParameterValue" in rows[7].reason
    assert sum(row.status == "queued" for row in rows) == 24
    entry = sqs.calls[0][0]
    assert entry["MessageGroupId"] == rows[0].subscription_id
    assert entry["MessageDeduplicationId"] == rows[0].idempotency_key
    assert entry["MessageBody"] == rows[0].body


def test_batch_reads_are_a_hundred_keys_and_retry_unprocessed_ones():
    table = {key: {"subscription_id": key, "status": "active"} for key in ids(250)}
    dynamodb = FakeDynamoDB({"subs": table}, {"subs": "subscription_id"})
    found = bulk.batch_get(dynamodb, "subs", "subscription_id", list(table) + ["0"], ("status",), sleep=lambda _: None)
    assert set(found) == set(table)
    assert dynamodb.calls == [("subs", 100), ("subs", 1), ("subs", 100), ("subs", 51)]


def test_waiting_polls_until_every_operation_is_final_or_escalated():
    rows = _prepared(ids(3))
    for row in rows:
        row.status = "queued"
    records: dict[str, dict] = {}
    dynamodb = FakeDynamoDB({"ops": records}, {"ops": "operation_id"})
    dynamodb.throttled_once.add("ops")
    script = iter([
        {rows[0].operation_id: "in_progress"},
        {rows[0].operation_id: "succeeded", rows[1].operation_id: "failed", rows[2].operation_id: "unknown"},
        {rows[2].operation_id: "unknown-escalated"},
    ])

    def sleep(_: float) -> None:
        for operation_id, status in next(script).items():
            record = {"operation_id": operation_id, "status": status.removesuffix("-escalated"),
                      "escalated": status.endswith("-escalated")}
            if status == "failed":
                record["failure"] = {"message": "declined", "code": -4, "param": None}
            records[operation_id] = record

    timed_out = bulk.wait_for_outcomes(dynamodb, "ops", rows, timeout=60, interval=1, sleep=sleep,
                                       clock=lambda: 0.0)
    assert not timed_out
    assert [row.status for row in rows] == ["succeeded", "failed", "unknown"]
    assert rows[1].code == -4 and "escalated" in rows[2].reason
    assert rows[1].as_dict()["ccbill_meaning"] == result_code(-4).meaning
    assert bulk.exit_code(rows, waited=True) == 1


def test_waiting_gives_up_at_the_timeout():
    rows = _prepared(ids(1))
    rows[0].status = "queued"
    dynamodb = FakeDynamoDB({"ops": {}}, {"ops": "operation_id"})
    ticks = iter(range(100))
    assert bulk.wait_for_outcomes(dynamodb, "ops", rows, timeout=5, interval=1, sleep=lambda _: None,
                                  clock=lambda: float(next(ticks)))
    assert rows[0].status == "queued" and bulk.exit_code(rows, waited=True) == 3


@pytest.mark.parametrize("statuses, waited, code", [
    (["queued", "queued"], False, 0),
    (["succeeded", "succeeded"], True, 0),
    (["queued", "succeeded"], True, 3),
    (["succeeded", "unknown"], True, 3),
    (["succeeded", "invalid"], False, 1),
    (["unknown", "failed"], True, 1),
    (["would_send", "would_send"], False, 0),
])
def test_exit_codes(statuses, waited, code):
    rows = [bulk.Row(index, "1", status=status) for index, status in enumerate(statuses)]
    assert bulk.exit_code(rows, waited=waited) == code


# --- the whole command with 5,000 rows ------------------------------------------------------------------------------


class FakeTarget(Target):
    def __init__(self, dynamodb: FakeDynamoDB, sqs: FakeSQS) -> None:
        super().__init__(description="fake stack")
        self._fake = {"dynamodb": dynamodb, "sqs": sqs}

    def activate(self, *logical_ids: str) -> None:
        pass

    def _lookup(self, logical_id: str) -> str:
        return {"SubscriptionsTable": "subs", "OperationsTable": "ops", "OperationsQueue": "queue"}[logical_id]

    def client(self, service: str, *, read_timeout: float | None = None) -> Any:
        return self._fake[service]


def _args(path, **extra) -> Any:
    import argparse

    values = {"operation_type": "discount", "csv": path, "column": "subscription_id", "no_header": False,
              "amount": "2.00", "new_price": None, "key_prefix": "retention-2026-11", "run_at": None,
              "allow_unknown": False, "dry_run": False, "wait": False, "timeout": 60.0, "poll_interval": 1.0,
              "show": 5, "no_progress": True, "json": True}
    values.update(extra)
    return argparse.Namespace(**values)


def test_five_thousand_rows_are_checked_and_sent_in_batches(tmp_path, capsys):
    subscription_ids = ids(5000)
    path = tmp_path / "retention.csv"
    path.write_text("subscription_id\n" + "\n".join(subscription_ids) + "\n")
    subs = {sid: subscription(sid) for sid in subscription_ids[:-1]}  # the last one is unknown
    dynamodb = FakeDynamoDB({"subs": subs, "ops": {}}, {"subs": "subscription_id", "ops": "operation_id"})
    sqs = FakeSQS()
    out = Output(json_mode=True)

    dry = bulk.run_bulk(_args(path, dry_run=True), FakeTarget(dynamodb, sqs), out)
    document = json.loads(capsys.readouterr().out)
    assert dry == 1 and not sqs.calls
    assert document["counts"] == {"would_send": 4999, "invalid": 1}
    assert document["rows"][0]["plan"]["value"] == "17.95"

    dynamodb.calls.clear()
    code = bulk.run_bulk(_args(path), FakeTarget(dynamodb, sqs), out)
    document = json.loads(capsys.readouterr().out)
    assert code == 1  # the unknown subscription
    assert document["counts"] == {"queued": 4999, "invalid": 1}
    assert len(sqs.calls) == 500 and sum(len(call) for call in sqs.calls) == 4999
    reads = [count for table, count in dynamodb.calls if table == "subs"]
    assert max(reads) == 100 and len(reads) <= 52


def test_the_human_summary_lists_problems_and_what_a_dry_run_would_send(tmp_path, capsys):
    path = tmp_path / "few.csv"
    path.write_text("subscription_id\n" + "\n".join(ids(4)) + "\nabc\n")
    subs = {sid: subscription(sid) for sid in ids(3)}
    subs[ids(4)[3]] = subscription(ids(4)[3], price="5.95")
    dynamodb = FakeDynamoDB({"subs": subs, "ops": {}}, {"subs": "subscription_id", "ops": "operation_id"})
    code = bulk.run_bulk(_args(path, dry_run=True, json=False), FakeTarget(dynamodb, FakeSQS()), Output())
    text = capsys.readouterr().out
    assert code == 1
    assert "Dry run: nothing was sent." in text
    assert "would_send  3" in text and "invalid     2" in text
    assert "newRecurringPrice 17.95 (from 19.95)" in text
    assert f"   -18  {result_code(-18).meaning}" in text, "CCBill's code behind a refusal, with its meaning"
    assert "abc" in text and "someone@example.com" not in text


# --- against moto, through the command line -----------------------------------------------------------------------


def _put_subscriptions(local_resources, count: int) -> list[str]:
    from billops.storage.subscriptions_table import SubscriptionsTable

    table = SubscriptionsTable(local_resources.table("SubscriptionsTable"), local_resources.client("dynamodb"))
    subscription_ids = ids(count, start=900)
    for sid in subscription_ids:
        table.put(subscription(sid), expected_revision=None)
    return subscription_ids


def test_bulk_cancel_sends_operation_messages_to_the_fifo_queue(local_resources, run_cli, tmp_path):
    subscription_ids = _put_subscriptions(local_resources, 12)
    path = tmp_path / "cancel.csv"
    path.write_text("subscription_id\n" + "\n".join(subscription_ids) + "\n")

    result = run_cli("bulk", "cancel", "--csv", str(path), "--key-prefix", "winback-2026-11", "--json")
    assert result.code == 0, result.err
    assert result.json()["counts"] == {"queued": 12}
    sqs = local_resources.client("sqs")
    queue = local_resources.queue_url("OperationsQueue")
    received: list[dict] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", [])
        if not batch:
            break
        received.extend(batch)
    assert len(received) == 12
    first = next(m for m in received if m["Attributes"]["MessageGroupId"] == subscription_ids[0])
    assert first["Attributes"]["MessageDeduplicationId"] == f"winback-2026-11:{subscription_ids[0]}"
    assert json.loads(first["Body"]) == {"idempotency_key": f"winback-2026-11:{subscription_ids[0]}",
                                         "operation_type": "cancel", "parameters": {},
                                         "subscription_id": subscription_ids[0], "suppress_domain_events": False}

    # The worker recorded one of them meanwhile: a re-run reports it and sends nothing for it.
    message = parse_message(first["Body"])
    from datetime import UTC, datetime

    record = new_record(message, datetime.now(UTC), max_attempts=5)
    OperationsTable(local_resources.table("OperationsTable"), local_resources.client("dynamodb")).create(record)
    again = run_cli("bulk", "cancel", "--csv", str(path), "--key-prefix", "winback-2026-11", "--dry-run", "--json")
    assert again.code == 0, again.err
    assert again.json()["counts"] == {"would_send": 11, "queued": 1}
    (earlier,) = [row for row in again.json()["rows"] if row["already_recorded"]]
    assert earlier["subscription_id"] == subscription_ids[0] and earlier["record_status"] == "queued"


def test_a_rerun_reports_earlier_rows_without_checking_them_against_the_changed_subscription(tmp_path, capsys):
    """6.95 - 1.50 = 5.45 was applied; checked again, 5.45 - 1.50 would break rule -18. The row is done, not invalid."""
    from datetime import UTC, datetime

    (sid,) = ids(1)
    path = tmp_path / "one.csv"
    path.write_text(f"subscription_id\n{sid}\n")
    rows = [bulk.Row(2, sid)]
    bulk.prepare_messages(rows, "discount", "retention-2026-11", {"discount_amount": "1.50"}, None)
    done = new_record(rows[0].message, datetime.now(UTC), max_attempts=5) | {
        "status": "succeeded", "plan": {"action": "discountSubscription", "param": "newRecurringPrice",
                                        "value": "5.45", "current_recurring_price": "6.95"}}
    after = subscription(sid, price="6.95") | {"operation_facts": {"recurring_price": "5.45"}}
    dynamodb = FakeDynamoDB({"subs": {sid: after}, "ops": {done["operation_id"]: done}},
                            {"subs": "subscription_id", "ops": "operation_id"})
    sqs = FakeSQS()
    code = bulk.run_bulk(_args(path, amount="1.50"), FakeTarget(dynamodb, sqs), Output(json_mode=True))
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and not sqs.calls
    assert document["counts"] == {"succeeded": 1}
    assert document["rows"][0]["already_recorded"] and document["rows"][0]["plan"]["value"] == "5.45"


def test_bulk_refund_and_void_send_their_operations(local_resources, run_cli, tmp_path):
    subscription_ids = _put_subscriptions(local_resources, 3)
    path = tmp_path / "goodwill.csv"
    path.write_text("subscription_id\n" + "\n".join(subscription_ids) + "\n")

    dry = run_cli("bulk", "refund", "--csv", str(path), "--amount", "5.00", "--key-prefix", "goodwill-1",
                  "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["counts"] == {"would_send": 3}
    plans = {row["subscription_id"]: row["plan"] for row in dry.json()["rows"]}
    assert plans[subscription_ids[0]] == {"action": "refundTransaction", "transaction_id": subscription_ids[0],
                                          "amount": "5.00"}
    bad = run_cli("bulk", "refund", "--csv", str(path), "--amount", "5,00", "--key-prefix", "goodwill-2")
    assert bad.code == 2 and "amount" in bad.err

    sent = run_cli("bulk", "void", "--csv", str(path), "--key-prefix", "fraud-1", "--json")
    assert sent.code == 0, sent.err
    assert sent.json()["counts"] == {"queued": 3}
    sqs = local_resources.client("sqs")
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(
        QueueUrl=local_resources.queue_url("OperationsQueue"), MaxNumberOfMessages=10).get("Messages", [])]
    assert {body["operation_type"] for body in bodies} == {"void"}
    assert sorted(body["subscription_id"] for body in bodies) == sorted(subscription_ids)
