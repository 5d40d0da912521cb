"""Every AWS call each function makes, as IAM would authorize it: recorded for the least-privilege check
(`make check-iam`, iam_check/).

Turned on by ``BILLOPS_RECORD_AWS_CALLS=<directory>`` (the Makefile's test targets set it; the local stack and the
test process each call ``install_from_environment()``). Then every botocore client the process creates gets two
event hooks (``before-parameter-build`` and ``after-call``): the domain code is untouched. A call is attributed to
the function running it (``acting_as``: the local stack's ``LocalFunction.invoke`` and the tests' handler loader set
it; the local stack's event source pollers set it for the calls Lambda's event source mapping makes with the
function's role). Calls made outside any function (the local stack creating resources, tests reading tables) are
not recorded.

Each call becomes one or more authorization requests: the IAM action (``dynamodb:PutItem``), the resource ARN as AWS
authorizes it (table, index, stream, queue, secret, key, bus, parameter) and the condition keys the template's
policies can test (``kms:EncryptionContext:*``, ``kms:CallerAccount``, ``dynamodb:LeadingKeys``). Each distinct
request is appended once, as a JSON line, to ``<directory>/calls-<pid>.jsonl``: one file per process, so pytest-xdist
workers and local stacks in subprocesses never write to the same file; iam_check merges them.

Identifiers that differ from run to run are written in a canonical form that iam_check resolves the template to as
well: a KMS key as ``key/<LogicalId>`` (moto's key ids are random), a secret's ARN with the suffix ``-000000``
(moto's is random), a stream's label as ``LOCAL``. ``dynamodb:LeadingKeys`` values keep their first ``#``-separated
segment only (``throttle#…``): enough for the prefix conditions the template uses (``throttle#*``); a condition on a
finer value would show up as a denial, never as a silent allow. Recording a new distinct request costs one line;
a repeated one, a dictionary lookup.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORD_VARIABLE = "BILLOPS_RECORD_AWS_CALLS"
ACCOUNT_ID = "123456789012"  # moto's, and the local stack's (template_resources.LOCAL_ACCOUNT_ID)
SECRET_SUFFIX = "-000000"  # nosec B105  # the canonical suffix of a secret's ARN, not a password
STREAM_LABEL = "LOCAL"
ELIDED = "…"


@dataclass(frozen=True)
class Acting:
    function: str  # the template's logical ID
    via: str  # "handler" | "event-source-mapping"
    stream_arn: str | None = None  # what GetRecords (which names only a shard iterator) reads


_acting: contextvars.ContextVar[Acting | None] = contextvars.ContextVar("billops_acting_function", default=None)


@contextmanager
def acting_as(function_logical_id: str, via: str = "handler", *, stream_arn: str | None = None) -> Iterator[None]:
    """AWS calls made inside are the function's (its role's)."""
    token = _acting.set(Acting(function_logical_id, via, stream_arn))
    try:
        yield
    finally:
        _acting.reset(token)


@contextmanager
def not_recorded() -> Iterator[None]:
    """Calls the local emulation makes that Lambda itself would not (e.g. the queue poller's visibility shortcut)."""
    token = _acting.set(None)
    try:
        yield
    finally:
        _acting.reset(token)


# ----------------------------------------------------------------------------------------------------------------
# What the local resources are (registered by billops_local.aws_environment.create_resources)
# ----------------------------------------------------------------------------------------------------------------

_registry_lock = threading.Lock()
_key_ids: dict[str, str] = {}  # moto key id -> the template's logical ID
_aliases: dict[str, str] = {}  # alias name -> the key's logical ID
_hash_keys: dict[str, str] = {}  # table name -> its partition key attribute


def canonical_key_arn(logical_id: str, region: str = "us-east-1") -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{logical_id}"


def canonical_secret_arn(name: str, region: str = "us-east-1") -> str:
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{name}{SECRET_SUFFIX}"


def register_resources(*, key_ids: Mapping[str, str] = {}, aliases: Mapping[str, str] = {},  # noqa: B006
                       hash_keys: Mapping[str, str] = {}) -> None:  # noqa: B006
    with _registry_lock:
        _key_ids.update(key_ids)
        _aliases.update(aliases)
        _hash_keys.update(hash_keys)


def registered_resources() -> dict[str, dict[str, str]]:
    """What ``register_resources`` was told, to tell a function's own process (billops_local.function_process)."""
    with _registry_lock:
        return {"key_ids": dict(_key_ids), "aliases": dict(_aliases), "hash_keys": dict(_hash_keys)}


# ----------------------------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"calls-{os.getpid()}.jsonl"
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._file: Any = None
        self._pid = 0
        # Each recorder its own slot in botocore's call context: a client hooked by two recorders (a test's own, and
        # the process-wide one $BILLOPS_RECORD_AWS_CALLS installs) is recorded by both.
        self._context_key = f"billops_aws_call_{id(self)}"

    def record(self, entry: dict[str, Any], seen_in: str) -> None:
        """Append ``entry`` (with where it was first seen) unless this process wrote it already."""
        key = json.dumps(entry, sort_keys=True, ensure_ascii=False)
        if key in self._seen:
            return
        with self._lock:
            if key in self._seen:
                return
            if self._file is None or self._pid != os.getpid():  # a forked child writes its own file
                self.path = self.directory / f"calls-{os.getpid()}.jsonl"
                self._file = self.path.open("a", encoding="utf-8")
                self._pid = os.getpid()
            self._file.write(json.dumps({**entry, "seen_in": seen_in}, sort_keys=True, ensure_ascii=False) + "\n")
            self._file.flush()
            self._seen.add(key)

    # -- botocore event hooks ------------------------------------------------------------------------------------

    def before_parameter_build(self, params: Mapping[str, Any], model: Any, context: dict[str, Any],
                               **_: Any) -> None:
        acting = _acting.get()
        if acting is None or context is None:
            return
        context[self._context_key] = (acting, model, _copy_params(params))

    def after_call(self, parsed: Mapping[str, Any] | None = None, context: dict[str, Any] | None = None,
                   **_: Any) -> None:
        pending = (context or {}).pop(self._context_key, None)
        if pending is None:
            return
        acting, model, params = pending
        try:
            requests = authorization_requests(model, params, parsed or {}, acting, _region_of(context))
        except Exception as error:  # noqa: BLE001 - recording must never break the call it watches
            requests = [{"action": _action(model), "resource": None,
                         "unsupported": f"recording failed: {type(error).__name__}: {error}"}]
        for request in requests:
            self.record({"function": acting.function, "via": acting.via, **request}, _where())

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self.before_parameter_build)
        client.meta.events.register("after-call", self.after_call)
        client.meta.events.register("after-call-error", self.after_call)

    def unhook(self, client: Any) -> None:
        client.meta.events.unregister("before-parameter-build", self.before_parameter_build)
        client.meta.events.unregister("after-call", self.after_call)
        client.meta.events.unregister("after-call-error", self.after_call)


