"""The AWS side of the local stack: moto's server, the template's resources in it, and the Lambda runtime bits.

* ``MotoServer``: moto's ThreadedMotoServer on 127.0.0.1, failing loudly (instead of hanging) when the port is taken,
  with moto's SQS put right where the operations path needs it (billops_local.moto_fidelity).
* ``local_aws_environment``: the variables that point every boto3 client of this process at moto, with dummy
  credentials; ``EnvironmentPatch`` applies them (and the functions' environments) and restores what was there.
* ``create_resources``: tables (streams, PITR, SSE, TTL), queues (FIFO, redrive), secrets, event buses and
  archives, KMS keys (policy, rotation) and aliases from the template's specs.
* ``function_environments`` / ``merged_function_environment``: the template's Environment.Variables resolved against
  the created resources; all handlers share one process, so two functions giving one variable two values is an error.
* ``LocalFunction`` and ``LambdaContext``: a handler imported by file path from CodeUri + Handler, invoked with a
  context object like Lambda's, at most ``max_concurrency`` invocations at a time (1 by default: one warm
  container; the stack gives a function its ReservedConcurrentExecutions).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import socket
import string
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billops_local.aws_call_recording import acting_as
from billops_local.template_resources import (
    LOCAL_ACCOUNT_ID,
    LOCAL_REGION,
    FunctionSpec,
    LocalTemplate,
    TemplateError,
)

log = logging.getLogger("billops_local.aws")

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}  # nosec B105  # moto's dummy credentials, not a secret


# ----------------------------------------------------------------------------------------------------------------
# moto
# ----------------------------------------------------------------------------------------------------------------


class PortInUse(OSError):
    pass


def ensure_port_free(host: str, port: int, *, what: str) -> None:
    """Fail with a clear message when something already listens on host:port (port 0 always passes)."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as error:
        raise PortInUse(f"{what}: {host}:{port} is already in use ({error.strerror}); set another port") from None
    finally:
        probe.close()


class MotoServer:
    """moto's server in this process, quiet, on loopback only, serving persistent connections (moto_speed).

    The local stack runs it in a process of its own (billops_local.moto_process.MotoProcess); tests that need moto
    in their own process (fault injection checks) start it here."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5000) -> None:
        self.host = host
        self.requested_port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        from billops_local import moto_fidelity, moto_speed

        moto_fidelity.apply()
        moto_speed.apply()
        ensure_port_free(self.host, self.requested_port, what="moto (BILLOPS_AWS_PORT)")
        # One log line per AWS call (the stream poller makes several a second) would drown everything else.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(self.host, self.requested_port, DomainDispatcherApplication(create_backend_app),
                                   threaded=True, request_handler=moto_speed.request_handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="billops-moto", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Forget every resource: moto's backends are process-wide, so a second server in one process (tests)
        would otherwise see the first one's tables."""
        reset_moto(self.endpoint_url)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("moto is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # persistent connections' threads are daemons: they end with their client
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def reset_moto(endpoint_url: str) -> None:
    import urllib.request

    urllib.request.urlopen(  # nosec B310  # our own loopback moto endpoint
        urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST"), timeout=10
    ).close()


_session: Any = None
_session_lock = threading.Lock()


def aws_client(service: str, endpoint_url: str, region: str = LOCAL_REGION) -> Any:
    """A boto3 client for the local stack's own calls: explicit endpoint and dummy credentials, whatever os.environ.

    A new client each call (a caller may hook its events), from one session per process: a session loads botocore's
    endpoint data and each service's model once and caches them, where a session per client parsed them again every
    time (half a second per test's resources, most of the integration suite's time). botocore sessions are not
    thread-safe, so clients are made under a lock."""
    global _session
    import boto3
    from botocore.config import Config

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            service,
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=10),
        )


# ----------------------------------------------------------------------------------------------------------------
# Process environment
# ----------------------------------------------------------------------------------------------------------------


