"""template.yaml, read the way the local stack needs it.

The local stack creates its tables, queues, secrets, KMS keys and event buses, its HTTP routes, its stream and queue
pollers and its schedules from the SAM template, so they cannot drift from what AWS gets. This module parses the
template (CloudFormation short-form tags included), applies SAM's Globals, evaluates Conditions with the local
parameter values, and returns typed specs.

Local conventions:
  * every resource's physical name is ``billops-local-<LogicalId>`` (``.fifo`` appended for FIFO queues; a KMS
    alias is ``alias/billops-local-<LogicalId>``; a schedule's rule ``billops-local-<FunctionId><EventId>``);
  * the ``Environment`` parameter is ``local``, every other parameter takes its default (or an override);
  * pseudo parameters: region us-east-1, account 123456789012 (moto's default), stack name ``billops-local``;
  * the execution role SAM makes for a function (``<FunctionId>Role``) is
    ``arn:aws:iam::123456789012:role/billops-local-<FunctionId>Role`` (what a key policy naming it resolves to).

Intrinsics in environment variables and queue attributes are kept as written and resolved later, by
``IntrinsicResolver``, once the resources exist in moto (a secret's ARN, a queue's URL are only known then).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOCAL_PREFIX = "billops-local-"
LOCAL_STACK_NAME = "billops-local"
LOCAL_ENVIRONMENT = "local"
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
LOCAL_CONTROL_PREFIX = "/__local"  # the local stack's own endpoints on the HTTP API port (never a template route)


class TemplateError(ValueError):
    """The template uses something the local stack cannot reproduce faithfully (so it refuses, loudly)."""


# ----------------------------------------------------------------------------------------------------------------
# YAML with CloudFormation short-form tags
# ----------------------------------------------------------------------------------------------------------------


class CloudFormationLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe YAML loader that turns ``!Ref x`` into ``{"Ref": "x"}``, ``!Sub s`` into ``{"Fn::Sub": s}`` and so on.

    Timestamps stay strings, as CloudFormation reads them (``AWSTemplateFormatVersion: 2010-09-09``). libyaml's
    parser where PyYAML has it (the same documents, ten times faster: the local stack and every integration test load
    the template), PyYAML's own otherwise.
    """


CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_tagged)


def load_yaml(path: Path | str) -> dict[str, Any]:
    """The template at ``path`` (a copy of its own: callers may change it). Parsed once per version of the file in a
    process: every integration test and local stack loads the same template."""
    import copy

    stat = os.stat(path)
    return copy.deepcopy(_parsed(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=16)
def _parsed(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=CloudFormationLoader)  # nosec B506  # CloudFormationLoader is a safe loader (libyaml's CSafeLoader or yaml.SafeLoader)
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


# ----------------------------------------------------------------------------------------------------------------
# Intrinsic functions
# ----------------------------------------------------------------------------------------------------------------

_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class IntrinsicResolver:
    """Resolves CloudFormation intrinsics against local values.

    ``refs`` maps a logical id to what ``Ref`` returns for it, ``attributes`` maps (logical id, attribute) to what
    ``Fn::GetAtt`` returns. Anything unknown raises TemplateError naming it, rather than guessing.
    """

    def __init__(
        self,
        parameters: Mapping[str, Any],
        conditions: Mapping[str, Any],
        refs: Mapping[str, str] | None = None,
        attributes: Mapping[tuple[str, str], str] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> None:
        self.parameters = dict(parameters)
        self.condition_definitions = dict(conditions)
        self.refs = dict(refs or {})
        self.attributes = dict(attributes or {})
        self.pseudo = dict(pseudo or _pseudo_parameters())
        self._condition_values: dict[str, bool] = {}

    def with_resources(
        self, refs: Mapping[str, str], attributes: Mapping[tuple[str, str], str]
    ) -> IntrinsicResolver:
        return IntrinsicResolver(
            self.parameters,
            self.condition_definitions,
            {**self.refs, **refs},
            {**self.attributes, **attributes},
            self.pseudo,
        )

    # -- conditions --------------------------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.condition_definitions:
                raise TemplateError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self.condition_definitions[name]))
        return self._condition_values[name]

    # -- values ------------------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def resolve_string(self, value: Any, *, what: str) -> str:
        """Resolve to the string a Lambda environment variable (or an API parameter) would hold."""
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, (int, float, str)):
            return str(resolved)
        raise TemplateError(f"{what} does not resolve to a string: {resolved!r}")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"cannot resolve !Ref {name} locally (not a parameter or a locally created resource)")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise TemplateError(f"cannot resolve !GetAtt {logical_id}.{attribute} locally") from None

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            if isinstance(argument, str):
                logical_id, _, attribute = argument.partition(".")
            else:
                logical_id, attribute = argument
            return self._get_att(logical_id, self.resolve(attribute))
        if name == "Sub":
            if isinstance(argument, list):
                template, variables = argument
                variables = {key: self.resolve(item) for key, item in variables.items()}
            else:
                template, variables = argument, {}
            return self._sub(template, variables)
        if name == "Join":
            delimiter, items = argument
            return str(delimiter).join(str(item) for item in self.resolve(items))
        if name == "Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Split":
            delimiter, source = argument
            return str(self.resolve(source)).split(delimiter)
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Equals":
            left, right = (self.resolve(item) for item in argument)
            return str(left) == str(right)
        if name == "Not":
            (inner,) = argument
            return not self.resolve(inner)
        if name == "And":
            return all(self.resolve(item) for item in argument)
        if name == "Or":
            return any(self.resolve(item) for item in argument)
        raise TemplateError(f"Fn::{name} is not supported by the local stack")

    def _sub(self, template: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, _, attribute = expression.partition(".")
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(expression))

        return _SUB_VARIABLE.sub(replace, template)


