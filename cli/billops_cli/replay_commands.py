"""Replays after a fix: the dead-letter queues and quarantined webhook deliveries.

``billops dlq list|replay --queue operations|projector``

* operations (OperationsDeadLetterQueue, FIFO): messages the worker rejected (copied there with a ``reason``
  attribute) or that failed five receives (moved by the redrive policy). Replay sends each back to OperationsQueue
  with its message group and deduplication ID - a fresh deduplication ID when the original was used less than five
  minutes ago, since SQS would silently drop it - and deletes it from the dead-letter queue only once sent. The
  operation record takes it from there: nothing that already happened happens twice. A message that is still not a
  valid operation message, or whose idempotency key belongs to another request, would be refused again: it stays
  (``--force`` sends it anyway).
* projector (ProjectorDeadLetterQueue): Lambda's on-failure records of stream batches the projector gave up on.
  They describe the batch (shard, first and last sequence number, arrival times), not its records: replay reads
  those records' keys from the events table's stream (kept 24 hours), or - when the stream no longer has them -
  takes every delivery received between the batch's arrival times (the delivery log table, which the projector
  writes before it folds a batch), reads each delivery from the events table and applies it through
  billops.subscriptions.projection as the projector does
  (the fold is idempotent: a delivery already in a history changes nothing), settling upgrade operations and
  publishing SubscriptionChanged like the projector. The record is deleted once every delivery is applied.

``billops quarantine list|show|replay``: deliveries the receiver refused as malformed (answered 400, kept with the
reason and the redacted body). Replay runs a body through the receiver's own code (WebhookIntake.replay: everything
but the source and token checks, which the operator's table rights replace): a delivery that is now valid is stored
once (deduplicated like any delivery, then projected from the stream) and its quarantine record is marked replayed;
one that is still malformed stays in quarantine with the new reason. Quarantine records are never deleted.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billops_cli.aws_batches import batch_get, chunks
from billops_cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Output,
    render_fields,
    render_table,
    terminal_safe,
)
from billops_cli.progress import Progress
from billops_cli.targets import Target

QUEUES = {"operations": "OperationsDeadLetterQueue", "projector": "ProjectorDeadLetterQueue"}
DEDUPLICATION_WINDOW = timedelta(minutes=5, seconds=30)  # SQS's five minutes, and some
RECEIVE_VISIBILITY_SECONDS = 120
CONFLICT_REASON = "idempotency_key_conflict"
STREAM_GONE = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException", "ValidationException",
                         "ExpiredIteratorException"})
ARRIVAL_MARGIN = timedelta(minutes=5)
QUARANTINE_PREFIX = "quarantine#"
QUARANTINED = "quarantined"  # the delivery log's outcome of a quarantined delivery
QUARANTINE_LIST_ATTRIBUTES = ("pk", "record_type", "event_type", "reason", "param", "received_at", "raw_body_bytes",
                              "raw_body_truncated", "content_type", "query", "replayed_at", "replay_outcome",
                              "replayed_as", "replay_attempts", "last_replay_at")
DEFAULT_SINCE_DAYS = 30
REPLAYED_OUTCOMES = {"accepted": "replayed", "unknown_type": "replayed", "duplicate": "replayed_duplicate"}


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    dlq = commands.add_parser("dlq", help="list and replay the dead-letter queues")
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("list", "what waits in a dead-letter queue (messages stay there)"),
                         ("replay", "send dead-lettered work back through the system")):
        parser = dlq_actions.add_parser(action, parents=[common], help=text)
        parser.add_argument("--queue", choices=sorted(QUEUES), required=True,
                            help="operations (OperationsDeadLetterQueue) or projector (ProjectorDeadLetterQueue)")
        parser.add_argument("--max", type=int, default=100, metavar="N", help="at most N messages (default 100)")
        if action == "replay":
            parser.add_argument("--dry-run", action="store_true", help="show what would be replayed; change nothing")
            parser.add_argument("--force", action="store_true",
                                help="operations: send messages that would be refused again (invalid, key conflict)")
        parser.set_defaults(handler=dlq_list if action == "list" else dlq_replay)

    quarantine = commands.add_parser("quarantine", help="list, show and replay quarantined webhook deliveries")
    q_actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = q_actions.add_parser("list", parents=[common], help="quarantined deliveries (not yet replayed)")
    listing.add_argument("--since", metavar="DATE", help=f"received since (YYYY-MM-DD or ISO time; default "
                                                          f"{DEFAULT_SINCE_DAYS} days ago)")
    listing.add_argument("--all", action="store_true", help="include the ones already replayed")
    listing.add_argument("--limit", type=int, default=200, metavar="N", help="at most N (default 200)")
    listing.set_defaults(handler=quarantine_list)

    show = q_actions.add_parser("show", parents=[common], help="one quarantined delivery")
    show.add_argument("key", help="its key (quarantine#<hex>, or just the hex)")
    show.add_argument("--reveal", action="store_true", help="print the (redacted) raw body: it holds personal data")
    show.set_defaults(handler=quarantine_show)

    replay = q_actions.add_parser("replay", parents=[common],
                                  help="run quarantined deliveries through the receiver again (after a fix)")
    replay.add_argument("keys", nargs="*", metavar="KEY", help="quarantine keys (or give --all)")
    replay.add_argument("--all", action="store_true", help="every quarantined delivery not yet replayed (--since)")
    replay.add_argument("--since", metavar="DATE", help="with --all: received since (default 30 days ago)")
    replay.add_argument("--again", action="store_true", help="replay deliveries already replayed too")
    replay.add_argument("--dry-run", action="store_true", help="say what would happen; store and change nothing")
    replay.set_defaults(handler=quarantine_replay)


# --- SQS helpers ------------------------------------------------------------------------------------------------------


def receive(sqs: Any, queue_url: str, limit: int, *, visibility: int = RECEIVE_VISIBILITY_SECONDS) -> list[dict]:
    """Up to ``limit`` messages, held invisible for ``visibility`` seconds (release() gives them back)."""
    received: list[dict] = []
    while len(received) < limit:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(10, limit - len(received)),
                                     VisibilityTimeout=visibility, WaitTimeSeconds=1, AttributeNames=["All"],
                                     MessageAttributeNames=["All"])
        messages = answer.get("Messages") or []
        if not messages:
            break
        received.extend(messages)
    return received


def release(sqs: Any, queue_url: str, messages: Iterable[dict]) -> None:
    """Make messages visible again at once (a listing or a dry run leaves the queue as it found it)."""
    for chunk in chunks(list(messages), 10):
        entries = [{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                   for index, message in enumerate(chunk)]
        try:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except Exception:  # noqa: BLE001 - visibility runs out by itself; one by one is the fallback
            for entry in entries:
                try:
                    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=entry["ReceiptHandle"],
                                                  VisibilityTimeout=0)
                except Exception:  # noqa: BLE001, S112  # nosec B112  # one failed release is harmless: its visibility runs out by itself
                    continue


def drain(sqs: Any, queue_url: str, limit: int, handle: Callable[[dict], bool]) -> None:
    """Hand each message of the queue to ``handle`` once (at most ``limit``); ``handle`` returns True to leave it in
    the queue. Messages left are held invisible while the queue is read, so the next receive returns others; once
    the queue seems empty they are released and read once more, because on a FIFO queue a message left at the head
    of its group hides the ones behind it. Ends when a pass finds nothing new; everything left is visible again."""
    seen: set[str] = set()
    held: dict[str, dict] = {}
    handled = 0
    try:
        while handled < limit:
            fresh = False
            while handled < limit:
                batch = receive(sqs, queue_url, min(10, limit - handled))
                if not batch:
                    break
                for message in batch:
                    message_id = str(message.get("MessageId"))
                    if message_id in seen:
                        held[message_id] = message  # received again: its latest receipt handle
                        continue
                    seen.add(message_id)
                    handled += 1
                    fresh = True
                    if handle(message):
                        held[message_id] = message
                    if handled >= limit:
                        break
            if not fresh or not held:
                break
            release(sqs, queue_url, held.values())
            held.clear()
    finally:
        release(sqs, queue_url, held.values())


def approximate_depth(sqs: Any, queue_url: str) -> int:
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url,
                                              AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages") or 0)
    except Exception:  # noqa: BLE001 - only for the progress bar
        return 0


def _sent_at(message: dict) -> datetime | None:
    raw = (message.get("Attributes") or {}).get("SentTimestamp")
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None
    except (TypeError, ValueError):
        return None


def _message_attribute(message: dict, name: str) -> str | None:
    value = (message.get("MessageAttributes") or {}).get(name) or {}
    return value.get("StringValue") or None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


# --- the operations dead-letter queue --------------------------------------------------------------------------------


def describe_operation_message(message: dict, operations: Any | None = None) -> dict[str, Any]:
    """What a dead-lettered operation message is, without its body (the parsed IDs and the reason)."""
    from billops.operations.operation_messages import MessageInvalid, parse_message
    from billops.operations.operation_records import operation_id_for
    from billops.operation_states import API_STATUS

    attributes = message.get("Attributes") or {}
    view: dict[str, Any] = {
        "message_id": message.get("MessageId"),
        "group": attributes.get("MessageGroupId"),
        "deduplication_id": attributes.get("MessageDeduplicationId"),
        "sent_at": _iso(_sent_at(message)),
        "receive_count": int(attributes.get("ApproximateReceiveCount") or 0),
        "reason": _message_attribute(message, "reason") or "failed on every receive (moved by the redrive policy)",
        "operation_id": _message_attribute(message, "operation_id"),
        "body_bytes": len(str(message.get("Body") or "").encode("utf-8")),
    }
    try:
        parsed = parse_message(str(message.get("Body") or ""))
    except MessageInvalid as problem:
        view.update({"valid": False, "problem": problem.message})
    else:
        view.update({"valid": True, "problem": None, "operation_type": parsed.operation_type,
                     "subscription_id": parsed.subscription_id, "idempotency_key": parsed.idempotency_key})
        view["operation_id"] = view["operation_id"] or operation_id_for(parsed.idempotency_key)
    if operations is not None and view["operation_id"]:
        try:
            record = operations.get(str(view["operation_id"]))
        except Exception:  # noqa: BLE001 - the listing is still useful without it
            record = None
        if record is not None:
            view["operation_status"] = API_STATUS.get(str(record.get("status")), record.get("status"))
            view["operation_record_status"] = record.get("status")
    return view


def replay_decision(view: dict[str, Any], *, force: bool) -> str | None:
    """None: send it back; otherwise why it stays in the dead-letter queue."""
    if force:
        return None
    if not view.get("valid"):
        return f"still not a valid operation message ({view.get('problem')}); fix the sender, or --force"
    if str(view.get("reason") or "").startswith(CONFLICT_REASON):
        return "its idempotency key belongs to another request, which would refuse it again; --force sends it"
    return None


def deduplication_id_for(message: dict, now: datetime) -> str:
    """The original deduplication ID, unless SQS may still remember it (then a fresh one, stable per message)."""
    original = (message.get("Attributes") or {}).get("MessageDeduplicationId")
    sent = _sent_at(message)
    if original and sent is not None and now - sent > DEDUPLICATION_WINDOW:
        return str(original)
    return hashlib.sha256(f"{original}|replay|{message.get('MessageId')}".encode()).hexdigest()


def _operations_table(target: Target) -> Any:
    from billops.storage.operations_table import OperationsTable

    return OperationsTable(target.table("OperationsTable"), target.client("dynamodb"))


def dlq_list(args: argparse.Namespace, target: Target, out: Output) -> int:
    sqs = target.client("sqs")
    url = target.queue_url(QUEUES[args.queue])
    messages = receive(sqs, url, args.max, visibility=30)
    try:
        if args.queue == "operations":
            target.activate("OperationsTable")
            operations = _operations_table(target)
            views = [describe_operation_message(message, operations) for message in messages]
            columns = [("sent_at", "sent"), ("group", "subscription"), ("operation_type", "type"),
                       ("idempotency_key", "key"), ("operation_status", "operation"), ("reason", "reason")]
        else:
            views = [describe_projector_record(message) for message in messages]
            columns = [("failed_at", "failed"), ("batch_size", "records"), ("first_arrival", "first arrival"),
                       ("last_arrival", "last arrival"), ("shard_id", "shard"), ("condition", "why")]
    finally:
        release(sqs, url, messages)
    human = (f"{len(views)} message(s) in the {args.queue} dead-letter queue"
             + (f" (showing at most {args.max})" if len(views) >= args.max else "") + ".")
    if views:
        human += "\n\n" + render_table(views, columns, max_width=70)
    out.emit({"queue": args.queue, "queue_url": url, "messages": views}, human)
    return EXIT_OK


def dlq_replay(args: argparse.Namespace, target: Target, out: Output) -> int:
    if args.queue == "operations":
        return _replay_operations(args, target, out)
    return _replay_projector(args, target, out)


def _replay_operations(args: argparse.Namespace, target: Target, out: Output) -> int:
    target.activate("OperationsTable", "OperationsQueue")
    sqs = target.client("sqs")
    dead = target.queue_url(QUEUES["operations"])
    queue = target.queue_url("OperationsQueue")
    operations = _operations_table(target)
    results: list[dict[str, Any]] = []
    progress = Progress(min(args.max, approximate_depth(sqs, dead)) or args.max, "replaying operations",
                        enabled=not args.no_progress)

    def handle(message: dict) -> bool:
        view = describe_operation_message(message, operations)
        results.append(view)
        progress.advance()
        reason = replay_decision(view, force=args.force)
        if reason is not None:
            view.update({"outcome": "kept", "detail": reason})
        elif args.dry_run:
            view.update({"outcome": "would_replay", "detail": None})
        else:
            view.update(_send_back(sqs, queue, dead, message, view))
        return view["outcome"] != "replayed"

    try:
        drain(sqs, dead, args.max, handle)
    finally:
        progress.close()
    return _report_replay(out, "operations", results, args.dry_run)


def _send_back(sqs: Any, queue: str, dead: str, message: dict, view: dict[str, Any]) -> dict[str, Any]:
    group = view.get("group") or view.get("subscription_id") or "rejected"
    deduplication_id = deduplication_id_for(message, datetime.now(UTC))
    try:
        sent = sqs.send_message(QueueUrl=queue, MessageBody=message["Body"], MessageGroupId=str(group)[:128],
                                MessageDeduplicationId=deduplication_id)
    except Exception as error:  # noqa: BLE001 - reported per message; it stays in the dead-letter queue
        return {"outcome": "send_failed", "detail": f"{type(error).__name__}: {error}"}
    try:
        sqs.delete_message(QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"])
    except Exception as error:  # noqa: BLE001 - sent already: a later replay sends it again, which is harmless
        return {"outcome": "replayed", "detail": f"sent as {sent.get('MessageId')}, but not deleted from the "
                                                 f"dead-letter queue ({type(error).__name__})"}
    return {"outcome": "replayed", "detail": f"sent as {sent.get('MessageId')} (deduplication ID "
                                             f"{'original' if deduplication_id == view.get('deduplication_id') else 'fresh'})"}


def _report_replay(out: Output, queue: str, results: list[dict[str, Any]], dry_run: bool) -> int:
    tally: dict[str, int] = {}
    for result in results:
        tally[result["outcome"]] = tally.get(result["outcome"], 0) + 1
    if queue == "operations":
        columns = [("group", "subscription"), ("operation_type", "type"), ("idempotency_key", "key"),
                   ("outcome", "outcome"), ("detail", "detail")]
    else:
        columns = [("failed_at", "failed"), ("batch_size", "records"), ("outcome", "outcome"), ("detail", "detail")]
    human = (("Dry run: nothing was changed.\n" if dry_run else "")
             + f"{len(results)} message(s) from the {queue} dead-letter queue: "
             + (", ".join(f"{outcome} {number}" for outcome, number in sorted(tally.items())) or "none") + ".")
    if results:
        human += "\n\n" + render_table(results, columns, max_width=90)
    out.emit({"queue": queue, "dry_run": dry_run, "counts": tally, "messages": results}, human)
    failed = {"kept", "send_failed", "failed"} & set(tally)
    return EXIT_FAILED if failed and not dry_run else EXIT_OK


# --- the projector dead-letter queue ---------------------------------------------------------------------------------


def describe_projector_record(message: dict) -> dict[str, Any]:
    try:
        record = json.loads(message.get("Body") or "")
    except ValueError:
        record = None
    info = (record or {}).get("DDBStreamBatchInfo") if isinstance(record, dict) else None
    if not isinstance(info, dict):
        return {"message_id": message.get("MessageId"), "valid": False,
                "problem": "not a Lambda on-failure record of a DynamoDB stream batch"}
    context = record.get("requestContext") or {}
    return {
        "message_id": message.get("MessageId"),
        "valid": True,
        "failed_at": record.get("timestamp"),
        "condition": context.get("condition"),
        "invocations": context.get("approximateInvokeCount"),
        "function_error": (record.get("responseContext") or {}).get("functionError"),
        "stream_arn": info.get("streamArn"),
        "shard_id": info.get("shardId"),
        "start_sequence_number": info.get("startSequenceNumber"),
        "end_sequence_number": info.get("endSequenceNumber"),
        "batch_size": info.get("batchSize"),
        "first_arrival": info.get("approximateArrivalOfFirstRecord"),
        "last_arrival": info.get("approximateArrivalOfLastRecord"),
    }


class StreamGone(Exception):
    """The stream no longer holds the batch's records (older than 24 hours, or the stream was replaced)."""


