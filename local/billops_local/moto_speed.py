"""Where moto's server spends time on work that changes no answer, taken out (found by profiling the local stack
under load with py-spy; docs/architecture.md, "Local stack").

1. Keep-alive. werkzeug's development server answers every request with ``Connection: close`` and then waits up to
   10 ms for more bytes to drain: every AWS call paid a new TCP connection, a new server thread and a name lookup
   (about a tenth of the stack's CPU). ``KeepAliveRequestHandler`` serves moto's WSGI application over persistent
   HTTP/1.1 connections: it reads the whole body (Content-Length, or chunked) before calling the application, so
   nothing is left to drain, and answers with a Content-Length, headers and body in one segment (TCP_NODELAY).
2. Routing. moto lists its package directory (``os.listdir`` + ``isdir`` on ~150 entries) on every request to find
   the service; the list never changes while it runs: computed once.
3. EventBridge targets. Every PutEvents matching the domain-events tap builds a new jsonpath parser (ply's tables)
   for each input path of the target's default transformer; a parsed path is cached.
4. A table's Query by its own key. moto answers it by sorting every item of the table (``Table.all_items``) and then
   keeping the partition's: each Query cost O(N log N) in the table's size, so the projector, which reads one
   subscription's history (a partition of a few items) when a delivery arrives out of order, slowed down as the
   history table filled (the 10,000-delivery suite's projector fell to ~3 folds/s). While a base-table Query runs,
   ``all_items`` gives the partition's items only (the same items the Query would have kept, in the same order).
5. TransactWriteItems. moto backs up each table a transaction names with ``copy.deepcopy`` of the whole table, once
   per item of the transaction, to restore it if the transaction fails: the projector's daily-figures transaction
   (issue 16) deep-copied the reports table a dozen times per stream batch (100 transactions of 10 items over a
   3,000-item table: 65 s and 2.9 GB of memory in moto). The backup is now the table with its partitions copied
   (references to the same items) and only the items the transaction names deep-copied: what moto restores on
   failure is the same, since a transaction changes nothing else.

6. KMS keys. moto makes an RSA-2048 private key for every key it creates, symmetric ones included (for sign and
   verify, which a symmetric key never does): about 60 ms of CPU per key, two keys per copy of the template's
   resources, so a tenth of a second of every integration test's set-up. The private key is now made when it is
   first used (signing, verifying, GetPublicKey): the same key type and size, the same answers.

7. SQS sends. moto's SendMessage reads ``Queue.attributes`` (for ContentBasedDeduplication) up to four times, and
   every read counts the queue's messages three times (ApproximateNumberOfMessages, ...Delayed, ...NotVisible): a
   send cost O(N) in the queue's size. The domain-events tap queue (billops_local.event_bus) takes every event the
   projector publishes and nobody drains it under load, so each webhook's event cost more than the one before
   (about 2 ms per send after a 15 s bench). While a send runs, those three counts read as 0: no code on moto's
   send path reads them (only ContentBasedDeduplication and DeduplicationScope; SendMessageBatch the same), and
   every other caller (GetQueueAttributes, receives) counts as before.

8. DynamoDB's JSON answers. moto's response serializer walks the operation's output shape value by value, trying up
   to a dozen key aliases for each (ShapeNameAlias, NoAlias, xform_name ...) through generic helpers: a fifth of
   moto's CPU under the bench's load (GetRecords and Query answers hold whole items, AttributeValue by
   AttributeValue). For DynamoDB and DynamoDB Streams results made of dicts, lists, strings and integers, the same
   walk is compiled once per shape: each member's aliases are computed once, by moto's own value picker, in moto's
   order; any other scalar (booleans, numbers, timestamps, blobs) is handed to moto's own method for its type.
   Anything else (an object, a None in a list or map, a key the walk does not know, a response transformer) falls
   back to moto's serializer, so every answer is the one moto gives (``shadow_check`` compares both, for the
   tests).

9. An item's size. moto checks DynamoDB's 400 KB limit as each attribute is set (``LimitedSizeDict.__setitem__``)
   by re-measuring every attribute already set: building an item cost O(n^2) attribute sizes (7% of moto's CPU
   under load, the events table's items have ~25 attributes). ``Item.__init__`` now keeps the running total: the
   same sizes summed in the same order, the same ItemSizeTooLarge at the same attribute; later changes to the item
   (UpdateItem) are checked by moto as before.
10. Action lookup. moto lists a response class's methods (``inspect.getmembers``) on every request to check the
   action exists; the classes do not change while the server runs (every patch is applied before it starts): listed
   once per class.

``apply()`` is idempotent; moto's process calls it (billops_local.moto_process), and so does an in-process
``MotoServer``.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import traceback
from typing import Any

from werkzeug.serving import WSGIRequestHandler

log = logging.getLogger("billops_local.moto")

_applied = False
_apply_lock = threading.Lock()


def apply() -> None:
    global _applied
    with _apply_lock:
        if _applied:
            return
        _cache_module_list()
        _cache_jsonpath()
        _query_the_partition_only()
        _back_up_only_what_a_transaction_touches()
        _make_kms_private_keys_when_used()
        _send_without_counting_the_queue()
        _serialize_dynamodb_results_by_compiled_shapes()
        _size_items_once()
        _list_response_methods_once()
        _applied = True


def _cache_module_list() -> None:
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def _cache_jsonpath() -> None:
    import jsonpath_ng.ext

    original = jsonpath_ng.ext.parse
    if getattr(original, "cache_info", None) is not None:
        return
    # moto.events.utils imports ``parse`` from jsonpath_ng.ext at each call: the module attribute is what it gets.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(original)


_querying = threading.local()


def _query_the_partition_only() -> None:
    from moto.dynamodb.models.table import Table

    original_query, original_all_items = Table.query, Table.all_items

    def all_items(self: Any) -> list[Any]:
        hint = getattr(_querying, "partition", None)
        if hint is not None and hint[0] is self:
            return sorted(self.items.get(hint[1], {}).values(), key=lambda item: item.range_key)
        return original_all_items(self)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # index_name is query's 8th parameter (7th after hash_key); None: the table's own key.
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or not self.range_key_attr or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        _querying.partition = (self, hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _querying.partition = None

    Table.all_items = all_items
    Table.query = query


_transaction = threading.local()


def _back_up_only_what_a_transaction_touches() -> None:
    import copy
    from collections import defaultdict

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class _Copy:
        """``copy`` as moto's DynamoDB backend module sees it: a table backed up during a transaction is copied
        lightly (``_backup``); everything else as ``copy`` does."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            touched = getattr(_transaction, "touched", None)
            if touched is not None and isinstance(value, Table):
                return _backup(value, touched.get(value.name, ()))
            return copy.deepcopy(value, memo)

    def _backup(table: Any, keys: Any) -> Any:
        twin = copy.copy(table)
        twin.items = defaultdict(dict)
        for hash_key, partition in table.items.items():
            twin.items[hash_key] = dict(partition) if table.range_key_attr else partition
        for hash_key, range_key in keys:
            if table.range_key_attr:
                if range_key in twin.items.get(hash_key, {}):
                    twin.items[hash_key][range_key] = copy.deepcopy(table.items[hash_key][range_key])
            elif hash_key in table.items:
                twin.items[hash_key] = copy.deepcopy(table.items[hash_key])
        return twin

    def _touched(backend: Any, transact_items: Any) -> dict[str, list[tuple[Any, Any]]]:
        touched: dict[str, list[tuple[Any, Any]]] = {}
        for entry in transact_items:
            _, operation = next(iter(entry.items()))
            table = backend.tables.get(operation.get("TableName"))
            key = operation.get("Key") or operation.get("Item") or {}
            if table is None or table.hash_key_attr not in key:
                continue
            range_value = key.get(table.range_key_attr) if table.range_key_attr else None
            touched.setdefault(table.name, []).append(
                (DynamoType(key[table.hash_key_attr]), DynamoType(range_value) if range_value else None))
        return touched

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        _transaction.touched = _touched(self, transact_items)
        try:
            return original(self, transact_items)
        finally:
            _transaction.touched = None

    models.copy = _Copy()
    models.DynamoDBBackend.transact_write_items = transact_write_items


