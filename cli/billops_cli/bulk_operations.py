"""``billops bulk discount|cancel|extend|refund|void --csv FILE``: one operation per subscription, exactly once.

Every row becomes an operation message (docs/operations.md) whose idempotency key is ``<key prefix>:<subscription
ID>``: running the same CSV again - after a crash, a timeout, a partial send - can never do anything twice, because
the key is the operation (a second message with it continues the first operation's record, and SQS drops a repeat
within five minutes).

Before anything is sent, every row is checked with the code the worker runs:

* the message itself (billops.operations.operation_messages: IDs, prices, days, run_at);
* the key: an operation already recorded under it for the same request is reported with its status and not sent
  (nor checked) again; one recorded for another request (same prefix, other parameters) is a conflict, not sent;
* the subscription must be known (a record in the subscriptions table; ``--allow-unknown`` sends anyway and
  leaves the rules to CCBill);
* the request against what is known of it (billops.operations.operation_actions.plan_for with the facts the worker
  would read: discount rules -2, -11, -18 ... -22, and a discount by amount turned into a new price).

``--dry-run`` stops there and prints what would be sent. Otherwise the messages go out with SendMessageBatch, ten at
a time (group = subscription ID, deduplication ID = the key), and ``--wait`` polls the operations table (BatchGetItem,
a hundred at a time) until every operation is final - succeeded, failed, or unknown and escalated to a person - or
the timeout passes.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billops_cli.aws_batches import batch_get, chunks
from billops_cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    CliError,
    Output,
    render_table,
)
from billops_cli.progress import Progress
from billops_cli.targets import Target

OPERATION_TYPES = ("discount", "cancel", "extend", "refund", "void")
KEY_SEPARATOR = ":"
MAX_PREFIX_LENGTH = 100
SEND_BATCH_SIZE = 10
SEND_ATTEMPTS = 4

FACT_ATTRIBUTES = ("subscription_id", "status", "ccbill_view", "last_event_at", "recurring", "initial_price",
                   "recurring_price", "times_rebilled", "initial_period", "recurring_period",
                   "cancel_discount_price", "operation_facts", "client_accnum", "client_subacc")
"""What SubscriptionFactsStore.facts reads for these operation types - never the subscriber's personal data."""
OPERATION_ATTRIBUTES = ("operation_id", "status", "escalated", "request_hash", "failure", "failure_reason",
                        "unknown_reason", "retry_reason", "updated_at", "plan")

STATUS_ORDER = ("would_send", "queued", "in_progress", "succeeded", "failed", "unknown", "invalid", "send_failed")
FAILED_STATUSES = frozenset({"failed", "invalid", "send_failed"})
FINAL_API_STATUSES = frozenset({"succeeded", "failed"})


@dataclass
class Row:
    line: int
    subscription_id: str
    idempotency_key: str | None = None
    operation_id: str | None = None
    status: str = "pending"
    reason: str | None = None
    code: int | None = None
    param: str | None = None
    plan: dict[str, Any] | None = None
    record_status: str | None = None
    escalated: bool = False
    already_recorded: bool = False
    body: str | None = field(default=None, repr=False)
    message: Any = field(default=None, repr=False)

    def refuse(self, reason: str, *, code: int | None = None, param: str | None = None) -> None:
        self.status, self.reason, self.code, self.param = "invalid", reason, code, param

    @property
    def final(self) -> bool:
        return self.status in FINAL_API_STATUSES or self.status in ("invalid", "send_failed") or (
            self.status == "unknown" and self.escalated)

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "subscription_id": self.subscription_id, "idempotency_key": self.idempotency_key,
                "operation_id": self.operation_id, "status": self.status, "record_status": self.record_status,
                "escalated": self.escalated, "already_recorded": self.already_recorded, "reason": self.reason,
                "code": self.code, "ccbill_meaning": self.ccbill_meaning, "param": self.param, "plan": self.plan}

    @property
    def ccbill_meaning(self) -> str | None:
        """CCBill's own words for the result code behind a refusal or failure."""
        if self.code is None:
            return None
        from billops.ccbill.result_codes import result_code

        return result_code(self.code).meaning