def keys_from_stream(streams: Any, view: dict[str, Any], *, max_empty_pages: int = 5) -> list[str]:
    """The events-table keys of the batch's records, read from the stream between its sequence numbers."""
    from botocore.exceptions import ClientError, ParamValidationError

    end = int(view["end_sequence_number"])
    keys: list[str] = []
    try:
        iterator = streams.get_shard_iterator(StreamArn=view["stream_arn"], ShardId=view["shard_id"],
                                              ShardIteratorType="AT_SEQUENCE_NUMBER",
                                              SequenceNumber=str(view["start_sequence_number"]))["ShardIterator"]
        empty = 0
        while iterator and empty < max_empty_pages:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = answer.get("Records") or []
            for record in records:
                stream = record.get("dynamodb") or {}
                if int(stream.get("SequenceNumber", 0)) > end:
                    return keys
                key = ((stream.get("Keys") or {}).get("pk") or {}).get("S")
                if key and key not in keys:
                    keys.append(key)
                if int(stream.get("SequenceNumber", 0)) == end:
                    return keys
            empty = 0 if records else empty + 1
            iterator = answer.get("NextShardIterator")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in STREAM_GONE:
            raise StreamGone(str(error)) from None
        raise
    except ParamValidationError as error:  # a shard ID of another stream's format
        raise StreamGone(str(error)) from None
    if not keys:
        raise StreamGone("no record of the batch is left in the stream")
    return keys