def local_aws_environment(endpoint_url: str, region: str = LOCAL_REGION) -> dict[str, str]:
    """What this process's environment must hold so every unchanged boto3 client talks to moto."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **DUMMY_CREDENTIALS,
        "AWS_EC2_METADATA_DISABLED": "true",
        # No profile, config or credentials file of the developer's can point a call at a real account.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def conflicting_aws_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Variables that would override the local endpoint or credentials (service-specific endpoints, profiles)."""
    return sorted(
        name
        for name in environ
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
    )


class EnvironmentPatch:
    """Sets and removes os.environ variables, and puts everything back as it was on restore()."""

    _MISSING = object()

    def __init__(self) -> None:
        self._saved: dict[str, Any] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name, self._MISSING))
            os.environ[name] = value

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            self._saved.setdefault(name, os.environ.get(name, self._MISSING))
            os.environ.pop(name, None)

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is self._MISSING:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


# ----------------------------------------------------------------------------------------------------------------
# Resources
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedTable:
    name: str
    arn: str
    stream_arn: str | None


@dataclass(frozen=True)
class CreatedQueue:
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class CreatedSecret:
    name: str
    arn: str


@dataclass(frozen=True)
class CreatedEventBus:
    name: str
    arn: str


@dataclass(frozen=True)
class CreatedArchive:
    name: str
    arn: str


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    arn: str


@dataclass(frozen=True)
class CreatedAlias:
    name: str
    arn: str
    key_logical_id: str


@dataclass
class CreatedResources:
    endpoint_url: str
    tables: dict[str, CreatedTable] = field(default_factory=dict)
    queues: dict[str, CreatedQueue] = field(default_factory=dict)
    secrets: dict[str, CreatedSecret] = field(default_factory=dict)
    event_buses: dict[str, CreatedEventBus] = field(default_factory=dict)
    event_archives: dict[str, CreatedArchive] = field(default_factory=dict)
    kms_keys: dict[str, CreatedKey] = field(default_factory=dict)
    kms_aliases: dict[str, CreatedAlias] = field(default_factory=dict)
    role_refs: dict[str, str] = field(default_factory=dict)  # roles SAM makes: what Ref / GetAtt .Arn name locally
    role_attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def refs(self) -> dict[str, str]:
        """What CloudFormation's Ref returns for each created resource."""
        return {
            **{logical_id: table.name for logical_id, table in self.tables.items()},
            **{logical_id: queue.url for logical_id, queue in self.queues.items()},
            **{logical_id: secret.arn for logical_id, secret in self.secrets.items()},
            **{logical_id: bus.name for logical_id, bus in self.event_buses.items()},
            **{logical_id: archive.name for logical_id, archive in self.event_archives.items()},
            **{logical_id: key.key_id for logical_id, key in self.kms_keys.items()},
            **{logical_id: alias.name for logical_id, alias in self.kms_aliases.items()},
            **self.role_refs,
        }

    @property
    def attributes(self) -> dict[tuple[str, str], str]:
        """What CloudFormation's GetAtt returns for each created resource."""
        values: dict[tuple[str, str], str] = {}
        for logical_id, table in self.tables.items():
            values[(logical_id, "Arn")] = table.arn
            if table.stream_arn:
                values[(logical_id, "StreamArn")] = table.stream_arn
        for logical_id, queue in self.queues.items():
            values[(logical_id, "Arn")] = queue.arn
            values[(logical_id, "QueueName")] = queue.name
            values[(logical_id, "QueueUrl")] = queue.url
        for logical_id, secret in self.secrets.items():
            values[(logical_id, "Id")] = secret.arn
        for logical_id, bus in self.event_buses.items():
            values[(logical_id, "Arn")] = bus.arn
            values[(logical_id, "Name")] = bus.name
        for logical_id, archive in self.event_archives.items():
            values[(logical_id, "Arn")] = archive.arn
            values[(logical_id, "ArchiveName")] = archive.name
        for logical_id, key in self.kms_keys.items():
            values[(logical_id, "Arn")] = key.arn
            values[(logical_id, "KeyId")] = key.key_id
        values.update(self.role_attributes)
        return values