class _NoCalls:
    """Stands in for the CCBill client: planning only builds the request, and nothing here may call CCBill."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the CLI never calls CCBill (asked for {name})")


# --- arguments ------------------------------------------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("bulk", help="one operation per subscription of a CSV (discount, cancel, extend, "
                                             "refund, void)")
    kinds = group.add_subparsers(dest="operation_type", required=True, metavar="OPERATION")
    helps = {"discount": "lower the recurring price (CCBill's discountSubscription)",
             "cancel": "cancel (CCBill's cancelSubscription)",
             "extend": "push the next billing date later (CCBill's extendSubscription)",
             "refund": "refund each subscription's initial charge, all of it or --amount (CCBill's refundTransaction)",
             "void": "void each subscription's initial charge (CCBill's voidTransaction)"}
    for kind in OPERATION_TYPES:
        parser = kinds.add_parser(kind, parents=[common], help=helps[kind])
        parser.add_argument("--csv", required=True, type=Path, metavar="FILE", help="the CSV of subscription IDs")
        parser.add_argument("--column", default="subscription_id",
                            help="the column holding the subscription IDs (default subscription_id)")
        parser.add_argument("--no-header", action="store_true",
                            help="the file has no header row: the IDs are its first column")
        if kind == "discount":
            amount = parser.add_mutually_exclusive_group(required=True)
            amount.add_argument("--amount", metavar="PRICE", help="lower each recurring price by this (e.g. 2.00)")
            amount.add_argument("--new-price", metavar="PRICE", help="set each recurring price to this")
        if kind == "extend":
            parser.add_argument("--days", type=int, required=True, help="days to add (1-365)")
        if kind == "refund":
            parser.add_argument("--amount", metavar="PRICE",
                                help="refund this much of each charge (e.g. 5.00); default: the whole charge")
        parser.add_argument("--key-prefix", required=True, metavar="PREFIX",
                            help="names this campaign: each row's idempotency key is PREFIX:<subscription ID>, so "
                                 "running the same CSV again never does anything twice")
        parser.add_argument("--run-at", metavar="ISO",
                            help="carry the operations out at this time (ISO-8601 with a zone, e.g. "
                                 "2026-12-01T09:00:00Z); default now")
        parser.add_argument("--allow-unknown", action="store_true",
                            help="send rows whose subscription is not in the subscriptions table too")
        parser.add_argument("--dry-run", action="store_true", help="check every row and show what would be sent")
        parser.add_argument("--wait", action="store_true",
                            help="after sending, wait until every operation is final (see --timeout)")
        parser.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                            help="how long --wait waits (default 1800)")
        parser.add_argument("--poll-interval", type=float, default=5.0, metavar="SECONDS",
                            help="how often --wait reads the operations (default 5)")
        parser.add_argument("--show", type=int, default=20, metavar="N",
                            help="rows listed in the human output per section (default 20; --json has all)")
        parser.set_defaults(handler=run_bulk)


def parameters_for(args: argparse.Namespace) -> dict[str, Any]:
    if args.operation_type == "discount":
        return {"discount_amount": args.amount} if args.amount is not None else {"new_recurring_price": args.new_price}
    if args.operation_type == "extend":
        return {"days": args.days}
    if args.operation_type == "refund" and args.amount is not None:
        return {"amount": args.amount}
    return {}


def check_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not prefix or len(prefix) > MAX_PREFIX_LENGTH or not all(0x21 <= ord(ch) <= 0x7E for ch in prefix):
        raise CliError(f"--key-prefix must be 1-{MAX_PREFIX_LENGTH} printable ASCII characters without spaces",
                       EXIT_USAGE)
    return prefix


def message_for(operation_type: str, subscription_id: str, key: str, parameters: dict[str, Any],
                run_at: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"operation_type": operation_type, "subscription_id": subscription_id,
                               "idempotency_key": key}
    if parameters:
        message["parameters"] = dict(parameters)
    if run_at:
        message["run_at"] = run_at
    return message


def check_parameters(operation_type: str, parameters: dict[str, Any], run_at: str | None) -> None:
    """The options, checked once with a placeholder subscription: a bad --amount is a usage error, not 5,000."""
    from billops.operations.operation_messages import MessageInvalid, parse_message

    try:
        parse_message(message_for(operation_type, "0", "check", parameters, run_at))
    except MessageInvalid as problem:
        raise CliError(f"invalid options: {problem.message}", EXIT_USAGE) from None


# --- the CSV --------------------------------------------------------------------------------------------------------


def read_rows(path: Path, column: str, *, no_header: bool = False) -> list[Row]:
    """One Row per non-blank line (line numbers as in the file; a header is line 1)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    rows: list[Row] = []
    with handle:
        if no_header:
            for number, cells in enumerate(csv.reader(handle), start=1):
                if not any(cell.strip() for cell in cells):
                    continue
                rows.append(Row(number, cells[0].strip()))
            return rows
        reader = csv.DictReader(handle)
        fields = [name.strip() for name in (reader.fieldnames or [])]
        if column not in fields:
            raise CliError(f"{path} has no column {column!r} (its header: {', '.join(fields) or 'empty'}); give "
                           "--column NAME, or --no-header for a file of bare IDs", EXIT_USAGE)
        reader.fieldnames = fields
        for raw in reader:
            if not any((value or "").strip() for value in raw.values() if isinstance(value, str)):
                continue
            rows.append(Row(reader.line_num, (raw.get(column) or "").strip()))
    return rows