def keys_by_arrival(dynamodb: Any, delivery_log_table: str, view: dict[str, Any]) -> list[str]:
    """Every delivery received between the batch's first and last arrival (with a margin), from the delivery log
    (the projector logs a batch before it folds it): a superset of the batch, harmless since the fold ignores what
    it has already applied."""
    first = _parse_time(view.get("first_arrival"))
    last = _parse_time(view.get("last_arrival")) or first
    if first is None or last is None:
        raise CliError(f"the on-failure record {view.get('message_id')} has no arrival times; cannot find its "
                       "deliveries")
    start, stop = first - ARRIVAL_MARGIN, last + ARRIVAL_MARGIN
    return [str(item["delivery_key"]) for item in _logged_between(dynamodb, delivery_log_table, start, stop)
            if item.get("outcome") != QUARANTINED]


def _logged_between(dynamodb: Any, delivery_log_table: str, start: datetime, stop: datetime,
                    outcome: str | None = None) -> list[dict[str, Any]]:
    from billops.storage.delivery_log_table import DeliveryLogTable

    return DeliveryLogTable(delivery_log_table, dynamodb).between(start, stop, outcome=outcome)


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    value = str(text).strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _projector_environment(target: Target) -> dict[str, str]:
    """The projector's settings for this stack: its resources (as ``activate`` set them) and the stack's
    BILLOPS_CUSTOMER_REFERENCE_FIELD and pass-through settings (read from its webhook receiver), so a replayed fold
    keeps the customer reference as the projector would; without them the fold goes on without one."""
    try:
        environment = target.receiver_environment()
    except CliError:
        environment = {}
    return {**os.environ, **environment}