def _pseudo_parameters() -> dict[str, str]:
    return {
        "AWS::Region": LOCAL_REGION,
        "AWS::AccountId": LOCAL_ACCOUNT_ID,
        "AWS::StackName": LOCAL_STACK_NAME,
        "AWS::StackId": f"arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{LOCAL_STACK_NAME}/local",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }


# ----------------------------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyElement:
    attribute_name: str
    key_type: str  # HASH | RANGE

    def to_api(self) -> dict[str, str]:
        return {"AttributeName": self.attribute_name, "KeyType": self.key_type}


@dataclass(frozen=True)
class SecondaryIndexSpec:
    index_name: str
    key_schema: tuple[KeyElement, ...]
    projection: Mapping[str, Any]

    def to_api(self) -> dict[str, Any]:
        projection: dict[str, Any] = {"ProjectionType": self.projection.get("ProjectionType", "ALL")}
        if self.projection.get("NonKeyAttributes"):
            projection["NonKeyAttributes"] = list(self.projection["NonKeyAttributes"])
        return {
            "IndexName": self.index_name,
            "KeySchema": [element.to_api() for element in self.key_schema],
            "Projection": projection,
        }


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    physical_name: str
    attribute_definitions: Mapping[str, str]  # name -> S | N | B
    key_schema: tuple[KeyElement, ...]
    global_secondary_indexes: tuple[SecondaryIndexSpec, ...]
    local_secondary_indexes: tuple[SecondaryIndexSpec, ...]
    stream_view_type: str | None
    billing_mode: str
    point_in_time_recovery: bool
    sse_enabled: bool
    time_to_live_attribute: str | None

    def create_table_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": self.physical_name,
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": kind} for name, kind in self.attribute_definitions.items()
            ],
            "KeySchema": [element.to_api() for element in self.key_schema],
            "BillingMode": self.billing_mode,
        }
        if self.billing_mode == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if self.global_secondary_indexes:
            kwargs["GlobalSecondaryIndexes"] = [index.to_api() for index in self.global_secondary_indexes]
            if self.billing_mode == "PROVISIONED":
                for index in kwargs["GlobalSecondaryIndexes"]:
                    index["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if self.local_secondary_indexes:
            kwargs["LocalSecondaryIndexes"] = [index.to_api() for index in self.local_secondary_indexes]
        if self.stream_view_type:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": self.stream_view_type}
        if self.sse_enabled:
            kwargs["SSESpecification"] = {"Enabled": True}
        return kwargs


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    physical_name: str
    attributes: Mapping[str, Any]  # CloudFormation property name -> value (intrinsics unresolved)


@dataclass(frozen=True)
class SecretSpec:
    logical_id: str
    physical_name: str
    description: Any
    secret_string: Any  # a literal SecretString, or None when generated
    generate: Mapping[str, Any] | None  # GenerateSecretString


@dataclass(frozen=True)
class HttpRouteSpec:
    function_logical_id: str
    event_id: str
    method: str  # upper case, or ANY
    path: str  # "/webhooks/ccbill", "/things/{id}", "/files/{proxy+}", or "$default"
    payload_format_version: str

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class StreamSourceSpec:
    function_logical_id: str
    event_id: str
    table_logical_id: str
    starting_position: str
    batch_size: int
    maximum_batching_window_seconds: float
    maximum_retry_attempts: int  # -1 = until the record expires
    bisect_batch_on_function_error: bool
    report_batch_item_failures: bool
    on_failure_queue_logical_id: str | None
    enabled: bool


@dataclass(frozen=True)
class QueueSourceSpec:
    """An SQS event of a function (Lambda's SQS event source mapping)."""

    function_logical_id: str
    event_id: str
    queue_logical_id: str
    batch_size: int
    maximum_batching_window_seconds: float
    report_batch_item_failures: bool
    maximum_concurrency: int | None  # ScalingConfig.MaximumConcurrency
    enabled: bool


@dataclass(frozen=True)
class ScheduleSpec:
    """A Schedule (EventBridge rule) or ScheduleV2 (EventBridge Scheduler) event of a function."""

    function_logical_id: str
    event_id: str
    kind: str  # Schedule | ScheduleV2
    expression: str  # rate(...), cron(...)
    timezone: str  # ScheduleExpressionTimezone (ScheduleV2), else UTC
    name: str  # the rule's (schedule's) local name
    input: str | None  # Input: the JSON text sent instead of the scheduled event
    enabled: bool

    @property
    def arn(self) -> str:
        if self.kind == "ScheduleV2":
            return f"arn:aws:scheduler:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:schedule/default/{self.name}"
        return f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{self.name}"


@dataclass(frozen=True)
class EventBusSpec:
    logical_id: str
    physical_name: str


@dataclass(frozen=True)
class EventArchiveSpec:
    logical_id: str
    physical_name: str
    source_bus_logical_id: str
    retention_days: int
    event_pattern: Any  # a dict, a JSON string or None (every event)
    description: Any


@dataclass(frozen=True)
class KmsKeySpec:
    logical_id: str
    description: Any
    key_policy: Any  # as written (intrinsics unresolved)
    enable_key_rotation: bool
    key_spec: str
    key_usage: str


@dataclass(frozen=True)
class KmsAliasSpec:
    logical_id: str
    alias_name: str  # the local name
    target_key_logical_id: str


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    physical_name: str
    code_uri: Path
    handler: str
    runtime: str
    memory_size: int
    timeout: int
    environment: Mapping[str, Any]  # variable -> value as written (intrinsics unresolved)
    http_routes: tuple[HttpRouteSpec, ...]
    stream_sources: tuple[StreamSourceSpec, ...]
    queue_sources: tuple[QueueSourceSpec, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions
    maximum_retry_attempts: int = 2  # EventInvokeConfig: retries of an asynchronous (scheduled) invocation
    role_logical_id: str | None = None  # the role SAM makes (<LogicalId>Role); None when Role is given

    @property
    def role_arn(self) -> str | None:
        if self.role_logical_id is None:
            return None
        return f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{physical_name(self.role_logical_id)}"

    @property
    def module_name(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]

    @property
    def module_path(self) -> Path:
        return self.code_uri / (self.module_name.replace(".", "/") + ".py")


@dataclass(frozen=True)
class LocalTemplate:
    path: Path
    parameters: Mapping[str, Any]
    tables: Mapping[str, TableSpec]
    queues: Mapping[str, QueueSpec]
    secrets: Mapping[str, SecretSpec]
    functions: Mapping[str, FunctionSpec]
    resolver: IntrinsicResolver = field(repr=False)
    event_buses: Mapping[str, EventBusSpec] = field(default_factory=dict)
    event_archives: Mapping[str, EventArchiveSpec] = field(default_factory=dict)
    kms_keys: Mapping[str, KmsKeySpec] = field(default_factory=dict)
    kms_aliases: Mapping[str, KmsAliasSpec] = field(default_factory=dict)

    @property
    def http_routes(self) -> tuple[HttpRouteSpec, ...]:
        return tuple(route for function in self.functions.values() for route in function.http_routes)

    @property
    def stream_sources(self) -> tuple[StreamSourceSpec, ...]:
        return tuple(source for function in self.functions.values() for source in function.stream_sources)

    @property
    def queue_sources(self) -> tuple[QueueSourceSpec, ...]:
        return tuple(source for function in self.functions.values() for source in function.queue_sources)

    @property
    def schedules(self) -> tuple[ScheduleSpec, ...]:
        return tuple(schedule for function in self.functions.values() for schedule in function.schedules)

    @property
    def role_attributes(self) -> dict[tuple[str, str], str]:
        """GetAtt <FunctionId>Role.Arn for the roles SAM makes (a KMS key policy names them)."""
        return {
            (function.role_logical_id, "Arn"): function.role_arn
            for function in self.functions.values()
            if function.role_logical_id is not None and function.role_arn is not None
        }

    @property
    def role_refs(self) -> dict[str, str]:
        return {
            function.role_logical_id: physical_name(function.role_logical_id)
            for function in self.functions.values()
            if function.role_logical_id is not None
        }


def physical_name(logical_id: str) -> str:
    return LOCAL_PREFIX + logical_id


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def load_template(
    path: Path | str | None = None, *, parameter_overrides: Mapping[str, Any] | None = None
) -> LocalTemplate:
    path = Path(path) if path else DEFAULT_TEMPLATE
    document = load_yaml(path)
    parameters = _local_parameters(document.get("Parameters") or {}, parameter_overrides or {})
    resolver = IntrinsicResolver(parameters, document.get("Conditions") or {})
    resources: dict[str, dict[str, Any]] = {
        logical_id: resource
        for logical_id, resource in (document.get("Resources") or {}).items()
        if "Condition" not in resource or resolver.condition(resource["Condition"])
    }
    globals_function = (document.get("Globals") or {}).get("Function") or {}

    tables = {
        logical_id: _table_spec(logical_id, resource.get("Properties") or {}, resolver)
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::DynamoDB::Table"
    }
    queues = {
        logical_id: _queue_spec(logical_id, resource.get("Properties") or {}, resolver)
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::SQS::Queue"
    }
    secrets = {
        logical_id: _secret_spec(logical_id, resource.get("Properties") or {})
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::SecretsManager::Secret"
    }
    functions = {
        logical_id: _function_spec(
            logical_id, merge_globals(globals_function, resource.get("Properties") or {}), path.parent, resolver,
            tables, queues,
        )
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    event_buses = {
        logical_id: EventBusSpec(logical_id, physical_name(logical_id))
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Events::EventBus"
    }
    event_archives = {
        logical_id: _archive_spec(logical_id, resource.get("Properties") or {}, resolver, event_buses)
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Events::Archive"
    }
    kms_keys = {
        logical_id: _kms_key_spec(logical_id, resource.get("Properties") or {}, resolver)
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::KMS::Key"
    }
    kms_aliases = {
        logical_id: _kms_alias_spec(logical_id, resource.get("Properties") or {}, kms_keys)
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::KMS::Alias"
    }
    _check_unique_routes(functions.values())
    return LocalTemplate(path, parameters, tables, queues, secrets, functions, resolver, event_buses,
                         event_archives, kms_keys, kms_aliases)


def _local_parameters(declared: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        if name in overrides:
            values[name] = overrides[name]
        elif name == "Environment":
            values[name] = LOCAL_ENVIRONMENT
        elif "Default" in (declaration or {}):
            values[name] = declaration["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default: give it a local value (parameter_overrides)")
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
    return values


def merge_globals(global_properties: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (the resource wins), lists add up (globals first), anything else is replaced."""

    def is_intrinsic(value: Any) -> bool:
        return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::"))

    merged: dict[str, Any] = dict(global_properties)
    for key, value in properties.items():
        if key not in merged:
            merged[key] = value
            continue
        current = merged[key]
        if isinstance(current, dict) and isinstance(value, dict) and not is_intrinsic(current) and not is_intrinsic(value):
            merged[key] = merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = [*current, *value]
        else:
            merged[key] = value
    return merged


def _key_schema(elements: list[Mapping[str, Any]]) -> tuple[KeyElement, ...]:
    return tuple(KeyElement(element["AttributeName"], element["KeyType"]) for element in elements)


def _table_spec(logical_id: str, properties: Mapping[str, Any], resolver: IntrinsicResolver) -> TableSpec:
    # Only what shapes the table locally is resolved (its TableName, if any, is replaced by the local name).
    used = (
        "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification",
        "BillingMode", "PointInTimeRecoverySpecification", "SSESpecification", "TimeToLiveSpecification",
    )
    properties = {key: value for key, value in properties.items() if key in used}
    if isinstance(properties.get("SSESpecification"), dict):
        # The key is created later (moto does not encrypt anyway): whether SSE is on is all the local table needs.
        properties["SSESpecification"] = {
            key: value for key, value in properties["SSESpecification"].items() if key != "KMSMasterKeyId"
        }
    properties = resolver.resolve(properties)
    indexes = tuple(
        SecondaryIndexSpec(index["IndexName"], _key_schema(index["KeySchema"]), index.get("Projection") or {})
        for index in properties.get("GlobalSecondaryIndexes") or []
    )
    local_indexes = tuple(
        SecondaryIndexSpec(index["IndexName"], _key_schema(index["KeySchema"]), index.get("Projection") or {})
        for index in properties.get("LocalSecondaryIndexes") or []
    )
    stream = properties.get("StreamSpecification") or {}
    ttl = properties.get("TimeToLiveSpecification") or {}
    return TableSpec(
        logical_id=logical_id,
        physical_name=physical_name(logical_id),
        attribute_definitions={
            definition["AttributeName"]: definition["AttributeType"]
            for definition in properties.get("AttributeDefinitions") or []
        },
        key_schema=_key_schema(properties["KeySchema"]),
        global_secondary_indexes=indexes,
        local_secondary_indexes=local_indexes,
        stream_view_type=stream.get("StreamViewType"),
        billing_mode=properties.get("BillingMode", "PROVISIONED"),
        point_in_time_recovery=bool(
            (properties.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
        ),
        sse_enabled=bool((properties.get("SSESpecification") or {}).get("SSEEnabled")),
        time_to_live_attribute=ttl.get("AttributeName") if ttl.get("Enabled") else None,
    )


def _queue_spec(logical_id: str, properties: Mapping[str, Any], resolver: IntrinsicResolver) -> QueueSpec:
    name = physical_name(logical_id)
    if resolver.resolve(properties.get("FifoQueue", False)) in (True, "true"):
        name += ".fifo"
    attributes = {key: value for key, value in properties.items() if key not in ("QueueName", "Tags")}
    return QueueSpec(logical_id, name, attributes)


def _secret_spec(logical_id: str, properties: Mapping[str, Any]) -> SecretSpec:
    return SecretSpec(
        logical_id=logical_id,
        physical_name=physical_name(logical_id),
        description=properties.get("Description"),
        secret_string=properties.get("SecretString"),
        generate=properties.get("GenerateSecretString"),
    )


def _referenced_logical_id(value: Any, attribute: str, *, what: str) -> str:
    """The logical id in ``!GetAtt X.<attribute>`` (the only form the local stack can map to a local resource)."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        logical_id, got_attribute = target.split(".", 1) if isinstance(target, str) else target
        if got_attribute == attribute:
            return logical_id
    raise TemplateError(f"{what} must be !GetAtt <Resource>.{attribute} for the local stack, got {value!r}")


def _function_spec(
    logical_id: str,
    properties: Mapping[str, Any],
    template_dir: Path,
    resolver: IntrinsicResolver,
    tables: Mapping[str, TableSpec],
    queues: Mapping[str, QueueSpec],
) -> FunctionSpec:
    code_uri = resolver.resolve(properties.get("CodeUri"))
    handler = resolver.resolve(properties.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{logical_id}: the local stack needs a local CodeUri and a module.function Handler")
    runtime = resolver.resolve(properties.get("Runtime", ""))
    if not str(runtime).startswith("python"):
        raise TemplateError(f"{logical_id}: runtime {runtime!r} cannot run in the local stack (Python only)")
    environment = dict(((properties.get("Environment") or {}).get("Variables")) or {})
    routes: list[HttpRouteSpec] = []
    streams: list[StreamSourceSpec] = []
    queue_sources: list[QueueSourceSpec] = []
    schedules: list[ScheduleSpec] = []
    for event_id, event in (properties.get("Events") or {}).items():
        event_type = event.get("Type")
        event_properties = event.get("Properties") or {}
        if event_type == "HttpApi":
            routes.append(_http_route(logical_id, event_id, event_properties, resolver))
        elif event_type == "DynamoDB":
            streams.append(_stream_source(logical_id, event_id, event_properties, resolver, tables, queues))
        elif event_type == "SQS":
            queue_sources.append(_queue_source(logical_id, event_id, event_properties, resolver, queues))
        elif event_type in ("Schedule", "ScheduleV2"):
            schedules.append(_schedule(logical_id, event_id, event_type, event_properties, resolver))
        else:
            raise TemplateError(f"{logical_id}.{event_id}: event type {event_type} is not emulated by the local stack")
    reserved = resolver.resolve(properties.get("ReservedConcurrentExecutions"))
    if reserved is not None:
        reserved = int(reserved)
        if reserved < 0:
            raise TemplateError(f"{logical_id}: ReservedConcurrentExecutions {reserved} is negative")
    retries = int(resolver.resolve((properties.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2)))
    if not 0 <= retries <= 2:
        raise TemplateError(f"{logical_id}: EventInvokeConfig.MaximumRetryAttempts must be 0, 1 or 2")
    return FunctionSpec(
        logical_id=logical_id,
        physical_name=physical_name(logical_id),
        code_uri=(template_dir / code_uri).resolve(),
        handler=handler,
        runtime=str(runtime),
        memory_size=int(resolver.resolve(properties.get("MemorySize", 128))),
        timeout=int(resolver.resolve(properties.get("Timeout", 3))),
        environment=environment,
        http_routes=tuple(routes),
        stream_sources=tuple(streams),
        queue_sources=tuple(queue_sources),
        schedules=tuple(schedules),
        reserved_concurrency=reserved,
        maximum_retry_attempts=retries,
        role_logical_id=None if properties.get("Role") else f"{logical_id}Role",
    )


def _http_route(
    logical_id: str, event_id: str, properties: Mapping[str, Any], resolver: IntrinsicResolver
) -> HttpRouteSpec:
    properties = resolver.resolve({key: value for key, value in properties.items() if key != "ApiId"})
    path = properties.get("Path")
    method = str(properties.get("Method") or "ANY").upper()
    if path is None:
        path = "$default"  # SAM: an HttpApi event without Path/Method is the API's catch-all route
    elif not str(path).startswith("/"):
        raise TemplateError(f"{logical_id}.{event_id}: HttpApi path {path!r} must start with /")
    method = "ANY" if method in ("*", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method
    version = str(properties.get("PayloadFormatVersion", "2.0"))
    if version != "2.0":
        raise TemplateError(f"{logical_id}.{event_id}: only payload format 2.0 is emulated, got {version}")
    return HttpRouteSpec(logical_id, event_id, method, str(path), version)


def _stream_source(
    logical_id: str,
    event_id: str,
    properties: Mapping[str, Any],
    resolver: IntrinsicResolver,
    tables: Mapping[str, TableSpec],
    queues: Mapping[str, QueueSpec],
) -> StreamSourceSpec:
    what = f"{logical_id}.{event_id}"
    table_id = _referenced_logical_id(properties.get("Stream"), "StreamArn", what=f"{what}.Stream")
    if table_id not in tables:
        raise TemplateError(f"{what}: stream of unknown table {table_id}")
    if not tables[table_id].stream_view_type:
        raise TemplateError(f"{what}: table {table_id} has no StreamSpecification")
    for unsupported in ("FilterCriteria", "TumblingWindowInSeconds"):
        if unsupported in properties:
            raise TemplateError(f"{what}: {unsupported} is not emulated by the local stack's stream poller")
    on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    queue_id = None
    if on_failure is not None:
        queue_id = _referenced_logical_id(on_failure, "Arn", what=f"{what}.DestinationConfig.OnFailure")
        if queue_id not in queues:
            raise TemplateError(f"{what}: the on-failure destination {queue_id} is not an SQS queue of the template")
    values = resolver.resolve(
        {key: value for key, value in properties.items() if key not in ("Stream", "DestinationConfig")}
    )
    if int(values.get("ParallelizationFactor", 1)) != 1:
        raise TemplateError(f"{what}: the local stack's stream poller reads a shard one batch at a time "
                            "(ParallelizationFactor 1)")
    return StreamSourceSpec(
        function_logical_id=logical_id,
        event_id=event_id,
        table_logical_id=table_id,
        starting_position=str(values.get("StartingPosition", "TRIM_HORIZON")),
        batch_size=int(values.get("BatchSize", 100)),
        maximum_batching_window_seconds=float(values.get("MaximumBatchingWindowInSeconds", 0)),
        maximum_retry_attempts=int(values.get("MaximumRetryAttempts", -1)),
        bisect_batch_on_function_error=values.get("BisectBatchOnFunctionError") in (True, "true"),
        report_batch_item_failures="ReportBatchItemFailures" in (values.get("FunctionResponseTypes") or []),
        on_failure_queue_logical_id=queue_id,
        enabled=values.get("Enabled", True) not in (False, "false"),
    )


def _queue_source(
    logical_id: str,
    event_id: str,
    properties: Mapping[str, Any],
    resolver: IntrinsicResolver,
    queues: Mapping[str, QueueSpec],
) -> QueueSourceSpec:
    what = f"{logical_id}.{event_id}"
    queue_id = _referenced_logical_id(properties.get("Queue"), "Arn", what=f"{what}.Queue")
    if queue_id not in queues:
        raise TemplateError(f"{what}: queue {queue_id} is not an SQS queue of the template")
    for unsupported in ("FilterCriteria", "KmsKeyArn", "MetricsConfig", "ProvisionedPollerConfig"):
        if unsupported in properties:
            raise TemplateError(f"{what}: {unsupported} is not emulated by the local stack's queue poller")
    values = resolver.resolve({key: value for key, value in properties.items() if key != "Queue"})
    fifo = queues[queue_id].physical_name.endswith(".fifo")
    batch_size = int(values.get("BatchSize", 10))
    if not 1 <= batch_size <= (10 if fifo else 10000):
        raise TemplateError(f"{what}: BatchSize {batch_size} is out of range for this queue")
    window = float(values.get("MaximumBatchingWindowInSeconds", 0))
    if fifo and window:
        raise TemplateError(f"{what}: FIFO queues take no MaximumBatchingWindowInSeconds")
    if batch_size > 10 and not window:
        raise TemplateError(f"{what}: a BatchSize above 10 needs MaximumBatchingWindowInSeconds")
    maximum = (values.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return QueueSourceSpec(
        function_logical_id=logical_id,
        event_id=event_id,
        queue_logical_id=queue_id,
        batch_size=batch_size,
        maximum_batching_window_seconds=window,
        report_batch_item_failures="ReportBatchItemFailures" in (values.get("FunctionResponseTypes") or []),
        maximum_concurrency=None if maximum is None else int(maximum),
        enabled=values.get("Enabled", True) not in (False, "false"),
    )


def _schedule(
    logical_id: str, event_id: str, kind: str, properties: Mapping[str, Any], resolver: IntrinsicResolver
) -> ScheduleSpec:
    from billops_local.schedule_runner import parse_schedule_expression

    what = f"{logical_id}.{event_id}"
    used = ("Schedule", "ScheduleExpression", "ScheduleExpressionTimezone", "State", "Enabled", "Input")
    values = resolver.resolve({key: value for key, value in properties.items() if key in used})
    expression = values.get("Schedule" if kind == "Schedule" else "ScheduleExpression")
    if not isinstance(expression, str):
        raise TemplateError(f"{what}: a {kind} event needs a schedule expression")
    timezone = str(values.get("ScheduleExpressionTimezone") or "UTC") if kind == "ScheduleV2" else "UTC"
    parse_schedule_expression(expression, timezone, what=what)  # refuse what cannot be emulated, now
    state = str(values.get("State") or "ENABLED").upper()
    enabled = values.get("Enabled", True) not in (False, "false") and state == "ENABLED"
    given_input = values.get("Input")
    if given_input is not None and not isinstance(given_input, str):
        raise TemplateError(f"{what}: Input must be a JSON string")
    return ScheduleSpec(
        function_logical_id=logical_id,
        event_id=event_id,
        kind=kind,
        expression=expression.strip(),
        timezone=timezone,
        name=physical_name(f"{logical_id}{event_id}"),
        input=given_input,
        enabled=enabled,
    )


def _archive_spec(
    logical_id: str, properties: Mapping[str, Any], resolver: IntrinsicResolver, buses: Mapping[str, EventBusSpec]
) -> EventArchiveSpec:
    bus_id = _referenced_logical_id(properties.get("SourceArn"), "Arn", what=f"{logical_id}.SourceArn")
    if bus_id not in buses:
        raise TemplateError(f"{logical_id}: archives of {bus_id} (not an event bus of the template) are not emulated")
    pattern = resolver.resolve(properties.get("EventPattern"))
    return EventArchiveSpec(
        logical_id=logical_id,
        physical_name=physical_name(logical_id),
        source_bus_logical_id=bus_id,
        retention_days=int(resolver.resolve(properties.get("RetentionDays", 0))),
        event_pattern=pattern,
        description=properties.get("Description"),
    )


def _kms_key_spec(logical_id: str, properties: Mapping[str, Any], resolver: IntrinsicResolver) -> KmsKeySpec:
    return KmsKeySpec(
        logical_id=logical_id,
        description=properties.get("Description"),
        key_policy=properties.get("KeyPolicy"),
        enable_key_rotation=resolver.resolve(properties.get("EnableKeyRotation", False)) in (True, "true"),
        key_spec=str(resolver.resolve(properties.get("KeySpec", "SYMMETRIC_DEFAULT"))),
        key_usage=str(resolver.resolve(properties.get("KeyUsage", "ENCRYPT_DECRYPT"))),
    )


def _kms_alias_spec(logical_id: str, properties: Mapping[str, Any], keys: Mapping[str, KmsKeySpec]) -> KmsAliasSpec:
    target = properties.get("TargetKeyId")
    if isinstance(target, dict) and isinstance(target.get("Ref"), str):
        key_id = target["Ref"]
    elif isinstance(target, dict) and "Fn::GetAtt" in target:
        key_id = _referenced_logical_id(target, "Arn", what=f"{logical_id}.TargetKeyId")
    else:
        raise TemplateError(f"{logical_id}.TargetKeyId must be !Ref or !GetAtt .Arn of a key of the template")
    if key_id not in keys:
        raise TemplateError(f"{logical_id}: {key_id} is not a KMS key of the template")
    return KmsAliasSpec(logical_id, f"alias/{physical_name(logical_id)}", key_id)


def _check_unique_routes(functions: Any) -> None:
    seen: dict[str, str] = {}
    for function in functions:
        for route in function.http_routes:
            if route.path == LOCAL_CONTROL_PREFIX or route.path.startswith(LOCAL_CONTROL_PREFIX + "/"):
                raise TemplateError(
                    f"{function.logical_id}: route {route.route_key} is under {LOCAL_CONTROL_PREFIX}, which the "
                    "local stack keeps for its own endpoints"
                )
            if route.route_key in seen:
                raise TemplateError(
                    f"route {route.route_key} is declared by both {seen[route.route_key]} and {function.logical_id}"
                )
            seen[route.route_key] = function.logical_id
