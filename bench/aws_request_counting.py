"""AWS requests and DynamoDB capacity units per webhook delivery, per duplicate, per projected delivery and per
operation: counted, not estimated, against moto's server with the template's resources.

How: every botocore client created in the process gets hooks (``botocore.session.Session.create_client`` is
wrapped). ``before-send`` counts each HTTP request (retries included), ``before-call`` / ``after-call`` see the
request and DynamoDB's answer. ``ReturnConsumedCapacity=TOTAL`` is injected by a ``before-parameter-build`` hook and
what moto reports is kept (``moto_reported_units``), but moto answers a constant (1.0 for any write, nothing for a
failed conditional write), so the units used are computed from the items with DynamoDB's documented rules
(bench.dynamodb_units): for that, each write's item before and after is read with an uncounted GetItem.

Scenarios (each run in its own interpreter by bench.__main__, ``python -m bench.aws_request_counting <scenario>``):

* ``ours``: the webhook receiver, template environment (token in Secrets Manager), HTTP API v2 events: one cold
  delivery, N new deliveries (an even mix of the 20 event types, JSON), the same N again (duplicates), and the same
  N again URL-encoded (a re-delivery in the other format);
* ``baseline``: bench.baseline_receiver with its idempotency and events tables, REST API v1 events, same phases;
* ``projector``: subscription lifecycles (NewSaleSuccess, 11 monthly RenewalSuccess, Cancellation, Expiration)
  stored by the receiver, then the events table's stream records handed to the projector one record per
  invocation (the batch size a low-volume merchant sees), and again in batches of the template's BatchSize for
  the stream (``batched``: 2 x B lifecycles in stream order, so each batch holds B subscriptions' deliveries of one
  day, as a rebill day gives);
* ``operations``: discount operations through the FIFO queue and the worker against the CCBill sandbox (the
  sender's SendMessage, the worker's requests; Lambda's event source mapping's ReceiveMessage and
  DeleteMessageBatch are added per batch as AWS bills them).

Each scenario also takes a second, uncounted pass on fresh data for in-process time (thread CPU of the
invocation, so moto's and the sandbox's threads are not billed to our code) and log bytes (the process's stdout is
a file; its size before and after a phase).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bench import dynamodb_units as units
from bench.isolated import stdout_position, write_result
from bench.stats import summary

TOKEN = "bench-webhook-token"
SQS_CHUNK_BYTES = 64 * 1024
EVENTBRIDGE_CHUNK_BYTES = 64 * 1024
CAPACITY_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query", "Scan", "BatchGetItem",
                       "BatchWriteItem", "TransactGetItems", "TransactWriteItems"}
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


# ----------------------------------------------------------------------------------------------------------------
# The ledger: one entry per API call
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    phase: str
    tag: str | None
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    table: str | None = None
    write_units_table: int = 0
    write_units_indexes: dict[str, int] = field(default_factory=dict)
    read_units: float = 0.0
    item_bytes: int | None = None
    moto_reported_units: float | None = None
    billed_units: int = 1  # SQS: 64 KB chunks; EventBridge PutEvents: events x 64 KB chunks; others: 1 request
    items_written: int = 0  # DynamoDB: items a successful write request wrote (a BatchWriteItem's processed puts)
    units_by_table: dict[str, list[int]] = field(default_factory=dict)
    """A request writing to several tables (BatchWriteItem): table name -> [table units, index units]."""

    @property
    def write_units(self) -> int:
        return self.write_units_table + sum(self.write_units_indexes.values())


class RequestLedger:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.enabled = False
        self.phase = "unlabelled"
        self.tag: str | None = None
        self._local = threading.local()
        self._tables: dict[str, units.TableSpec] = {}
        self._lookup_client: Any = None
        self._original_create_client: Any = None

    # --- installation ---------------------------------------------------------------------------------------------

    def install(self) -> None:
        import botocore.session

        if self._original_create_client is not None:
            return
        original = botocore.session.Session.create_client
        ledger = self

        def create_client(session_self, *args, **kwargs):
            client = original(session_self, *args, **kwargs)
            ledger._hook(client)
            return client

        self._original_create_client = original
        botocore.session.Session.create_client = create_client

    def _hook(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build.dynamodb", self._inject_consumed_capacity)
        events.register("before-call", self._before_call)
        events.register("before-send", self._before_send)
        events.register("after-call", self._after_call)

    @contextmanager
    def counting(self, phase: str) -> Iterator[None]:
        previous = (self.enabled, self.phase)
        self.enabled, self.phase = True, phase
        try:
            yield
        finally:
            self.enabled, self.phase = previous

    @contextmanager
    def _suspended(self) -> Iterator[None]:
        depth = getattr(self._local, "suspended", 0)
        self._local.suspended = depth + 1
        try:
            yield
        finally:
            self._local.suspended = depth

    def _active(self) -> bool:
        return self.enabled and not getattr(self._local, "suspended", 0)

    # --- hooks ----------------------------------------------------------------------------------------------------

    def _inject_consumed_capacity(self, params: dict, model: Any, **_: Any) -> None:
        if self._active() and model.name in CAPACITY_OPERATIONS and "ReturnConsumedCapacity" not in params:
            params["ReturnConsumedCapacity"] = "TOTAL"

    def _before_call(self, model: Any, params: dict, context: dict, **_: Any) -> None:
        if not self._active():
            return
        service = model.service_model.service_id.hyphenize()
        call = Call(service, model.name, self.phase, self.tag)
        request = _body(params)
        context["bench_call"] = call
        context["bench_request"] = request
        if service == "dynamodb" and model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            table = self.table(request["TableName"])
            key = request.get("Key") or {name: request["Item"][name] for name in table.key_attributes}
            context["bench_before"] = self.lookup(table, key)
            context["bench_key"] = key
        elif service == "dynamodb" and model.name == "TransactWriteItems":
            targets = []
            for action in request.get("TransactItems") or []:
                (kind, body), = action.items()
                table = self.table(body["TableName"])
                key = body.get("Key") or {name: body["Item"][name] for name in table.key_attributes}
                targets.append((kind, table, key, body.get("Item"), self.lookup(table, key)))
            context["bench_transact"] = targets
        stack = getattr(self._local, "stack", [])
        stack.append(call)
        self._local.stack = stack

    def _before_send(self, **_: Any) -> None:
        if not self._active():
            return
        stack = getattr(self._local, "stack", [])
        if stack:
            stack[-1].attempts += 1

    def _after_call(self, http_response: Any, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        call: Call | None = context.pop("bench_call", None)
        if call is None or getattr(self._local, "suspended", 0):
            return
        stack = getattr(self._local, "stack", [])
        if stack and stack[-1] is call:
            stack.pop()
        call.status = http_response.status_code
        call.error = (parsed.get("Error") or {}).get("Code") if call.status >= 300 else None
        request = context.pop("bench_request", {})
        if call.service == "dynamodb":
            self._dynamodb_units(call, request, parsed, context)
        elif call.service == "sqs":
            call.billed_units = _sqs_chunks(call.operation, request)
        elif call.service == "eventbridge" and call.operation == "PutEvents":
            call.billed_units = sum(max(1, math.ceil(len(json.dumps(entry).encode()) / EVENTBRIDGE_CHUNK_BYTES))
                                    for entry in request.get("Entries") or [])
        self.calls.append(call)

    # --- DynamoDB ---------------------------------------------------------------------------------------------------

    def table(self, name: str) -> units.TableSpec:
        if name not in self._tables:
            with self._suspended():
                description = self._client().describe_table(TableName=name)["Table"]
            self._tables[name] = units.TableSpec.from_description(description)
        return self._tables[name]

    def lookup(self, table: units.TableSpec, key: dict) -> dict | None:
        with self._suspended():
            return self._client().get_item(TableName=table.name, Key=key, ConsistentRead=True).get("Item")

    def _client(self) -> Any:
        if self._lookup_client is None:
            import boto3

            with self._suspended():
                self._lookup_client = boto3.session.Session().client("dynamodb")
        return self._lookup_client

    def _dynamodb_units(self, call: Call, request: dict, parsed: dict, context: dict) -> None:
        call.table = request.get("TableName")
        consumed = parsed.get("ConsumedCapacity")
        if isinstance(consumed, list):  # the batch operations report one entry per table
            reported = [entry.get("CapacityUnits") for entry in consumed if entry.get("CapacityUnits") is not None]
            call.moto_reported_units = sum(reported) if reported else None
        else:
            call.moto_reported_units = (consumed or {}).get("CapacityUnits")
        operation = call.operation
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table = self.table(call.table)
            before = context.pop("bench_before", None)
            key = context.pop("bench_key", None)
            if call.status == 200:
                after = {"PutItem": lambda: request["Item"], "UpdateItem": lambda: self.lookup(table, key),
                         "DeleteItem": lambda: None}[operation]()
                cost = units.write_cost(table, before, after, succeeded=True)
                call.item_bytes = units.item_size(after or before)
            elif call.error == "ConditionalCheckFailedException":
                attempted = request.get("Item") if operation == "PutItem" else before
                cost = units.write_cost(table, before, attempted, succeeded=False)
                call.item_bytes = units.item_size(before)
            else:
                return
            call.write_units_table = cost.table_units
            call.write_units_indexes = dict(cost.index_units)
            call.items_written = 1 if call.status == 200 else 0
        elif operation == "BatchWriteItem" and call.status == 200:
            # Puts only (the delivery log): each costs its item's size, as a PutItem would (a retried batch rewrites
            # the same item, so the old item's size is the new one's); unprocessed items were not written.
            unprocessed = parsed.get("UnprocessedItems") or {}
            call.write_units_table, call.write_units_indexes, call.item_bytes = 0, {}, 0
            for table_name, requests in (request.get("RequestItems") or {}).items():
                call.table = table_name
                table = self.table(table_name)
                left = len(unprocessed.get(table_name) or [])
                for entry in requests[:len(requests) - left]:
                    item = (entry.get("PutRequest") or {}).get("Item")
                    if item is None:
                        call.error = call.error or "units-not-modelled"
                        continue
                    cost = units.write_cost(table, None, item, succeeded=True)
                    call.write_units_table += cost.table_units
                    for name, value in cost.index_units.items():
                        call.write_units_indexes[name] = call.write_units_indexes.get(name, 0) + value
                    share = call.units_by_table.setdefault(table_name, [0, 0])
                    share[0] += cost.table_units
                    share[1] += sum(cost.index_units.values())
                    call.item_bytes += units.item_size(item)
                    call.items_written += 1
        elif operation == "TransactWriteItems":
            # Transactional writes cost twice a plain write of each item (DynamoDB developer guide, "Capacity
            # management for transactions"); a cancelled transaction is costed like failed conditional writes.
            succeeded = call.status == 200
            call.write_units_table, call.write_units_indexes, call.item_bytes = 0, {}, 0
            for kind, table, key, item, before in context.pop("bench_transact", []):
                call.table = table.name
                if kind == "ConditionCheck":
                    after = before
                elif not succeeded:
                    after = item if kind == "Put" else before
                else:
                    after = item if kind == "Put" else None if kind == "Delete" else self.lookup(table, key)
                cost = units.write_cost(table, before, after, succeeded=succeeded and kind != "ConditionCheck")
                call.write_units_table += 2 * cost.table_units
                for name, value in cost.index_units.items():
                    call.write_units_indexes[name] = call.write_units_indexes.get(name, 0) + 2 * value
                call.item_bytes += units.item_size(after or before)
                call.items_written += 1 if succeeded and kind != "ConditionCheck" else 0
        elif operation == "GetItem" and call.status == 200:
            item = _wire(parsed.get("Item"))
            call.item_bytes = units.item_size(item)
            call.read_units = units.read_units(call.item_bytes, consistent=bool(request.get("ConsistentRead")))
        elif operation == "BatchGetItem" and call.status == 200:
            # Each item read is billed on its whole size (a projection does not make it cheaper): read it whole.
            for table_name, items in (parsed.get("Responses") or {}).items():
                call.table = table_name
                table = self.table(table_name)
                consistent = bool((request.get("RequestItems") or {}).get(table_name, {}).get("ConsistentRead"))
                for item in items:
                    wire = _wire(item)
                    whole = self.lookup(table, {name: wire[name] for name in table.key_attributes}) or wire
                    call.read_units += units.read_units(units.item_size(whole), consistent=consistent)
        elif operation in ("Query", "Scan") and call.status == 200:
            items = [_wire(item) for item in parsed.get("Items") or []]
            consistent = bool(request.get("ConsistentRead")) and not request.get("IndexName")
            call.read_units = units.query_read_units(items, consistent=consistent)
            call.item_bytes = sum(units.item_size(item) for item in items)
        elif operation in CAPACITY_OPERATIONS:
            call.error = call.error or "units-not-modelled"


def _body(params: dict) -> dict:
    body = params.get("body")
    if isinstance(body, (bytes, bytearray)) and body:
        try:
            return json.loads(body)
        except ValueError:
            return {}
    if isinstance(body, str) and body:
        try:
            return json.loads(body)
        except ValueError:
            return {}
    return body if isinstance(body, dict) else {}


def _wire(item: Any) -> dict | None:
    """An item in DynamoDB's wire format, whether the client (or boto3's resource layer) already decoded it."""
    if not item:
        return item
    if all(isinstance(value, dict) and len(value) == 1 and next(iter(value)) in {
            "S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"} for value in item.values()):
        return item
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(value) for name, value in item.items()}


def _sqs_chunks(operation: str, request: dict) -> int:
    if operation == "SendMessage":
        size = len((request.get("MessageBody") or "").encode()) + len(json.dumps(request.get("MessageAttributes") or {}))
        return max(1, math.ceil(size / SQS_CHUNK_BYTES))
    if operation == "SendMessageBatch":
        size = sum(len((entry.get("MessageBody") or "").encode()) for entry in request.get("Entries") or [])
        return max(1, math.ceil(size / SQS_CHUNK_BYTES))
    return 1


# ----------------------------------------------------------------------------------------------------------------
# Aggregation
# ----------------------------------------------------------------------------------------------------------------


def aggregate(calls: list[Call], phase: str, per: int) -> dict[str, Any]:
    """Requests, billed units and capacity of one phase, per unit of work (``per`` deliveries or operations)."""
    selected = [call for call in calls if call.phase == phase]
    by_operation: Counter[str] = Counter()
    billed: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for call in selected:
        name = f"{call.service}.{call.operation}"
        by_operation[name] += call.attempts
        billed[name] += call.billed_units
        if call.error:
            errors[f"{name}:{call.error}"] += 1
    write_table = sum(call.write_units_table for call in selected)
    write_indexes: Counter[str] = Counter()
    for call in selected:
        write_indexes.update(call.write_units_indexes)
    reads = sum(call.read_units for call in selected)
    reported = [call.moto_reported_units for call in selected if call.moto_reported_units is not None]
    return {
        "count": per,
        "requests": sum(call.attempts for call in selected),
        "requests_per_unit": sum(call.attempts for call in selected) / per if per else 0.0,
        "by_operation_per_unit": {name: count / per for name, count in sorted(by_operation.items())},
        "billed_units_per_unit": {name: count / per for name, count in sorted(billed.items())},
        "dynamodb_requests_per_unit": sum(c.attempts for c in selected if c.service == "dynamodb") / per if per else 0,
        "write_units_per_unit": (write_table + sum(write_indexes.values())) / per if per else 0.0,
        "write_units_table_per_unit": write_table / per if per else 0.0,
        "write_units_indexes_per_unit": {name: count / per for name, count in sorted(write_indexes.items())},
        "read_units_per_unit": reads / per if per else 0.0,
        # Write requests (API calls that write, failed conditional writes included: they are billed) and the items
        # they wrote, per unit of work.
        "dynamodb_write_requests_per_unit": sum(c.attempts for c in selected if c.service == "dynamodb"
                                                and c.operation in WRITE_OPERATIONS) / per if per else 0.0,
        "dynamodb_items_written_per_unit": sum(c.items_written for c in selected) / per if per else 0.0,
        "conditional_check_failures": errors.get("dynamodb.PutItem:ConditionalCheckFailedException", 0),
        "errors": dict(errors),
        "moto_reported_units_distinct": sorted(set(reported)),
    }


def item_sizes_by_tag(calls: list[Call], phase: str, operation: str = "PutItem") -> dict[str, dict[str, Any]]:
    sizes: dict[str, list[int]] = defaultdict(list)
    write: dict[str, list[int]] = defaultdict(list)
    for call in calls:
        if call.phase == phase and call.operation == operation and call.item_bytes is not None and call.tag:
            sizes[call.tag].append(call.item_bytes)
            write[call.tag].append(call.write_units)
    return {tag: {"item_bytes": max(values), "write_units": max(write[tag])} for tag, values in sorted(sizes.items())}


# ----------------------------------------------------------------------------------------------------------------
# Environment: moto, the template's resources, the handlers
# ----------------------------------------------------------------------------------------------------------------


class Environment:
    def __init__(self) -> None:
        from billops_local.aws_environment import MotoServer

        self.moto = MotoServer("127.0.0.1", 0)
        self.moto.start()
        self.endpoint = self.moto.endpoint_url
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint

    def template_resources(self, secret_values: dict[str, str] | None = None) -> tuple[Any, Any]:
        from billops_local.aws_environment import create_resources
        from billops_local.template_resources import load_template

        template = load_template()
        created = create_resources(template, self.endpoint, secret_values=secret_values)
        return template, created

    def function_environment(self, template: Any, created: Any, *logical_ids: str) -> dict[str, str]:
        from billops_local.aws_environment import function_environments, merged_function_environment

        environments = function_environments(template, created)
        return merged_function_environment({lid: environments[lid] for lid in logical_ids})

    def client(self, service: str) -> Any:
        from billops_local.aws_environment import aws_client

        return aws_client(service, self.endpoint)

    def stop(self) -> None:
        self.moto.stop()


def _timed_invocation(handler: Any, event: Any, context: Any) -> tuple[Any, float, float]:
    wall = time.perf_counter_ns()
    cpu = time.thread_time_ns()
    answer = handler(event, context)
    return answer, (time.thread_time_ns() - cpu) / 1e6, (time.perf_counter_ns() - wall) / 1e6


# ----------------------------------------------------------------------------------------------------------------
# Receivers: ours and the baseline
# ----------------------------------------------------------------------------------------------------------------


def scenario_ours(count: int) -> dict[str, Any]:
    from bench.lambda_runtime import LambdaContext, load_module
    from bench.payloads import delivery_mix, http_api_v2_event

    ledger = RequestLedger()
    ledger.install()
    env = Environment()
    try:
        template, created = env.template_resources({"WebhookTokenSecret": TOKEN})
        os.environ.update(env.function_environment(template, created, "WebhookReceiverFunction"))
        os.environ["BILLOPS_ENV"] = "dev"  # as deployed: no loopback sources
        module = load_module(template.functions["WebhookReceiverFunction"].module_path)
        context = LambdaContext("billops-webhook-receiver", template.functions["WebhookReceiverFunction"].memory_size)
        deliveries = list(delivery_mix(count + 1, run=11))
        cold, new = deliveries[0], deliveries[1:]

        def post(delivery, body_format: str | None = None) -> dict:
            chosen = delivery.in_format(body_format) if body_format else delivery
            ledger.tag = chosen.event_type
            answer = module.handler(http_api_v2_event(chosen, TOKEN), context.fresh())
            assert answer["statusCode"] == 200, answer
            return json.loads(answer["body"])

        with ledger.counting("cold"):
            post(cold)
        with ledger.counting("new"):
            answers_new = [post(d) for d in new]
        with ledger.counting("duplicate"):
            answers_dup = [post(d) for d in new]
        with ledger.counting("duplicate_other_format"):
            answers_other = [post(d, "urlencoded") for d in new]
        stored = _count_items(env.client("dynamodb"), created.tables["EventsTable"].name)
        footprint = stored_bytes_per_item(env.client("dynamodb"), ledger.table(created.tables["EventsTable"].name))
        return {
            "stored_bytes_per_item": footprint,
            "memory_mb": template.functions["WebhookReceiverFunction"].memory_size,
            "deliveries": count,
            "cold": aggregate(ledger.calls, "cold", 1),
            "new": aggregate(ledger.calls, "new", count),
            "duplicate": aggregate(ledger.calls, "duplicate", count),
            "duplicate_other_format": aggregate(ledger.calls, "duplicate_other_format", count),
            "answered_duplicate": {"new": sum(a["duplicate"] for a in answers_new),
                                   "duplicate": sum(a["duplicate"] for a in answers_dup),
                                   "duplicate_other_format": sum(a["duplicate"] for a in answers_other)},
            "items_stored": stored - 1,  # the cold delivery's item
            "item_sizes_by_event_type": item_sizes_by_tag(ledger.calls, "new"),
            "calls_sample": [asdict(call) for call in ledger.calls if call.phase in ("cold", "new")][:4],
        }
    finally:
        env.stop()


BASELINE_IDEMPOTENCY_TABLE = "bench-baseline-idempotency"
BASELINE_EVENTS_TABLE = "bench-baseline-events"


def create_baseline_tables(dynamodb: Any) -> None:
    """The tables the Powertools tutorial's template creates: the idempotency table (key ``id``, TTL
    ``expiration``) and the events table (key ``id``), both on-demand."""
    for name in (BASELINE_IDEMPOTENCY_TABLE, BASELINE_EVENTS_TABLE):
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    dynamodb.update_time_to_live(TableName=BASELINE_IDEMPOTENCY_TABLE,
                                 TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})


def baseline_environment() -> dict[str, str]:
    return {"IDEMPOTENCY_TABLE_NAME": BASELINE_IDEMPOTENCY_TABLE, "EVENTS_TABLE_NAME": BASELINE_EVENTS_TABLE,
            "POWERTOOLS_SERVICE_NAME": "webhooks", "POWERTOOLS_METRICS_NAMESPACE": "Webhooks",
            "POWERTOOLS_LOG_LEVEL": "INFO"}


def scenario_baseline(count: int) -> dict[str, Any]:
    from bench.lambda_runtime import BASELINE_HANDLER, LambdaContext, load_module
    from bench.payloads import delivery_mix, rest_api_v1_event

    ledger = RequestLedger()
    ledger.install()
    env = Environment()
    try:
        create_baseline_tables(env.client("dynamodb"))
        os.environ.update(baseline_environment())
        module = load_module(BASELINE_HANDLER, "baseline_receiver")
        context = LambdaContext("baseline-webhook-receiver", module.MEMORY_SIZE_MB)
        deliveries = list(delivery_mix(count + 1, run=11))
        cold, new = deliveries[0], deliveries[1:]

        def post(delivery, body_format: str | None = None) -> dict:
            chosen = delivery.in_format(body_format) if body_format else delivery
            ledger.tag = chosen.event_type
            answer = module.lambda_handler(rest_api_v1_event(chosen, TOKEN), context.fresh())
            assert answer["statusCode"] == 200, answer
            return json.loads(answer["body"])

        with ledger.counting("cold"):
            post(cold)
        with ledger.counting("new"):
            [post(d) for d in new]
        with ledger.counting("duplicate"):
            [post(d) for d in new]
        with ledger.counting("duplicate_other_format"):
            [post(d, "urlencoded") for d in new]
        stored = _count_items(env.client("dynamodb"), BASELINE_EVENTS_TABLE)
        footprint = stored_bytes_per_item(env.client("dynamodb"), ledger.table(BASELINE_EVENTS_TABLE))
        new_puts = [c for c in ledger.calls if c.phase == "new" and c.operation == "PutItem"
                    and c.table == BASELINE_EVENTS_TABLE]
        return {
            "memory_mb": module.MEMORY_SIZE_MB,
            "stored_bytes_per_item": footprint,
            "deliveries": count,
            "cold": aggregate(ledger.calls, "cold", 1),
            "new": aggregate(ledger.calls, "new", count),
            "duplicate": aggregate(ledger.calls, "duplicate", count),
            "duplicate_other_format": aggregate(ledger.calls, "duplicate_other_format", count),
            "items_stored": stored - 1,
            "event_item_bytes_mean": sum(c.item_bytes or 0 for c in new_puts) / max(1, len(new_puts)),
            "item_sizes_by_event_type": item_sizes_by_tag(
                [c for c in ledger.calls if c.table == BASELINE_EVENTS_TABLE], "new"),
        }
    finally:
        env.stop()


def stored_bytes_per_item(dynamodb: Any, table: units.TableSpec) -> float:
    """Mean size of the table's items plus their index entries (what storage is billed on, before DynamoDB's
    100 bytes of overhead per item)."""
    sizes, kwargs = [], {"TableName": table.name}
    while True:
        answer = dynamodb.scan(**kwargs)
        for item in answer["Items"]:
            entries = [units.index_entry(table, index, item) for index in table.indexes]
            sizes.append(units.item_size(item) + sum(units.index_entry_size(e) for e in entries if e is not None))
        if "LastEvaluatedKey" not in answer:
            return sum(sizes) / len(sizes) if sizes else 0.0
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _count_items(dynamodb: Any, table: str) -> int:
    total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
    while True:
        answer = dynamodb.scan(**kwargs)
        total += answer["Count"]
        if "LastEvaluatedKey" not in answer:
            return total
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


# ----------------------------------------------------------------------------------------------------------------
# The projector: subscription lifecycles through the stream
# ----------------------------------------------------------------------------------------------------------------

LIFECYCLE_RENEWALS = 11


def lifecycle_deliveries(subscriptions: int, run: int, renewals: int = LIFECYCLE_RENEWALS,
                         ending: bool = True) -> list[Any]:
    """Month by month, for each subscription: a sale, ``renewals`` renewals (11: a year), then (``ending``) a
    cancellation and the expiration (14 each by default)."""
    from billops_local.webhook_samples import sample_fields

    from bench.payloads import Delivery

    start = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
    ids = [f"03{run:02d}{n:015d}" for n in range(subscriptions)]
    timeline: list[Delivery] = []
    for month in range(renewals + (3 if ending else 1)):
        for n, subscription_id in enumerate(ids):
            moment = start + timedelta(days=30 * month, minutes=n)
            stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
            if month == 0:
                fields = sample_fields("NewSaleSuccess", subscriptionId=subscription_id,
                                       transactionId=subscription_id, timestamp=stamp)
                event_type = "NewSaleSuccess"
            elif month <= renewals:
                fields = sample_fields("RenewalSuccess", subscriptionId=subscription_id,
                                       transactionId=f"04{run:02d}{n:09d}{month:06d}", timestamp=stamp,
                                       renewalDate=moment.strftime("%Y-%m-%d"),
                                       nextRenewalDate=(moment + timedelta(days=30)).strftime("%Y-%m-%d"))
                event_type = "RenewalSuccess"
            elif month == renewals + 1:
                fields = sample_fields("Cancellation", subscriptionId=subscription_id, timestamp=stamp)
                event_type = "Cancellation"
            else:
                fields = sample_fields("Expiration", subscriptionId=subscription_id, timestamp=stamp)
                event_type = "Expiration"
            timeline.append(Delivery(event_type, fields, "json"))
    return timeline


RENEWALS_MEASURED = (10, 30)
"""The subscription's items are measured after a sale and this many renewals (the second must not be larger)."""