class ProjectorReplayer:
    """Applies stored deliveries with the projector's own Projector (billops.composition.projector: fold, upgrade
    settlement, SubscriptionChanged, the daily figures); the delivery log is not written again (the projector logged
    the batch before it failed)."""

    def __init__(self, target: Target) -> None:
        from billops.composition.projector import build_projector
        from billops.settings import load
        from billops.settings.functions import SubscriptionProjectorSettings
        from billops.storage.events_table import EventsTable

        target.activate("EventsTable", "SubscriptionsTable", "SubscriptionHistoryTable", "OperationsTable",
                        "DomainEventBus")
        dynamodb = target.client("dynamodb")
        self.events = EventsTable(target.table("EventsTable"), dynamodb)
        try:
            target.table("OperationsTable")
            settle = True
        except CliError:
            settle = False
        settings = load(SubscriptionProjectorSettings, _projector_environment(target))
        self.projector = build_projector(settings, settle=settle, log=False, dynamodb=dynamodb,
                                         reports=self._report_counter(target, dynamodb))
        self.subscriptions = self.projector.subscriptions

    @staticmethod
    def _report_counter(target: Target, dynamodb: Any) -> Any:
        """The daily figures count replayed deliveries as the projector does (each once: billops.reports)."""
        from billops.domain_events.publishing import publisher_for
        from billops.reports.batch_counting import ReportCounter
        from billops.reports.report_metrics import ReportMetrics
        from billops.reports.report_settings import report_settings_from_env
        from billops.settings.registry import variables
        from billops.storage.reports_table import ReportsTable

        try:
            table = target.table("ReportsTable")
        except CliError:
            return None  # a stack from before the reports
        settings = report_settings_from_env({
            "BILLOPS_REPORTS_TABLE": table, "BILLOPS_REPORT_GAUGE_SECONDS": "0",
            **{name: value for name in ("BILLOPS_REPORT_CURRENCY", "BILLOPS_REPORT_EXCHANGE_RATES",
                                        "BILLOPS_CHARGEBACK_THRESHOLDS")
               if (value := target.setting(str(variables()[name].parameter), name))}})
        return ReportCounter(settings, ReportsTable(table, dynamodb), publisher_for(target.event_bus()),
                             ReportMetrics(sink=lambda line: None))

    def preview(self, key: str) -> str:
        delivery = self.events.get(key)
        if delivery is None:
            return "missing"
        if delivery.get("record_type") != "delivery" or not delivery.get("subscription_id"):
            return "skipped"
        record = self.subscriptions.get(str(delivery["subscription_id"]))
        history = {entry.get("key") for entry in (record or {}).get("history") or []}
        return "already_applied" if key in history else "would_apply"

    def apply(self, key: str) -> str:
        delivery = self.events.get(key)
        if delivery is None:
            return "missing"
        return self.projector.replay(delivery)