# --- checks ---------------------------------------------------------------------------------------------------------


def prepare_messages(rows: Sequence[Row], operation_type: str, prefix: str, parameters: dict[str, Any],
                     run_at: str | None) -> None:
    """The message and key of every row; bad IDs and repeated rows are refused."""
    from billops.operations.operation_messages import MessageInvalid, canonical_json, parse_message
    from billops.operations.operation_records import operation_id_for

    first_line: dict[str, int] = {}
    for row in rows:
        if not row.subscription_id:
            row.refuse("no subscription ID on this line")
            continue
        if row.subscription_id in first_line:
            row.refuse(f"the same subscription as line {first_line[row.subscription_id]} (sent once)")
            continue
        first_line[row.subscription_id] = row.line
        key = f"{prefix}{KEY_SEPARATOR}{row.subscription_id}"
        try:
            message = parse_message(message_for(operation_type, row.subscription_id, key, parameters, run_at))
        except MessageInvalid as problem:
            row.refuse(problem.message, param=problem.param)
            continue
        row.idempotency_key, row.operation_id = key, operation_id_for(key)
        row.message, row.body = message, canonical_json(message)


def check_subscriptions(rows: Sequence[Row], subscriptions: dict[str, dict[str, Any]], *,
                        allow_unknown: bool) -> None:
    """The worker's own planning (rules against the known subscription) for every row still valid."""
    from billops.operations.operation_actions import ActionRefused, plan_for
    from billops.operations.operation_records import new_record
    from billops.operations.subscription_facts_store import SubscriptionFactsStore

    facts_store = SubscriptionFactsStore(table=None)  # facts() and current_recurring_price() read no table
    now = datetime.now(UTC)
    client = _NoCalls()
    for row in rows:
        if row.message is None or row.status != "pending":
            continue
        record = subscriptions.get(row.subscription_id)
        if record is None and not allow_unknown:
            row.refuse("unknown subscription: not in the subscriptions table (no webhook of it was stored); "
                       "--allow-unknown sends it anyway", param="subscription_id")
            continue
        facts = facts_store.facts(row.subscription_id, record)
        current_price = SubscriptionFactsStore.current_recurring_price(record)
        operation = new_record(row.message, now, max_attempts=1)
        try:
            plan = plan_for(operation, client, facts, current_price)  # type: ignore[arg-type]
        except ActionRefused as refusal:
            row.refuse(refusal.message, code=refusal.code, param=refusal.param)
            continue
        row.plan = plan.details