def subscription_item_sizes(dynamodb: Any, created: Any, subscription_id: str) -> dict[str, Any]:
    """The sizes (DynamoDB's rules) of a subscription's state item and personal-data item, and its history entries."""
    from billops.storage.subscriptions_table import PERSONAL_POSITION

    history_table = created.tables["SubscriptionHistoryTable"].name
    state = dynamodb.get_item(TableName=created.tables["SubscriptionsTable"].name, ConsistentRead=True,
                              Key={"subscription_id": {"S": subscription_id}}).get("Item")
    personal = dynamodb.get_item(TableName=history_table, ConsistentRead=True, Key={
        "subscription_id": {"S": subscription_id}, "position": {"S": PERSONAL_POSITION}}).get("Item")
    entries, kwargs = 0, {"TableName": history_table, "KeyConditionExpression": "subscription_id = :id",
                          "ExpressionAttributeValues": {":id": {"S": subscription_id}}, "Select": "COUNT"}
    while True:
        answer = dynamodb.query(**kwargs)
        entries += answer["Count"]
        if "LastEvaluatedKey" not in answer:
            break
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    return {"state_item_bytes": units.item_size(state) if state else None,
            "personal_item_bytes": units.item_size(personal) if personal else None,
            "event_count": int(state["event_count"]["N"]) if state and "event_count" in state else None,
            "history_table_items": entries}