def _replay_projector(args: argparse.Namespace, target: Target, out: Output) -> int:
    replayer = ProjectorReplayer(target)
    sqs = target.client("sqs")
    streams = target.client("dynamodbstreams")
    dynamodb = target.client("dynamodb")
    dead = target.queue_url(QUEUES["projector"])
    results: list[dict[str, Any]] = []
    progress = Progress(min(args.max, approximate_depth(sqs, dead)) or args.max, "replaying projector batches",
                        enabled=not args.no_progress)
    step: Callable[[str], str] = replayer.preview if args.dry_run else replayer.apply

    def handle(message: dict) -> bool:
        view = describe_projector_record(message)
        results.append(view)
        progress.advance()
        if not view["valid"]:
            view.update({"outcome": "kept", "detail": view["problem"]})
            return True
        try:
            keys = keys_from_stream(streams, view)
            view["source"] = "stream"
        except StreamGone as gone:
            keys = keys_by_arrival(dynamodb, target.table("DeliveryLogTable"), view)
            view["source"] = f"events received between the arrival times ({gone})"
        view["keys"] = keys
        outcomes: dict[str, int] = {}
        failure = None
        for key in keys:
            try:
                outcome = step(key)
            except Exception as error:  # noqa: BLE001 - the record stays in the queue
                failure = f"{key}: {type(error).__name__}: {error}"
                break
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        view["deliveries"] = outcomes
        summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items())) or "no deliveries"
        if failure is not None:
            view.update({"outcome": "failed", "detail": f"{summary}; stopped at {failure}"})
            return True
        if args.dry_run:
            view.update({"outcome": "would_replay", "detail": f"{summary} (from {view['source']})"})
            return True
        sqs.delete_message(QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"])
        view.update({"outcome": "replayed", "detail": f"{summary} (from {view['source']})"})
        return False

    try:
        drain(sqs, dead, args.max, handle)
    finally:
        progress.close()
    return _report_replay(out, "projector", results, args.dry_run)


# --- quarantine ------------------------------------------------------------------------------------------------------


def quarantine_key(text: str) -> str:
    text = text.strip()
    return text if text.startswith(QUARANTINE_PREFIX) else QUARANTINE_PREFIX + text


def since_moment(text: str | None, *, default_days: int = DEFAULT_SINCE_DAYS) -> datetime:
    if not text:
        return datetime.now(UTC) - timedelta(days=default_days)
    moment = _parse_time(text)
    if moment is None:
        try:
            moment = datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), UTC)
        except ValueError:
            raise CliError(f"--since {text!r}: give a date (2026-11-01) or an ISO time", 2) from None
    return moment