_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue", "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize", "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds", "RedriveAllowPolicy", "RedrivePolicy", "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def create_resources(
    template: LocalTemplate, endpoint_url: str, *, secret_values: Mapping[str, str] | None = None
) -> CreatedResources:
    """Create the template's KMS keys and aliases, tables, queues, secrets, event buses and archives in moto;
    ``secret_values`` gives a secret's value by logical id (the others get their SecretString, or a random value
    shaped by their GenerateSecretString)."""
    created = CreatedResources(endpoint_url, role_refs=template.role_refs, role_attributes=template.role_attributes)
    # KMS keys first: the queues, tables, secrets and the bus name them (KmsMasterKeyId, ...).
    kms = aws_client("kms", endpoint_url)
    resolver = template.resolver.with_resources(created.refs, created.attributes)
    for logical_id, key in template.kms_keys.items():
        kwargs = {"KeySpec": key.key_spec, "KeyUsage": key.key_usage}
        if key.description is not None:
            kwargs["Description"] = resolver.resolve_string(key.description, what=f"{logical_id}.Description")
        if key.key_policy is not None:
            policy = resolver.resolve(key.key_policy)  # the roles it names resolve to their local ARNs
            kwargs["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        metadata = kms.create_key(**kwargs)["KeyMetadata"]
        if key.enable_key_rotation:
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        created.kms_keys[logical_id] = CreatedKey(metadata["KeyId"], metadata["Arn"])
    for logical_id, alias in template.kms_aliases.items():
        target = created.kms_keys[alias.target_key_logical_id]
        kms.create_alias(AliasName=alias.alias_name, TargetKeyId=target.key_id)
        arn = f"arn:aws:kms:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{alias.alias_name}"
        created.kms_aliases[logical_id] = CreatedAlias(alias.alias_name, arn, alias.target_key_logical_id)

    dynamodb = aws_client("dynamodb", endpoint_url)
    for logical_id, spec in template.tables.items():
        description = dynamodb.create_table(**spec.create_table_kwargs())["TableDescription"]
        if spec.point_in_time_recovery:
            dynamodb.update_continuous_backups(
                TableName=spec.physical_name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        if spec.time_to_live_attribute:
            dynamodb.update_time_to_live(
                TableName=spec.physical_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.time_to_live_attribute},
            )
        created.tables[logical_id] = CreatedTable(
            spec.physical_name, description["TableArn"], description.get("LatestStreamArn")
        )

    sqs = aws_client("sqs", endpoint_url)
    pending = dict(template.queues)
    while pending:  # a queue whose RedrivePolicy names another queue waits until that one exists
        progressed = False
        for logical_id, spec in list(pending.items()):
            resolver = template.resolver.with_resources(created.refs, created.attributes)
            try:
                attributes = {
                    name: _queue_attribute(resolver.resolve(value))
                    for name, value in spec.attributes.items()
                    if name in _QUEUE_ATTRIBUTES
                }
            except TemplateError:
                continue
            url = sqs.create_queue(QueueName=spec.physical_name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            created.queues[logical_id] = CreatedQueue(spec.physical_name, url, arn)
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise TemplateError(f"cannot resolve the attributes of queues {sorted(pending)} locally")

    secretsmanager = aws_client("secretsmanager", endpoint_url)
    resolver = template.resolver.with_resources(created.refs, created.attributes)
    for logical_id, spec in template.secrets.items():
        if secret_values and logical_id in secret_values:
            value = secret_values[logical_id]
        elif spec.secret_string is not None:
            value = resolver.resolve_string(spec.secret_string, what=f"{logical_id}.SecretString")
        else:
            value = generated_secret_string(spec.generate or {})
        kwargs: dict[str, Any] = {"Name": spec.physical_name, "SecretString": value}
        if spec.description is not None:
            kwargs["Description"] = resolver.resolve_string(spec.description, what=f"{logical_id}.Description")
        arn = secretsmanager.create_secret(**kwargs)["ARN"]
        created.secrets[logical_id] = CreatedSecret(spec.physical_name, arn)

    events = aws_client("events", endpoint_url)
    for logical_id, bus in template.event_buses.items():
        arn = events.create_event_bus(Name=bus.physical_name)["EventBusArn"]
        created.event_buses[logical_id] = CreatedEventBus(bus.physical_name, arn)
    resolver = template.resolver.with_resources(created.refs, created.attributes)
    for logical_id, archive in template.event_archives.items():
        kwargs = {
            "ArchiveName": archive.physical_name,
            "EventSourceArn": created.event_buses[archive.source_bus_logical_id].arn,
            "RetentionDays": archive.retention_days,
        }
        if archive.event_pattern:
            pattern = archive.event_pattern
            kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if archive.description is not None:
            kwargs["Description"] = resolver.resolve_string(archive.description, what=f"{logical_id}.Description")
        arn = events.create_archive(**kwargs)["ArchiveArn"]
        created.event_archives[logical_id] = CreatedArchive(archive.physical_name, arn)

    _register_for_recording(template, created)
    return created


def _register_for_recording(template: LocalTemplate, created: CreatedResources) -> None:
    """What the AWS call recorder needs to write these resources' identities canonically (aws_call_recording)."""
    from billops_local import aws_call_recording

    aws_call_recording.register_resources(
        key_ids={key.key_id: logical_id for logical_id, key in created.kms_keys.items()},
        aliases={alias.name: alias.key_logical_id for alias in created.kms_aliases.values()},
        hash_keys={spec.physical_name: element.attribute_name for spec in template.tables.values()
                   for element in spec.key_schema if element.key_type == "HASH"},
    )


def _queue_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def generated_secret_string(generate: Mapping[str, Any]) -> str:
    """A local stand-in for GenerateSecretString (length, character classes, SecretStringTemplate)."""
    length = int(generate.get("PasswordLength", 32))
    alphabet = ""
    if not generate.get("ExcludeLowercase"):
        alphabet += string.ascii_lowercase
    if not generate.get("ExcludeUppercase"):
        alphabet += string.ascii_uppercase
    if not generate.get("ExcludeNumbers"):
        alphabet += string.digits
    if not generate.get("ExcludePunctuation"):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if generate.get("ExcludeCharacters"):
        alphabet = "".join(c for c in alphabet if c not in str(generate["ExcludeCharacters"]))
    if generate.get("IncludeSpace"):
        alphabet += " "
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    if generate.get("SecretStringTemplate") and generate.get("GenerateStringKey"):
        document = json.loads(generate["SecretStringTemplate"])
        document[generate["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


# ----------------------------------------------------------------------------------------------------------------
# Function environments
# ----------------------------------------------------------------------------------------------------------------


class EnvironmentConflict(TemplateError):
    """Two functions set one variable to different values; one process cannot give both their own."""


def function_environments(template: LocalTemplate, created: CreatedResources) -> dict[str, dict[str, str]]:
    resolver = template.resolver.with_resources(created.refs, created.attributes)
    return {
        logical_id: {
            name: resolver.resolve_string(value, what=f"{logical_id} environment variable {name}")
            for name, value in function.environment.items()
        }
        for logical_id, function in template.functions.items()
    }


def merged_function_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for logical_id, variables in environments.items():
        for name, value in variables.items():
            if name in merged and merged[name] != value:
                raise EnvironmentConflict(
                    f"{owner[name]} and {logical_id} set {name} to different values "
                    f"({merged[name]!r} vs {value!r}); the local stack runs every handler in one process"
                )
            merged[name] = value
            owner.setdefault(name, logical_id)
    return merged


# ----------------------------------------------------------------------------------------------------------------
# Lambda runtime
# ----------------------------------------------------------------------------------------------------------------


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools use."""

    def __init__(self, function_name: str, memory_limit_in_mb: int, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d") + "/[$LATEST]local"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """One function of the template, at most ``max_concurrency`` invocations at a time.

    Two ways to run it:
    * ``isolated=True`` (what the local stack does): each concurrent invocation in an execution environment of its
      own, a process (billops_local.function_process), started when every warm one is busy, as Lambda starts one;
      ``load()`` starts the first (the cold start, at the stack's start-up);
    * in this process (tests' fakes, a ``handler`` callable, or a module imported here once and shared by the
      invocations: only for handlers that keep no per-invocation state at module or class level).
    """

    def __init__(
        self,
        name: str,
        *,
        module_path: Path | None = None,
        module_name: str | None = None,
        handler_attribute: str = "handler",
        handler: Callable[[Any, Any], Any] | None = None,
        memory_size: int = 128,
        timeout: float = 3,
        logical_id: str | None = None,
        max_concurrency: int = 1,
        isolated: bool = False,
        process_setups: Iterable[Callable[[], None]] = (),
    ) -> None:
        if handler is None and module_path is None:
            raise ValueError("give a handler callable or a module path")
        if isolated and module_path is None:
            raise ValueError("an isolated function needs its module path")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.name = name
        self.logical_id = logical_id or name
        self.module_path = Path(module_path) if module_path else None
        self.module_name = module_name or (self.module_path.stem if self.module_path else name)
        self.handler_attribute = handler_attribute
        self.memory_size = memory_size
        self.timeout = timeout
        self._handler = handler
        self.max_concurrency = max_concurrency
        self.isolated = isolated
        self.process_setups = list(process_setups)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._load_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._idle: list[Any] = []  # warm environments (FunctionProcess), the most recently used last
        self._environments: list[Any] = []  # every started one
        self._environment_ready = threading.Condition(self._count_lock)
        self._starting = 0
        self._start_failure: BaseException | None = None
        self._stopped = False
        self.active = 0
        self.peak_concurrency = 0
        self.invocations = 0
        self.cold_starts = 0

    @classmethod
    def from_spec(cls, spec: FunctionSpec, *, max_concurrency: int | None = None, isolated: bool = False,
                  process_setups: Iterable[Callable[[], None]] = ()) -> LocalFunction:
        return cls(
            spec.physical_name,
            logical_id=spec.logical_id,
            module_path=spec.module_path,
            module_name=spec.module_name,
            handler_attribute=spec.handler_attribute,
            memory_size=spec.memory_size,
            timeout=spec.timeout,
            max_concurrency=max_concurrency or 1,
            isolated=isolated,
            process_setups=process_setups,
        )

    @property
    def loaded(self) -> bool:
        if self.isolated:
            return any(environment.init_error is None for environment in self._environments)
        return self._handler is not None

    @property
    def environments(self) -> int:
        """How many execution environments (processes) it has started and kept."""
        return len(self._environments)

    def load(self) -> Callable[[Any, Any], Any] | None:
        """The cold start: import the handler module here, or (isolated) start one warm environment, raising its
        import error. A failed import is retried on the next invocation."""
        if self.isolated:
            with self._count_lock:
                warm = bool(self._environments)
            if not warm:
                environment = self._start_environment()
                with self._count_lock:
                    self._environments.append(environment)
                self._release(environment)
                if environment.init_error is not None:
                    type_name, message, remote = environment.init_error
                    from billops_local.function_process import remote_error

                    raise remote_error(type_name, message, remote)
            return None
        if self._handler is not None:
            return self._handler
        with self._load_lock:
            if self._handler is not None:
                return self._handler
            with acting_as(self.logical_id):  # AWS calls at import time are the function's too
                return self._import()

    def _import(self) -> Callable[[Any, Any], Any]:
        if self.module_path is None:
            raise RuntimeError("no module path: the function was made without one")
        if not self.module_path.is_file():
            raise FileNotFoundError(f"{self.logical_id}: handler module {self.module_path} does not exist")
        code_dir = str(self.module_path.parent)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        spec = importlib.util.spec_from_file_location(self.module_name, self.module_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {self.module_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
            handler = getattr(module, self.handler_attribute)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        if not callable(handler):
            raise TypeError(f"{self.module_name}.{self.handler_attribute} is not callable")
        self._handler = handler
        return handler

    # -- execution environments (isolated) ---------------------------------------------------------------------

    def _process_config(self) -> Any:
        from billops_local import aws_call_recording
        from billops_local.function_process import ProcessConfig

        if self.module_path is None:
            raise RuntimeError(f"{self.logical_id}: no handler module to run in a process of its own")
        return ProcessConfig(
            name=self.name, logical_id=self.logical_id, module_path=self.module_path, module_name=self.module_name,
            handler_attribute=self.handler_attribute, memory_size=self.memory_size, timeout=self.timeout,
            environment=dict(os.environ), recording=aws_call_recording.registered_resources(),
            setups=tuple(self.process_setups), verbose=logging.getLogger("billops_local").isEnabledFor(logging.DEBUG),
        )

    def _start_environment(self) -> Any:
        from billops_local.function_process import FunctionProcess

        if self._stopped:
            raise RuntimeError(f"{self.logical_id} is stopped")
        environment = FunctionProcess(self._process_config())
        environment.start()
        with self._count_lock:
            self.cold_starts += 1
        log.debug("%s: execution environment %d started (pid %s)", self.logical_id, self.cold_starts,
                  environment.pid)
        return environment

    def _grow(self) -> None:
        """Start one more environment (in its own thread) and hand it to whoever waits first."""
        try:
            environment = self._start_environment()
        except BaseException as error:  # noqa: BLE001 - the waiters raise it if no environment is left
            log.error("%s: starting an execution environment failed: %s", self.logical_id, error)
            with self._environment_ready:
                self._starting -= 1
                self._start_failure = error
                self._environment_ready.notify_all()
            return
        with self._environment_ready:
            self._starting -= 1
            self._start_failure = None
            if self._stopped:
                environment.stop(0)
                return
            self._environments.append(environment)
            self._idle.append(environment)
            self._environment_ready.notify()

    def _acquire(self) -> Any:
        """A warm environment; when every one is busy, one more is started (up to ``max_concurrency``) and the
        invocation takes whichever is free first: its latency is not a cold start's while a warm one frees up."""
        with self._environment_ready:
            while True:
                if self._stopped:
                    raise RuntimeError(f"{self.logical_id} is stopped")
                if self._idle:
                    return self._idle.pop()
                if self._start_failure is not None and not self._environments and not self._starting:
                    raise self._start_failure
                if len(self._environments) + self._starting < self.max_concurrency:
                    self._starting += 1
                    threading.Thread(target=self._grow, name=f"billops-start-{self.logical_id}",
                                     daemon=True).start()
                self._environment_ready.wait()

    def _release(self, environment: Any) -> None:
        with self._environment_ready:
            if environment.alive and not self._stopped:
                self._idle.append(environment)
                self._environment_ready.notify()
                return
            if environment in self._environments:
                self._environments.remove(environment)
            self._environment_ready.notify()
        environment.stop(0)

    def _invoke_isolated(self, event: Any) -> Any:
        environment = self._acquire()
        try:
            return environment.invoke(event)
        finally:
            self._release(environment)

    def close(self) -> None:
        """Begin stopping (isolated): no new environment, every environment's pipe closed (each process exits once
        its invocation, if any, returns)."""
        with self._environment_ready:
            self._stopped = True
            environments, self._idle = list(self._environments), []
            self._environment_ready.notify_all()
        for environment in environments:
            environment.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every execution environment: closed, then one shared wait, then SIGTERM for any still busy."""
        self.close()
        with self._count_lock:
            environments, self._environments = list(self._environments), []
        deadline = time.monotonic() + timeout
        for environment in environments:
            environment.join(deadline - time.monotonic())

    # -- invocation ----------------------------------------------------------------------------------------------

    def invoke(self, event: Any) -> Any:
        """Run the handler on ``event``; its exception propagates (the caller answers the way AWS would). Waits for
        a free slot when ``max_concurrency`` invocations are running."""
        with self._slots:
            with self._count_lock:
                self.active += 1
                self.invocations += 1
                self.peak_concurrency = max(self.peak_concurrency, self.active)
            started = time.monotonic()
            try:
                if self.isolated:
                    return self._invoke_isolated(event)
                handler = self.load()
                context = LambdaContext(self.name, self.memory_size, self.timeout)
                started = time.monotonic()
                with acting_as(self.logical_id):  # its AWS calls are recorded as its role's
                    return handler(event, context)
            finally:
                elapsed = time.monotonic() - started
                if elapsed > self.timeout and not self.isolated:  # (an environment warns in its own process)
                    log.warning(
                        "%s ran %.1f s, longer than its Timeout of %s s (Lambda would have stopped it)",
                        self.logical_id, elapsed, self.timeout,
                    )
                with self._count_lock:
                    self.active -= 1