class StreamReader:
    def __init__(self, env: Environment, stream_arn: str) -> None:
        self.streams = env.client("dynamodbstreams")
        self.stream_arn = stream_arn
        self.iterators: dict[str, str] = {}

    def new_records(self) -> list[dict]:
        from billops_local.stream_poller import lambda_record

        records = []
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            iterator = self.iterators.get(shard["ShardId"]) or self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while True:
                answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records.extend(lambda_record(record, self.stream_arn) for record in answer["Records"])
                iterator = answer["NextShardIterator"]
                if not answer["Records"]:
                    break
            self.iterators[shard["ShardId"]] = iterator
        return records


BATCHED_SUBSCRIPTIONS_PER_BATCH = 2
"""The batched pass folds B x this many subscription lifecycles: each month's deliveries fill this many batches."""


def projector_batch_size(template: Any) -> int:
    """The BatchSize of the projector's events-table stream source in template.yaml."""
    (source,) = template.functions["SubscriptionProjectorFunction"].stream_sources
    return source.batch_size


def in_batches(records: list[dict], size: int) -> Iterator[list[dict]]:
    """Stream records in stream order, ``size`` per invocation (the last batch may be short)."""
    for start in range(0, len(records), size):
        yield records[start:start + size]


def write_units_by_table(calls: list[Call], phase: str, units: int, created: Any) -> list[dict[str, Any]]:
    """Write units per unit of ``phase``, by table (template logical ID) and operation, indexes included, largest
    first: where a delivery's writes go. A request that wrote to several tables counts as a request under each."""
    names = {table.name: logical_id for logical_id, table in created.tables.items()}
    totals: dict[tuple[str, str], list[float]] = {}
    for call in calls:
        if call.phase != phase or not call.table:
            continue
        # A request that wrote to several tables is split by table (and counted as a request under each).
        shares = call.units_by_table or {
            call.table: [call.write_units_table, sum((call.write_units_indexes or {}).values())]}
        for table_name, (table_units, index_units) in shares.items():
            if not table_units and not index_units:
                continue
            entry = totals.setdefault((names.get(table_name, table_name), call.operation), [0.0, 0.0, 0])
            entry[0] += table_units
            entry[1] += index_units
            entry[2] += call.attempts
    rows = [{"table": table, "operation": operation, "write_units_per_unit": table_units / units,
             "index_write_units_per_unit": index_units / units, "requests_per_unit": requests / units}
            for (table, operation), (table_units, index_units, requests) in totals.items()]
    return sorted(rows, key=lambda row: -(row["write_units_per_unit"] + row["index_write_units_per_unit"]))