def list_quarantined(target: Target, since: datetime, *, include_replayed: bool,
                     limit: int) -> list[dict[str, Any]]:
    dynamodb = target.client("dynamodb")
    table = target.table("EventsTable")
    logged = _logged_between(dynamodb, target.table("DeliveryLogTable"), since,
                             datetime.now(UTC) + timedelta(minutes=1), QUARANTINED)
    keys = [str(item["delivery_key"]) for item in logged]
    items = batch_get(dynamodb, table, "pk", keys, QUARANTINE_LIST_ATTRIBUTES, consistent=True)
    found = [items[key] for key in keys if key in items]
    if not include_replayed:
        found = [item for item in found if not item.get("replayed_at")]
    return [quarantine_view(item) for item in found[:limit]]


def quarantine_view(item: dict[str, Any]) -> dict[str, Any]:
    query = item.get("query") or {}
    return {
        "key": item.get("pk"),
        "event_type": item.get("event_type") or query.get("eventType"),
        "received_at": item.get("received_at"),
        "reason": item.get("reason"),
        "param": item.get("param"),
        "body_bytes": item.get("raw_body_bytes"),
        "truncated": bool(item.get("raw_body_truncated")),
        "content_type": item.get("content_type"),
        "query": {name: value for name, value in query.items() if name != "token"},
        "replayed_at": item.get("replayed_at"),
        "replay_outcome": item.get("replay_outcome"),
        "replayed_as": item.get("replayed_as"),
        "replay_attempts": len(item.get("replay_attempts") or []),
    }