def request_handler() -> type[WSGIRequestHandler]:
    """moto's request handler (it keeps headers with underscores), serving persistent connections."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveRequestHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024  # status line, headers and body leave in one segment (flushed below)

        def handle_expect_100(self) -> bool:
            answered = super().handle_expect_100()
            self.wfile.flush()  # the client waits for "100 Continue" before it sends the body
            return answered

        def run_wsgi(self) -> None:
            environ = self.make_environ()
            if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's DechunkedInput reads to the end
                body = environ["wsgi.input"].read()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
            environ.pop("wsgi.input_terminated", None)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            started: list[Any] = []
            chunks: list[bytes] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                started[:] = [status, headers]
                return chunks.append

            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception:  # noqa: BLE001 - as werkzeug does: a 500, the traceback in the log
                log.error("moto failed on %s %s:\n%s", self.command, self.path.partition("?")[0],
                          traceback.format_exc())
                started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
                chunks[:] = [b"Internal Server Error"]
            status, headers = started
            code, _, reason = status.partition(" ")
            payload = b"".join(chunks)
            self.send_response(int(code), reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD" and payload:
                self.wfile.write(payload)
            self.wfile.flush()

        def log_request(self, *_: Any) -> None:
            return  # werkzeug's access log (one line per AWS call) is off in the stack anyway

    return KeepAliveRequestHandler


class _PrivateKeyWhenUsed:
    """Stands for moto's private key of a KMS key (moto.kms.utils.generate_private_key) until it is first used."""

    def __init__(self, make: Any, key_spec: str) -> None:
        self._make = make
        self._key_spec = key_spec
        self._key: Any = None
        self._lock = threading.Lock()

    def _real(self) -> Any:
        with self._lock:
            if self._key is None:
                self._key = self._make(self._key_spec)
            return self._key

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_make", "_key_spec", "_key", "_lock"):
            raise AttributeError(name)  # copy/pickle probe dunders; our own fields before __init__ set them
        return getattr(self._real(), name)

    def __deepcopy__(self, memo: dict) -> Any:
        import copy

        return copy.deepcopy(self._real(), memo)