def scenario_projector(subscriptions: int) -> dict[str, Any]:
    from bench.lambda_runtime import LambdaContext, load_module
    from bench.payloads import http_api_v2_event

    ledger = RequestLedger()
    ledger.install()
    env = Environment()
    try:
        template, created = env.template_resources({"WebhookTokenSecret": TOKEN})
        os.environ.update(env.function_environment(template, created, "WebhookReceiverFunction",
                                                   "SubscriptionProjectorFunction"))
        receiver = load_module(template.functions["WebhookReceiverFunction"].module_path)
        projector = load_module(template.functions["SubscriptionProjectorFunction"].module_path)
        memory = template.functions["SubscriptionProjectorFunction"].memory_size
        receiver_context = LambdaContext("billops-webhook-receiver")
        context = LambdaContext("billops-subscription-projector", memory)
        stream = StreamReader(env, created.tables["EventsTable"].stream_arn)

        def store(deliveries) -> list[dict]:
            for delivery in deliveries:
                answer = receiver.handler(http_api_v2_event(delivery, TOKEN), receiver_context.fresh())
                assert answer["statusCode"] == 200, answer
            return stream.new_records()

        # Counted pass.
        records = store(lifecycle_deliveries(subscriptions, run=21))
        failures = 0
        for record in records:
            ledger.tag = record["dynamodb"]["NewImage"]["event_type"]["S"]
            with ledger.counting("projector"):
                answer = projector.handler({"Records": [record]}, context.fresh())
            failures += len(answer.get("batchItemFailures") or [])
        counted = aggregate(ledger.calls, "projector", len(records))
        by_type: dict[str, dict[str, float]] = {}
        for event_type in sorted({call.tag for call in ledger.calls if call.phase == "projector" and call.tag}):
            n = sum(1 for r in records if r["dynamodb"]["NewImage"]["event_type"]["S"] == event_type)
            part = [c for c in ledger.calls if c.phase == "projector" and c.tag == event_type]
            by_type[event_type] = {"records": n, "requests_per_record": sum(c.attempts for c in part) / n,
                                   "write_units_per_record": sum(c.write_units for c in part) / n,
                                   "read_units_per_record": sum(c.read_units for c in part) / n}
        subscription_items = [c.item_bytes for c in ledger.calls if c.phase == "projector"
                              and c.table == created.tables["SubscriptionsTable"].name
                              and c.operation in ("PutItem", "UpdateItem") and c.item_bytes]
        # One record per invocation here, so each BatchWriteItem carries one delivery-log item.
        log_items = [c.item_bytes for c in ledger.calls if c.phase == "projector"
                     and c.table == created.tables["DeliveryLogTable"].name and c.operation == "BatchWriteItem"
                     and c.item_bytes]

        # The same records again (the stream retrying a batch): nothing changed, so the state must not be written.
        ledger.tag = None
        for record in records:
            with ledger.counting("projector_redelivered"):
                projector.handler({"Records": [record]}, context.fresh())
        redelivered = aggregate(ledger.calls, "projector_redelivered", len(records))

        def state_writes(phase: str) -> int:
            return sum(c.attempts for c in ledger.calls if c.phase == phase and c.operation in ("PutItem", "UpdateItem")
                       and c.table == created.tables["SubscriptionsTable"].name)

        # One subscription's items after a sale and 10, then 30 renewals (uncounted): they must not grow.
        timeline = lifecycle_deliveries(1, run=23, renewals=RENEWALS_MEASURED[-1], ending=False)
        subscription_id = timeline[0].fields["subscriptionId"]
        item_sizes, folded = {}, 0
        for renewals in RENEWALS_MEASURED:
            for record in store(timeline[folded:renewals + 1]):
                projector.handler({"Records": [record]}, context.fresh())
            folded = renewals + 1
            item_sizes[str(renewals)] = subscription_item_sizes(env.client("dynamodb"), created, subscription_id)

        # Batched, as Lambda hands the stream to the projector under load: batches of the template's BatchSize, in
        # stream order, on fresh subscriptions (run 24) enough for each batch to hold B different subscriptions'
        # deliveries of one day (a rebill day). Counted pass, then a timed pass on fresh data (run 25).
        batch_size = projector_batch_size(template)
        batched_subscriptions = BATCHED_SUBSCRIPTIONS_PER_BATCH * batch_size
        ledger.tag = None
        records = store(lifecycle_deliveries(batched_subscriptions, run=24))
        batches = list(in_batches(records, batch_size))
        batched_failures = 0
        for batch in batches:
            with ledger.counting("projector_batched"):
                answer = projector.handler({"Records": batch}, context.fresh())
            batched_failures += len(answer.get("batchItemFailures") or [])
        batched = aggregate(ledger.calls, "projector_batched", len(records))
        batched_by_table = write_units_by_table(ledger.calls, "projector_batched", len(records), created)
        ledger.enabled = False
        records = store(lifecycle_deliveries(batched_subscriptions, run=25))
        timed_batches = list(in_batches(records, batch_size))
        batch_cpu, batch_wall = [], []
        before = stdout_position()
        for batch in timed_batches:
            _, cpu_ms, wall_ms = _timed_invocation(projector.handler, {"Records": batch}, context.fresh())
            batch_cpu.append(cpu_ms)
            batch_wall.append(wall_ms)
        batched_log_bytes = stdout_position() - before
        batched_figures = {
            "batch_size": batch_size,
            "subscriptions": batched_subscriptions,
            "records": len(records),
            "invocations": len(timed_batches),
            "invocations_per_record": len(timed_batches) / len(records),
            "per_record": batched,
            "write_units_by_table": batched_by_table,
            "record_failures": batched_failures,
            "state_writes_per_record": state_writes("projector_batched") / len(records),
            "thread_cpu_ms_per_invocation": summary(batch_cpu),
            "wall_ms_per_invocation_against_moto": summary(batch_wall),
            "log_bytes_per_invocation": batched_log_bytes / len(timed_batches),
        }

        # Timed pass (hooks idle), on fresh subscriptions; stdout bytes = the projector's log lines.
        ledger.enabled = False
        records = store(lifecycle_deliveries(subscriptions, run=22))
        cpu, wall = [], []
        before = stdout_position()
        for record in records:
            _, cpu_ms, wall_ms = _timed_invocation(projector.handler, {"Records": [record]}, context.fresh())
            cpu.append(cpu_ms)
            wall.append(wall_ms)
        log_bytes = stdout_position() - before
        return {
            "memory_mb": memory,
            "subscriptions": subscriptions,
            "records": len(records),
            "per_record": counted,
            "by_event_type": by_type,
            "record_failures": failures,
            "subscription_item_bytes": summary(subscription_items),
            "state_writes_per_record": state_writes("projector") / len(records),
            "redelivered": {"records": len(records), "state_writes": state_writes("projector_redelivered"),
                            "per_record": redelivered},
            "subscription_items_after_renewals": item_sizes,
            "delivery_log_item_bytes": summary(log_items) if log_items else None,
            "thread_cpu_ms": summary(cpu),
            "wall_ms_against_moto": summary(wall),
            "log_bytes_per_invocation": log_bytes / len(records),
            # The same work in batches of the template's BatchSize (see above); ``per_record`` is one record per
            # invocation (a merchant with little traffic: the worst case).
            "batched": batched_figures,
        }
    finally:
        env.stop()