def quarantine_list(args: argparse.Namespace, target: Target, out: Output) -> int:
    target.activate("EventsTable")
    since = since_moment(args.since)
    views = list_quarantined(target, since, include_replayed=args.all, limit=args.limit)
    human = f"{len(views)} quarantined deliver{'y' if len(views) == 1 else 'ies'} since {_iso(since)}" + \
        ("" if args.all else " (not yet replayed; --all shows every one)") + "."
    if views:
        human += "\n\n" + render_table(views, [("received_at", "received"), ("event_type", "event"),
                                               ("key", "key"), ("reason", "reason"), ("replayed_at", "replayed")],
                                       max_width=80)
    out.emit({"since": _iso(since), "deliveries": views}, human)
    return EXIT_OK


def quarantine_show(args: argparse.Namespace, target: Target, out: Output) -> int:
    from billops.storage.events_table import EventsTable

    target.activate("EventsTable")
    key = quarantine_key(args.key)
    item = EventsTable(target.table("EventsTable"), target.client("dynamodb")).get(key)
    if item is None or item.get("record_type") != "quarantine":
        raise CliError(f"no quarantined delivery {key}")
    view = quarantine_view(item)
    if item.get("source_ip"):
        view["source_ip"] = item["source_ip"]
    view["attempts"] = list(item.get("replay_attempts") or [])
    if args.reveal:
        from billops.privacy.subscriber_view import (
            quarantined_raw_body,  # stored encrypted: needs kms:Decrypt
        )

        view["raw_body"] = quarantined_raw_body(item)
    pairs = [(name.replace("_", " "), value) for name, value in view.items() if name not in ("raw_body", "attempts")]
    human = render_fields(pairs)
    if view["attempts"]:
        human += "\n\nReplays:\n" + render_table(view["attempts"], [("at", "at"), ("outcome", "outcome"),
                                                                    ("reason", "reason"), ("by", "by")], max_width=80)
    human += ("\n\nRaw body (redacted at receipt; personal data):\n"
              + terminal_safe(str(view.get("raw_body") or ""), keep="\n\t")
              if args.reveal else "\n\nThe raw body holds personal data: --reveal prints it.")
    out.emit(view, human)
    return EXIT_OK