def check_existing(rows: Sequence[Row], operations: dict[str, dict[str, Any]]) -> None:
    """Keys already used: the same request is not sent again (its status is reported), another one is refused."""
    from billops.operations.operation_records import request_hash

    for row in rows:
        if row.status != "pending" or row.operation_id is None:
            continue
        existing = operations.get(row.operation_id)
        if existing is None:
            continue
        if existing.get("request_hash") != request_hash(row.message):
            row.refuse(f"the key {row.idempotency_key} was already used for another request (operation "
                       f"{row.operation_id}); choose another --key-prefix for different parameters",
                       param="idempotency_key")
            continue
        row.already_recorded = True
        row.plan = existing.get("plan") or None
        update_from_record(row, existing)


def update_from_record(row: Row, record: dict[str, Any]) -> None:
    from billops.operation_states import API_STATUS, RETRY_WAIT

    status = str(record.get("status"))
    row.record_status = status
    row.status = API_STATUS.get(status, status)
    row.escalated = bool(record.get("escalated"))
    failure = record.get("failure") or {}
    if row.status == "failed":
        row.reason = str(failure.get("message") or failure.get("meaning") or record.get("failure_reason") or "failed")
        code = failure.get("code")
        row.code = int(code) if code is not None else None
        row.param = failure.get("param")
    elif row.status == "unknown":
        row.reason = str(record.get("unknown_reason") or "the outcome is not known yet")
        if row.escalated:
            row.reason += " (escalated: a person must decide)"
    elif status == RETRY_WAIT:
        row.reason = f"retrying: {record.get('retry_reason') or ''}".strip()
    else:
        row.reason = None


# --- DynamoDB and SQS in batches ------------------------------------------------------------------------------------