def _make_kms_private_keys_when_used() -> None:
    from moto.kms import models

    original = models.generate_private_key
    if getattr(original, "billops_when_used", False):
        return

    def generate_private_key(key_spec: str) -> Any:
        return _PrivateKeyWhenUsed(original, key_spec)

    generate_private_key.billops_when_used = True  # type: ignore[attr-defined]
    models.generate_private_key = generate_private_key


_sending = threading.local()


def _send_without_counting_the_queue() -> None:
    from moto.sqs import models

    def uncounted_while_sending(count: property) -> property:
        def value(self: Any) -> int:
            if getattr(_sending, "active", False):
                return 0  # read by Queue.attributes on the send path, and used by nothing there
            return count.fget(self)

        return property(value)

    for name in ("approximate_number_of_messages", "approximate_number_of_messages_delayed",
                 "approximate_number_of_messages_not_visible"):
        setattr(models.Queue, name, uncounted_while_sending(getattr(models.Queue, name)))

    def sending(original: Any) -> Any:
        @functools.wraps(original)
        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = getattr(_sending, "active", False)
            _sending.active = True
            try:
                return original(self, *args, **kwargs)
            finally:
                _sending.active = outer

        return send

    # EventBridge's SQS targets call send_message too.
    models.SQSBackend.send_message = sending(models.SQSBackend.send_message)
    models.SQSBackend.send_message_batch = sending(models.SQSBackend.send_message_batch)


class _Fallback(Exception):
    """A value the compiled walk does not handle: moto's serializer answers instead."""


_FAST_SERVICES = ("dynamodb", "dynamodbstreams")
shadow_check: list[tuple[str, Any, Any]] | None = None
"""Tests set a list here: every result then also goes through moto's serializer, and (operation, fast, moto's) is
appended (fast is None when the compiled walk fell back)."""