# ----------------------------------------------------------------------------------------------------------------
# Operations: discount operations through the queue, the worker and the CCBill sandbox
# ----------------------------------------------------------------------------------------------------------------


class WebhookCapture:
    """Where the sandbox posts its webhooks; they are replayed into the receiver in-process."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, str, dict[str, str], bytes]] = []
        self.replayed = 0
        self.lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                with capture.lock:
                    capture.deliveries.append((parts.path, parts.query, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/ccbill?token={TOKEN}"

    def take_new(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        with self.lock:
            new = self.deliveries[self.replayed:]
            self.replayed = len(self.deliveries)
            return new

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    from billops_local.queue_poller import lambda_record

    return {"Records": [lambda_record(message, queue_arn) for message in messages]}


def scenario_operations(operations: int) -> dict[str, Any]:
    from billops_local.ccbill_sandbox import start_sandbox
    from billops_local.ccbill_sandbox.local_service import client_environment
    from billops_local.http_api_events import http_api_event

    from bench.lambda_runtime import LambdaContext, load_module

    ledger = RequestLedger()
    ledger.install()
    env = Environment()
    capture = WebhookCapture()
    sandbox = start_sandbox("127.0.0.1", 0, capture.url, "json", webhook_retry_delays=(0.05, 0.1))
    try:
        template, created = env.template_resources({"WebhookTokenSecret": TOKEN})
        os.environ.update(env.function_environment(template, created, "WebhookReceiverFunction",
                                                   "SubscriptionProjectorFunction", "OperationWorkerFunction"))
        os.environ.update(client_environment(env.endpoint, sandbox, None))
        os.environ["BILLOPS_ENV"] = "local"  # the sandbox speaks http on loopback
        receiver = load_module(template.functions["WebhookReceiverFunction"].module_path)
        projector = load_module(template.functions["SubscriptionProjectorFunction"].module_path)
        worker = load_module(template.functions["OperationWorkerFunction"].module_path)
        worker_spec = template.functions["OperationWorkerFunction"]
        (queue_source,) = worker_spec.queue_sources
        batch_size = queue_source.batch_size
        queue = created.queues[queue_source.queue_logical_id]
        context = LambdaContext("billops-operation-worker", worker_spec.memory_size)
        other = LambdaContext("billops-other")
        stream = StreamReader(env, created.tables["EventsTable"].stream_arn)
        sqs = env.client("sqs")

        def deliver_webhooks() -> None:
            assert sandbox.wait_for_webhooks(10)
            for path, query, headers, body in capture.take_new():
                wanted = {k.lower(): v for k, v in headers.items() if k.lower() in ("content-type", "user-agent")}
                event = http_api_event("POST", path, query, wanted, body, "64.38.240.10",
                                       route_key="POST /webhooks/ccbill")
                assert receiver.handler(event, other.fresh())["statusCode"] == 200
            for record in stream.new_records():
                projector.handler({"Records": [record]}, other.fresh())

        def subscriptions(count: int) -> list[str]:
            made = [sandbox.create_subscription(client_accnum="900100", client_subacc="0000", initial_price="19.95",
                                                initial_period=30, recurring_price="19.95", recurring_period=30,
                                                rebills=99, currency_code="840") for _ in range(count)]
            deliver_webhooks()
            return made

        def run(subscription_ids: list[str], key_prefix: str, counted: bool) -> dict[str, Any]:
            from billops.operations.operation_queue import enqueue

            cpu, wall, batches = [], [], 0
            with ledger.counting("sender") if counted else _nothing():
                for subscription_id in subscription_ids:
                    enqueue({"operation_type": "discount", "subscription_id": subscription_id,
                             "idempotency_key": f"{key_prefix}-{subscription_id}",
                             "parameters": {"discount_amount": "2.00"}}, queue_url=queue.url)
            before = stdout_position()
            while True:
                with ledger._suspended():
                    messages = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=batch_size,
                                                   AttributeNames=["All"], MessageAttributeNames=["All"],
                                                   VisibilityTimeout=60).get("Messages", [])
                if not messages:
                    break
                batches += 1
                with ledger.counting("worker") if counted else _nothing():
                    answer, cpu_ms, wall_ms = _timed_invocation(worker.handler, sqs_event(messages, queue.arn),
                                                                context.fresh())
                cpu.append(cpu_ms)
                wall.append(wall_ms)
                failed = {item["itemIdentifier"] for item in answer.get("batchItemFailures") or []}
                with ledger._suspended():
                    for message in messages:
                        if message["MessageId"] not in failed:
                            sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
            return {"batches": batches, "cpu": cpu, "wall": wall, "log_bytes": stdout_position() - before}

        counted_ids = subscriptions(operations)
        sandbox.sandbox.clear_calls()
        counted = run(counted_ids, "bench-count", counted=True)
        ccbill_calls = Counter(call["action"] for call in sandbox.calls())
        statuses = Counter(_operation_status(env, created, f"bench-count-{s}") for s in counted_ids)

        ledger.enabled = False
        timed_ids = subscriptions(operations)
        timed = run(timed_ids, "bench-time", counted=False)
        per_op_batches = counted["batches"] / operations
        return {
            "memory_mb": worker_spec.memory_size,
            "operations": operations,
            "operation_type": "discount",
            "batch_size": batch_size,
            "batches_per_operation": per_op_batches,
            "sender": aggregate(ledger.calls, "sender", operations),
            "worker": aggregate(ledger.calls, "worker", operations),
            "event_source_mapping_requests_per_operation": {
                "sqs.ReceiveMessage": per_op_batches, "sqs.DeleteMessageBatch": per_op_batches},
            "ccbill_calls_per_operation": {action: n / operations for action, n in ccbill_calls.items()},
            "outcomes": dict(statuses),
            "worker_invocations_per_operation": timed["batches"] / operations,
            "thread_cpu_ms_per_invocation": summary(timed["cpu"]),
            "wall_ms_per_invocation_against_moto": summary(timed["wall"]),
            "log_bytes_per_invocation": timed["log_bytes"] / max(1, timed["batches"]),
        }
    finally:
        sandbox.stop()
        capture.stop()
        env.stop()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _operation_status(env: Environment, created: Any, idempotency_key: str) -> str:
    from billops.operations.operation_records import operation_id_for
    from billops.storage.operations_table import OperationsTable

    record = OperationsTable(created.tables["OperationsTable"].name, env.client("dynamodb")).get(
        operation_id_for(idempotency_key))
    return (record or {}).get("status", "missing")


# ----------------------------------------------------------------------------------------------------------------


SCENARIOS = {
    "ours": scenario_ours,
    "baseline": scenario_baseline,
    "projector": scenario_projector,
    "operations": scenario_operations,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aws_request_counting")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--count", type=int, default=100,
                        help="deliveries (ours, baseline), subscriptions (projector) or operations")
    parser.add_argument("--result", required=True)
    arguments = parser.parse_args(argv)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    write_result(arguments.result, SCENARIOS[arguments.scenario](arguments.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