_label: str | None = None  # "local stack": its calls are not the test that happened to start it


def _where() -> str:
    test = None if _label else os.environ.get("PYTEST_CURRENT_TEST")
    return test.rsplit(" (", 1)[0] if test else f"{_label or 'process'} (pid {os.getpid()})"


def _region_of(context: Mapping[str, Any] | None) -> str:
    return str((context or {}).get("client_region") or "us-east-1")


def _copy_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Only what the authorization depends on (not item bodies beyond their keys)."""
    return dict(params)


_recorder: Recorder | None = None
_install_lock = threading.Lock()


def install(directory: Path | str) -> Recorder:
    """Hook every botocore client this process creates from now on (idempotent; a second call keeps the first
    directory)."""
    global _recorder
    with _install_lock:
        if _recorder is not None:
            return _recorder
        import botocore.session

        recorder = Recorder(Path(directory))
        original = botocore.session.Session.create_client

        def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(self, *args, **kwargs)
            recorder.hook(client)
            return client

        create_client.__wrapped__ = original  # type: ignore[attr-defined]
        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        _recorder = recorder
        return recorder


def install_from_environment(environ: Mapping[str, str] = os.environ, *, label: str | None = None) -> Recorder | None:
    """``install`` into $BILLOPS_RECORD_AWS_CALLS, if set; ``label`` says where the calls were seen (the local
    stack's process inherits the PYTEST_CURRENT_TEST of the test that started it, which says nothing useful)."""
    global _label
    directory = environ.get(RECORD_VARIABLE, "").strip()
    if not directory:
        return None
    _label = label or _label
    return install(directory)


def recorder() -> Recorder | None:
    return _recorder


# ----------------------------------------------------------------------------------------------------------------
# From an API call to the requests IAM authorizes
# ----------------------------------------------------------------------------------------------------------------

# API operations whose IAM action has another name.
_ACTION_NAMES = {
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}


def _action(model: Any) -> str:
    prefix = model.service_model.signing_name
    return _ACTION_NAMES.get((prefix, model.name), f"{prefix}:{model.name}")


def authorization_requests(model: Any, params: Mapping[str, Any], parsed: Mapping[str, Any], acting: Acting,
                           region: str) -> list[dict[str, Any]]:
    """[{"action", "resource", "context"}] for one API call (a batch call on two tables is two requests)."""
    service = model.service_model.service_name
    action = _action(model)
    derive = _RESOURCES.get(service)
    if derive is None:
        return [{"action": action, "resource": None,
                 "unsupported": f"the recorder does not know {service}'s resources: teach aws_call_recording"}]
    return [{"action": request_action, "resource": resource, "context": dict(sorted(context.items()))}
            for request_action, resource, context in derive(model.name, action, params, parsed, acting, region)]


def _dynamodb_table_arn(name: str, region: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"


def _table_name(name_or_arn: str) -> str:
    return name_or_arn.split(":table/", 1)[1].split("/", 1)[0] if name_or_arn.startswith("arn:") else name_or_arn


def _scalar(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        (inner,) = value.values()
        return str(inner) if isinstance(inner, (str, int, float)) else None
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _elide(value: str) -> str:
    head, separator, _ = value.partition("#")
    return f"{head}#{ELIDED}" if separator else ELIDED


def _leading_keys(table: str, items: list[Mapping[str, Any]]) -> list[str] | None:
    attribute = _hash_keys.get(_table_name(table))
    if attribute is None:
        return None
    values = {_elide(value) for item in items if (value := _scalar(item.get(attribute))) is not None}
    return sorted(values) if values else None


_KEY_CONDITION = re.compile(r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)")


def _query_leading_keys(table: str, params: Mapping[str, Any]) -> list[str] | None:
    attribute = _hash_keys.get(_table_name(table))
    expression = params.get("KeyConditionExpression")
    if attribute is None or not isinstance(expression, str):
        return None
    names = params.get("ExpressionAttributeNames") or {}
    values = params.get("ExpressionAttributeValues") or {}
    for name, placeholder in _KEY_CONDITION.findall(expression):
        if names.get(name, name) == attribute and placeholder in values:
            value = _scalar(values[placeholder])
            return [_elide(value)] if value is not None else None
    return None


def _with_leading_keys(context: dict[str, Any], keys: list[str] | None) -> dict[str, Any]:
    if keys:
        context["dynamodb:LeadingKeys"] = keys
    return context


def _dynamodb(operation: str, action: str, params: Mapping[str, Any], _parsed: Mapping[str, Any], _acting: Acting,
              region: str) -> list[tuple[str, str, dict[str, Any]]]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        requests = []
        for table, entries in (params.get("RequestItems") or {}).items():
            if operation == "BatchGetItem":
                items = list(entries.get("Keys") or [])
            else:
                items = [entry.get("PutRequest", {}).get("Item") or entry.get("DeleteRequest", {}).get("Key") or {}
                         for entry in entries]
            requests.append((action, _dynamodb_table_arn(table, region),
                             _with_leading_keys({}, _leading_keys(table, items))))
        return requests
    if operation in ("TransactWriteItems", "TransactGetItems"):
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck":
                 "ConditionCheckItem", "Get": "GetItem"}
        requests = []
        for entry in params.get("TransactItems") or []:
            for kind, body in entry.items():
                table = body["TableName"]
                item = body.get("Item") or body.get("Key") or {}
                requests.append((f"dynamodb:{kinds[kind]}", _dynamodb_table_arn(table, region),
                                 _with_leading_keys({}, _leading_keys(table, [item]))))
        return requests
    table = params.get("TableName")
    if not isinstance(table, str):
        return [(action, f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/*", {})]
    resource = _dynamodb_table_arn(table, region)
    if params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    context: dict[str, Any] = {}
    if operation == "PutItem":
        _with_leading_keys(context, _leading_keys(table, [params.get("Item") or {}]))
    elif operation in ("GetItem", "UpdateItem", "DeleteItem"):
        _with_leading_keys(context, _leading_keys(table, [params.get("Key") or {}]))
    elif operation == "Query":
        _with_leading_keys(context, _query_leading_keys(table, params))
    return [(action, resource, context)]


_STREAM_LABEL = re.compile(r"/stream/[^/]+$")


def _canonical_stream(arn: str) -> str:
    return _STREAM_LABEL.sub(f"/stream/{STREAM_LABEL}", arn)


def _dynamodb_streams(operation: str, action: str, params: Mapping[str, Any], _parsed: Mapping[str, Any],
                      acting: Acting, region: str) -> list[tuple[str, str, dict[str, Any]]]:
    arn = params.get("StreamArn") or acting.stream_arn
    if operation == "ListStreams":
        table = params.get("TableName") or "*"
        return [(action, f"{_dynamodb_table_arn(table, region)}/stream/*", {})]
    if not arn:
        raise ValueError(f"{operation}: which stream? (the caller set no stream_arn)")
    return [(action, _canonical_stream(str(arn)), {})]


def _sqs(operation: str, action: str, params: Mapping[str, Any], _parsed: Mapping[str, Any], _acting: Acting,
         region: str) -> list[tuple[str, str, dict[str, Any]]]:
    name = params.get("QueueName") or str(params.get("QueueUrl") or "").rstrip("/").rsplit("/", 1)[-1]
    if not name:
        return [(action, f"arn:aws:sqs:{region}:{ACCOUNT_ID}:*", {})]
    return [(action, f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}", {})]


_SECRET_ARN = re.compile(r"^(arn:aws:secretsmanager:[^:]+:[0-9]+:secret:)(.+?)(-[A-Za-z0-9]{6})?$")


def canonical_secret(secret_id: str, region: str = "us-east-1") -> str:
    match = _SECRET_ARN.match(secret_id)
    if match:
        return f"{match.group(1)}{match.group(2)}{SECRET_SUFFIX}"
    return canonical_secret_arn(secret_id, region)


def _secretsmanager(operation: str, action: str, params: Mapping[str, Any], _parsed: Mapping[str, Any],
                    _acting: Acting, region: str) -> list[tuple[str, str, dict[str, Any]]]:
    secret = params.get("SecretId")
    if not isinstance(secret, str):
        return [(action, f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:*", {})]
    return [(action, canonical_secret(secret, region), {})]


_KEY_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$")


def canonical_key(key: str | None, region: str = "us-east-1") -> str | None:
    if not key:
        return None
    alias = key.split(":", 5)[-1] if key.startswith("arn:") and ":alias/" in key else key
    if alias.startswith("alias/"):
        logical = _aliases.get(alias)
        return canonical_key_arn(logical, region) if logical else f"arn:aws:kms:{region}:{ACCOUNT_ID}:{alias}"
    match = _KEY_ID.search(key)
    if match and match.group(1) in _key_ids:
        return canonical_key_arn(_key_ids[match.group(1)], region)
    return key if key.startswith("arn:") else f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{key}"


def _kms(operation: str, action: str, params: Mapping[str, Any], parsed: Mapping[str, Any], _acting: Acting,
         region: str) -> list[tuple[str, str, dict[str, Any]]]:
    key = params.get("KeyId") or parsed.get("KeyId")
    resource = canonical_key(key, region) or f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/unknown"
    context: dict[str, Any] = {"kms:CallerAccount": ACCOUNT_ID}
    encryption_context = params.get("EncryptionContext") or {}
    for name, value in encryption_context.items():
        context[f"kms:EncryptionContext:{name}"] = value
    if encryption_context:
        context["kms:EncryptionContextKeys"] = sorted(encryption_context)
    if isinstance(params.get("KeyId"), str) and "alias/" in params["KeyId"]:
        context["kms:RequestAlias"] = "alias/" + params["KeyId"].split("alias/", 1)[1]
    return [(action, resource, context)]


def _events(operation: str, action: str, params: Mapping[str, Any], _parsed: Mapping[str, Any], _acting: Acting,
            region: str) -> list[tuple[str, str, dict[str, Any]]]:
    buses = {entry.get("EventBusName") or "default" for entry in params.get("Entries") or []}
    if not buses and params.get("EventBusName"):
        buses = {params["EventBusName"]}
    return [(action, bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{bus}", {})
            for bus in sorted(buses)] or [(action, f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/default", {})]


def _ssm(operation: str, action: str, params: Mapping[str, Any], _parsed: Mapping[str, Any], _acting: Acting,
         region: str) -> list[tuple[str, str, dict[str, Any]]]:
    names = params.get("Names") or ([params["Name"]] if params.get("Name") else [])
    if params.get("Path"):
        names = [params["Path"]]
    return [(action, name if name.startswith("arn:") else
             f"arn:aws:ssm:{region}:{ACCOUNT_ID}:parameter/{name.lstrip('/')}", {}) for name in names]


_RESOURCES = {
    "dynamodb": _dynamodb,
    "dynamodbstreams": _dynamodb_streams,
    "sqs": _sqs,
    "secretsmanager": _secretsmanager,
    "kms": _kms,
    "events": _events,
    "ssm": _ssm,
}