def _serialize_dynamodb_results_by_compiled_shapes() -> None:
    from moto.core import serialize

    original = serialize.JSONSerializer._serialize_result
    plans: dict[tuple[str, str], Any] = {}
    plans_lock = threading.Lock()

    def refuse(_: Any) -> Any:
        raise _Fallback

    def structure_plan(serializer: Any, shape: Any) -> Any:
        """The compiled walk of a structure shape (``refuse`` if it cannot be compiled), made once per shape."""
        key = (serializer.service_model.service_name, shape.name)
        plan = plans.get(key)
        if plan is None:
            with plans_lock:
                plan = plans.get(key)
                if plan is None:
                    try:
                        plan = compile_structure(serializer, shape)
                    except _Fallback:
                        plan = refuse
                    plans[key] = plan  # published whole: other threads never see a plan being built
        return plan

    def compile_structure(serializer: Any, shape: Any) -> Any:
        if shape.type_name != "structure" or shape.is_document_type:
            raise _Fallback
        members: list[tuple[tuple[str, ...], str, Any]] = []
        for member_key, member_shape in shape.members.items():
            member_shape.parent = shape  # as moto's walk sets it before picking (ShapeNameAlias reads it)
            context = serialize.AttributePickerContext(
                obj={}, key=member_key, shape=member_shape, operation_model=serializer.operation_model,
                service_model=serializer.service_model)
            aliases = tuple(dict.fromkeys(serializer._value_picker.get_possible_keys(context)))
            if any("." in alias for alias in aliases):  # moto reads a dotted key as a path
                raise _Fallback
            members.append((aliases, serializer.get_serialized_name(member_shape, member_key),
                            compile_value(serializer, member_shape)))

        def structure(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _Fallback
            out: dict[str, Any] = {}
            for aliases, name, member in members:
                for alias in aliases:  # the first alias the dict holds, as moto's picker takes it
                    if alias in value:
                        member_value = value[alias]
                        if member_value is not None:
                            out[name] = member(member_value)
                        break
            return out

        return structure

    def compile_value(serializer: Any, shape: Any) -> Any:
        kind = shape.type_name
        if kind == "structure":
            # Looked up when used: AttributeValue holds maps and lists of itself.
            return lambda value: structure_plan(serializer, shape)(value)
        if kind == "list":
            if "name" in shape.member.serialization:
                raise _Fallback
            item = compile_value(serializer, shape.member)

            def items(value: Any) -> list[Any]:
                if type(value) is not list or None in value:
                    raise _Fallback
                return [item(entry) for entry in value]

            return items
        if kind == "map":
            if "name" in shape.value.serialization:
                raise _Fallback
            entry = compile_value(serializer, shape.value)

            def entries(value: Any) -> dict[str, Any]:
                if type(value) is not dict:
                    raise _Fallback
                out = {}
                for entry_key, entry_value in value.items():
                    if entry_value is None or type(entry_key) is not str:
                        raise _Fallback
                    out[entry_key] = entry(entry_value)
                return out

            return entries
        # Bound to the serializer the plan is compiled with: moto's scalar methods read only the value, the shape
        # and per-class settings (encoding, timestamp format), never the request.
        by_moto = getattr(serializer, f"_serialize_type_{kind}", None)
        plain = {"string": str, "integer": int, "long": int}.get(kind)

        def scalar(value: Any) -> Any:
            if type(value) is plain:
                return value  # what moto's str(value) / int(value) give back
            if by_moto is None:
                return value  # moto's _default_serialize: the value as it is
            wrapper: dict[str, Any] = {}
            by_moto(wrapper, value, shape, "value")
            return wrapper["value"]

        return scalar

    def fast(serializer: Any, result: Any) -> dict[str, Any]:
        picker = serializer._value_picker
        if (type(picker) is not serialize.XFormedAttributePicker or picker.response_transformers
                or picker.alias_providers is not serialize.DEFAULT_ALIAS_PROVIDERS):
            raise _Fallback
        shape = serializer.operation_model.output_shape
        if shape is None or type(result) is not dict:
            raise _Fallback
        return structure_plan(serializer, shape)(result)

    def _serialize_result(self: Any, resp: Any, result: Any) -> Any:
        if self.service_model.service_name not in _FAST_SERVICES:
            return original(self, resp, result)
        try:
            serialized = fast(self, result)
        except _Fallback:
            serialized = None
        if shadow_check is not None:
            import copy

            expected = original(self, copy.deepcopy(resp), result)["body"]
            fast_body = None if serialized is None else self._serialize_body(serialized)
            shadow_check.append((self.operation_name, fast_body, expected))
        if serialized is None:
            return original(self, resp, result)
        return self._serialized_result_to_response(resp, result, self.operation_model.output_shape, serialized)

    serialize.JSONSerializer._serialize_result = _serialize_result


def _size_items_once() -> None:
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.utilities import bytesize

    limit = 405000  # moto's (LimitedSizeDict.__setitem__)

    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = dynamo_type.LimitedSizeDict()
        size = 0  # what LimitedSizeDict.__setitem__ would re-measure: every key and value set so far
        for key, value in attrs.items():
            typed = dynamo_type.DynamoType(value)
            added = bytesize(key) + typed.size()
            if size + added > limit:
                raise dynamo_type.ItemSizeTooLarge
            dict.__setitem__(self.attrs, key, typed)
            size += added

    dynamo_type.Item.__init__ = __init__


def _list_response_methods_once() -> None:
    from moto.core import responses

    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