class _ExistenceStore:
    """For dry runs: answers put_once as DynamoDB would (stored unless the key exists) and writes nothing."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def put_once(self, item: dict[str, Any]) -> bool:
        return self.events.get(str(item["pk"])) is None


def _operator(target: Target) -> str:
    try:
        return str(target.client("sts").get_caller_identity()["Arn"])
    except Exception:  # noqa: BLE001 - who replayed is a courtesy, not a condition
        try:
            return getpass.getuser()
        except Exception:  # noqa: BLE001
            return "unknown"


def mark_quarantine(dynamodb: Any, table: str, key: str, values: dict[str, Any], attempt: dict[str, Any],
                    remove: Iterable[str] = ()) -> None:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    names: dict[str, str] = {"#rt": "record_type", "#att": "replay_attempts"}
    expression_values: dict[str, Any] = {":quarantine": {"S": "quarantine"}, ":empty": {"L": []},
                                         ":attempt": {"L": [serializer.serialize(_clean(attempt))]}}
    sets = ["#att = list_append(if_not_exists(#att, :empty), :attempt)"]
    for index, (name, value) in enumerate(values.items()):
        names[f"#n{index}"] = name
        expression_values[f":v{index}"] = serializer.serialize(value)
        sets.append(f"#n{index} = :v{index}")
    removals = []
    for index, name in enumerate(remove):
        names[f"#r{index}"] = name
        removals.append(f"#r{index}")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removals) if removals else "")
    dynamodb.update_item(TableName=table, Key={"pk": {"S": key}}, UpdateExpression=expression,
                         ConditionExpression="attribute_exists(pk) AND #rt = :quarantine",
                         ExpressionAttributeNames=names, ExpressionAttributeValues=expression_values)


def _clean(value: dict[str, Any]) -> dict[str, Any]:
    return {name: item for name, item in value.items() if item is not None}


def quarantine_replay(args: argparse.Namespace, target: Target, out: Output) -> int:
    from billops.settings import settings_from_env
    from billops.storage.events_table import EventsTable
    from billops.webhooks.intake import WebhookIntake

    if bool(args.keys) == bool(args.all):
        raise CliError("give quarantine keys, or --all", 2)
    target.activate("EventsTable", "BillopsKey")  # a replayed delivery is stored encrypted, as the receiver does
    settings = settings_from_env({**os.environ, **target.receiver_environment()})
    dynamodb = target.client("dynamodb")
    table = target.table("EventsTable")
    events = EventsTable(table, dynamodb)
    intake = WebhookIntake(settings, _ExistenceStore(events) if args.dry_run else events)
    if args.all:
        keys = [str(view["key"]) for view in list_quarantined(target, since_moment(args.since),
                                                              include_replayed=args.again, limit=100_000)]
    else:
        keys = [quarantine_key(key) for key in args.keys]
    operator = None if args.dry_run else _operator(target)
    results: list[dict[str, Any]] = []
    with Progress(len(keys), "replaying quarantined deliveries", enabled=not args.no_progress) as progress:
        for key in keys:
            results.append(_replay_one(key, events, intake, dynamodb, table, dry_run=args.dry_run, again=args.again,
                                       operator=operator))
            progress.advance()
    tally: dict[str, int] = {}
    for result in results:
        tally[result["outcome"]] = tally.get(result["outcome"], 0) + 1
    human = (("Dry run: nothing was stored or changed.\n" if args.dry_run else "")
             + f"{len(results)} quarantined deliver{'y' if len(results) == 1 else 'ies'}: "
             + (", ".join(f"{outcome} {number}" for outcome, number in sorted(tally.items())) or "none") + ".")
    if results:
        human += "\n\n" + render_table(results, [("key", "key"), ("event_type", "event"), ("outcome", "outcome"),
                                                 ("detail", "detail")], max_width=90)
    out.emit({"dry_run": args.dry_run, "counts": tally, "deliveries": results}, human)
    good = {"replayed", "replayed_duplicate", "already_replayed", "would_store", "would_be_duplicate"}
    return EXIT_OK if set(tally) <= good else EXIT_FAILED


def _replay_one(key: str, events: Any, intake: Any, dynamodb: Any, table: str, *, dry_run: bool, again: bool,
                operator: str | None) -> dict[str, Any]:
    item = events.get(key)
    result: dict[str, Any] = {"key": key, "event_type": None, "outcome": None, "detail": None}
    if item is None or item.get("record_type") != "quarantine":
        result.update({"outcome": "not_found", "detail": "no quarantined delivery with this key"})
        return result
    result["event_type"] = item.get("event_type") or (item.get("query") or {}).get("eventType")
    if item.get("replayed_at") and not again:
        result.update({"outcome": "already_replayed",
                       "detail": f"on {item['replayed_at']} as {item.get('replayed_as')} (--again to retry)"})
        return result
    if item.get("raw_body_truncated"):
        result.update({"outcome": "cannot_replay",
                       "detail": "only the first 32 KiB of the body were kept; it cannot be replayed"})
        return result
    received_at = _parse_time(item.get("received_at"))
    from billops.privacy.subscriber_view import quarantined_raw_body  # stored encrypted: needs kms:Decrypt

    answer = intake.replay(quarantined_raw_body(item).encode("utf-8"), item.get("content_type"),
                           dict(item.get("query") or {}), received_at=received_at, replayed_from=key)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    previous = item.get("reason")
    if answer.outcome in REPLAYED_OUTCOMES:
        outcome = REPLAYED_OUTCOMES[answer.outcome]
        if dry_run:
            outcome = "would_store" if answer.outcome != "duplicate" else "would_be_duplicate"
        result.update({"outcome": outcome, "delivery_key": answer.key,
                       "detail": f"{'already stored' if answer.outcome == 'duplicate' else 'stored'} as {answer.key}"})
        if not dry_run:
            mark_quarantine(dynamodb, table, key,
                            {"replayed_at": now, "replay_outcome": answer.outcome, "replayed_as": answer.key,
                             "replayed_by": operator, "last_replay_at": now},
                            {"at": now, "outcome": answer.outcome, "delivery_key": answer.key, "by": operator,
                             "previous_reason": previous})
        return result
    if answer.outcome == "quarantined":
        reason, param = answer.body.get("message"), answer.body.get("param")
        result.update({"outcome": "still_malformed", "reason": reason, "param": param,
                       "detail": f"{reason}" + ("" if reason == previous else f" (was: {previous})")})
        if not dry_run:
            mark_quarantine(dynamodb, table, key, {"reason": reason, "last_replay_at": now, **(
                {"param": param} if param else {})},
                {"at": now, "outcome": "still_malformed", "reason": reason, "param": param, "by": operator,
                 "previous_reason": previous}, remove=() if param else ("param",))
        return result
    message = answer.body.get("message") if isinstance(answer.body, dict) else None
    outcome = "rejected" if answer.outcome == "rejected" else "storage_failed"
    result.update({"outcome": outcome, "detail": message or answer.outcome})
    if not dry_run and outcome == "rejected":
        mark_quarantine(dynamodb, table, key, {"last_replay_at": now},
                        {"at": now, "outcome": "rejected", "reason": message, "by": operator})
    return result