def send_rows(sqs: Any, queue_url: str, rows: Sequence[Row], *, on_chunk: Callable[[int], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """SendMessageBatch, SEND_BATCH_SIZE at a time; rows become ``queued`` or ``send_failed``. A batch resent after
    a lost answer is harmless: the deduplication ID (the key) makes SQS drop what it already has."""
    from botocore.exceptions import BotoCoreError, ClientError

    for chunk in chunks(list(rows), SEND_BATCH_SIZE):
        pending = {str(index): row for index, row in enumerate(chunk)}
        problem = "SQS did not accept the message"
        for attempt in range(SEND_ATTEMPTS):
            entries = [{"Id": entry_id, "MessageBody": row.body, "MessageGroupId": row.subscription_id,
                        "MessageDeduplicationId": row.idempotency_key} for entry_id, row in pending.items()]
            try:
                answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                problem = f"SendMessageBatch failed: {error}"
                sleep(0.2 * 2 ** attempt)
                continue
            for accepted in answer.get("Successful", []):
                row = pending.pop(str(accepted["Id"]))
                row.status, row.reason = "queued", None
                row.record_status = None
            retry: dict[str, Row] = {}
            for refused in answer.get("Failed", []):
                row = pending.pop(str(refused["Id"]))
                text = f"{refused.get('Code')}: {refused.get('Message') or ''}".strip()
                if refused.get("SenderFault"):
                    row.status, row.reason = "send_failed", f"SQS refused the message ({text})"
                else:
                    retry[str(refused["Id"])] = row
                    problem = f"SQS failed to take the message ({text})"
            pending = retry
            if not pending:
                break
            sleep(0.2 * 2 ** attempt)
        for row in pending.values():
            row.status, row.reason = "send_failed", problem
        if on_chunk is not None:
            on_chunk(len(chunk))


def wait_for_outcomes(dynamodb: Any, table: str, rows: Sequence[Row], *, timeout: float, interval: float,
                      progress: Progress | None = None, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll the operation records until every row is final; True when the timeout came first."""
    watched = [row for row in rows if row.operation_id and not row.final]
    total = len(watched)
    deadline = clock() + timeout
    while True:
        open_rows = [row for row in watched if not row.final]
        if open_rows:
            records = batch_get(dynamodb, table, "operation_id", [row.operation_id for row in open_rows],
                                OPERATION_ATTRIBUTES, consistent=True, sleep=sleep)
            for row in open_rows:
                record = records.get(str(row.operation_id))
                if record is not None:
                    update_from_record(row, record)
            open_rows = [row for row in watched if not row.final]
        if progress is not None:
            progress.update(total - len(open_rows), _counts_text(watched))
        if not open_rows:
            return False
        if clock() >= deadline:
            return True
        sleep(min(interval, max(0.0, deadline - clock())))


# --- the command ----------------------------------------------------------------------------------------------------


def run_bulk(args: argparse.Namespace, target: Target, out: Output) -> int:
    operation_type = args.operation_type
    prefix = check_prefix(args.key_prefix)
    parameters = parameters_for(args)
    check_parameters(operation_type, parameters, args.run_at)
    rows = read_rows(args.csv, args.column.strip(), no_header=args.no_header)
    if not rows:
        raise CliError(f"{args.csv} has no subscription IDs")
    show_progress = not args.no_progress

    target.activate("SubscriptionsTable", "OperationsTable", "OperationsQueue")
    dynamodb = target.client("dynamodb")
    subscriptions_table = target.table("SubscriptionsTable")
    operations_table = target.table("OperationsTable")

    prepare_messages(rows, operation_type, prefix, parameters, args.run_at)
    # Earlier runs first: a row already sent under its key is reported as it stands, not checked again against a
    # subscription its own operation may have changed since (a discount lowers the price the rules start from).
    candidates = [row for row in rows if row.status == "pending"]
    with Progress(len(candidates), "checking earlier runs", enabled=show_progress) as progress:
        operations = batch_get(dynamodb, operations_table, "operation_id",
                               [str(row.operation_id) for row in candidates], OPERATION_ATTRIBUTES,
                               consistent=True, on_chunk=progress.advance)
    check_existing(rows, operations)
    candidates = [row for row in rows if row.status == "pending"]
    with Progress(len(candidates), "checking subscriptions", enabled=show_progress) as progress:
        subscriptions = batch_get(dynamodb, subscriptions_table, "subscription_id",
                                  [row.subscription_id for row in candidates], FACT_ATTRIBUTES,
                                  on_chunk=progress.advance)
    check_subscriptions(rows, subscriptions, allow_unknown=args.allow_unknown)
    to_send = [row for row in rows if row.status == "pending"]

    timed_out = False
    if args.dry_run:
        for row in to_send:
            row.status = "would_send"
    elif to_send:
        queue_url = target.queue_url("OperationsQueue")
        with Progress(len(to_send), "sending", enabled=show_progress) as progress:
            send_rows(target.client("sqs"), queue_url, to_send, on_chunk=progress.advance)
    if args.wait and not args.dry_run:
        watched = [row for row in rows if row.operation_id and row.status not in ("invalid", "send_failed")]
        with Progress(len(watched), "waiting for outcomes", enabled=show_progress) as progress:
            timed_out = wait_for_outcomes(dynamodb, operations_table, watched, timeout=args.timeout,
                                          interval=args.poll_interval, progress=progress)

    document = summary_document(rows, operation_type=operation_type, parameters=parameters, run_at=args.run_at,
                                prefix=prefix, dry_run=args.dry_run, waited=args.wait and not args.dry_run,
                                timed_out=timed_out, target=target.description, csv_path=str(args.csv))
    out.emit(document, human_summary(document, rows, show=args.show))
    return exit_code(rows, waited=args.wait and not args.dry_run)


def counts(rows: Iterable[Row]) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows:
        found[row.status] = found.get(row.status, 0) + 1
    ordered = {status: found.pop(status) for status in STATUS_ORDER if status in found}
    ordered.update(sorted(found.items()))
    return ordered


def _counts_text(rows: Iterable[Row]) -> str:
    return ", ".join(f"{status} {number}" for status, number in counts(rows).items())


def exit_code(rows: Sequence[Row], *, waited: bool) -> int:
    statuses = {row.status for row in rows}
    if statuses & FAILED_STATUSES:
        return EXIT_FAILED
    if "unknown" in statuses:
        return EXIT_UNKNOWN
    if waited and statuses - FINAL_API_STATUSES:
        return EXIT_UNKNOWN
    return EXIT_OK


def summary_document(rows: Sequence[Row], **context: Any) -> dict[str, Any]:
    return {**context, "rows_total": len(rows), "counts": counts(rows), "rows": [row.as_dict() for row in rows]}


def plan_text(plan: dict[str, Any] | None) -> str | None:
    if not plan:
        return None
    if plan.get("action") == "discountSubscription":
        text = f"{plan.get('param')} {plan.get('value')}"
        if plan.get("current_recurring_price"):
            text += f" (from {plan['current_recurring_price']})"
        return text
    if plan.get("action") == "extendSubscription":
        return f"extendSubscription {plan.get('days')} days"
    return str(plan.get("action"))


def human_summary(document: dict[str, Any], rows: Sequence[Row], *, show: int) -> str:
    parameters = ", ".join(f"{name} {value}" for name, value in document["parameters"].items()) or "no parameters"
    head = (f"bulk {document['operation_type']} ({parameters}; keys {document['prefix']}{KEY_SEPARATOR}<subscription>"
            + (f"; run at {document['run_at']}" if document.get("run_at") else "")
            + f") from {document['csv_path']} on {document['target']}: {len(rows)} rows")
    lines = [head]
    if document["dry_run"]:
        lines.append("Dry run: nothing was sent.")
    lines.append("")
    lines.append(render_table([{"status": status, "rows": number} for status, number in document["counts"].items()],
                              [("status", "status"), ("rows", "rows")]))
    if document.get("timed_out"):
        lines.append("\nThe wait timed out: some operations are not final yet (run again with the same CSV and "
                     "--key-prefix to see them; nothing will be sent twice).")
    columns = [("line", "line"), ("subscription_id", "subscription"), ("status", "status"), ("reason", "reason")]
    problems = [row for row in rows if row.status in FAILED_STATUSES or row.status == "unknown"]
    if problems:
        lines.append(f"\nProblems ({len(problems)}" + (f", first {show}" if len(problems) > show else "") + "):")
        lines.append(render_table([_row_view(row) for row in problems[:show]],
                                  [*columns[:3], ("code", "code"), ("reason", "reason")], max_width=100))
        codes = {row.code: row.ccbill_meaning for row in problems[:show] if row.code is not None}
        if codes:
            lines.append("\nCCBill's result codes above:")
            lines.extend(f"  {code:>4}  {meaning}" for code, meaning in sorted(codes.items()))
    if document["dry_run"]:
        sending = [row for row in rows if row.status == "would_send"]
        if sending:
            lines.append(f"\nWould send ({len(sending)}" + (f", first {show}" if len(sending) > show else "") + "):")
            lines.append(render_table([_row_view(row) for row in sending[:show]],
                                      [*columns[:2], ("idempotency_key", "idempotency key"), ("plan", "request")],
                                      max_width=80))
    earlier = [row for row in rows if row.already_recorded]
    if earlier:
        lines.append(f"\n{len(earlier)} row(s) were sent by an earlier run with these keys; they were not sent again "
                     "(their current status is counted above).")
    return "\n".join(lines)


def _row_view(row: Row) -> dict[str, Any]:
    view = row.as_dict()
    view["plan"] = plan_text(row.plan)
    return view

