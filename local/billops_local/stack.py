"""The local stack: every piece started in order, stopped in reverse, in one process.

Built-in services, in start order:

  moto            moto's server on 127.0.0.1:$BILLOPS_AWS_PORT; this process's AWS_ENDPOINT_URL, region and dummy
                  credentials then point every boto3 client (the handlers' included) at it
  resources       the template's tables, queues (FIFO, redrive), secrets, event buses, archives, KMS keys and
                  aliases created in moto; the webhook token ($BILLOPS_WEBHOOK_TOKEN, default local-webhook-token)
                  stored in the token secret, which the receiver reads through BILLOPS_WEBHOOK_TOKEN_SECRET_ARN
                  exactly as in AWS; the CCBill credentials secret filled with the CCBill sandbox's DataLink login;
                  every function's template environment merged into os.environ
  domain-events   a rule on each event bus copying every event to the SQS queue billops-local-domain-events
  functions       one LocalFunction per template function (at most ReservedConcurrentExecutions invocations at once,
                  capped by $BILLOPS_LOCAL_MAX_CONCURRENCY); the stack refuses to start when a handler file is missing
  http-api        the HTTP API emulator on 127.0.0.1:$BILLOPS_API_PORT with the template's routes, and the local
                  stack's own endpoints under /__local (billops_local.local_control)
  ... services added with add_service() (the CCBill sandbox) ...
  cold-starts     each handler imported from CodeUri + Handler once every service has set its environment (a failed
                  import is logged and retried per call, as Lambda retries a failed init)
  stream-pollers  one poller per DynamoDB event of the template
  queue-pollers   one poller per SQS event of the template (billops_local.queue_poller)
  schedules       the template's Schedule / ScheduleV2 events on their local periods (billops_local.schedule_runner)

The event sources start last, so no handler runs before every service has put its settings in the environment.

Settings (environment variables; see LocalSettings):
  BILLOPS_AWS_PORT (5000), BILLOPS_API_PORT (3000), BILLOPS_SANDBOX_PORT (4000): 0 = any free port
  BILLOPS_WEBHOOK_TOKEN (local-webhook-token)
  BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS (5): how soon a message a function failed comes back (AWS: the rest
      of the queue's VisibilityTimeout, 360 s for the operations queue)
  BILLOPS_LOCAL_SCHEDULE_SCALE (1/30): AWS periods x this (rate(1 minute) -> 2 s, rate(15 minutes) -> 30 s)
  BILLOPS_LOCAL_SCHEDULE_SECONDS (unset): every schedule this often instead; 0 = only when triggered
  BILLOPS_LOCAL_MAX_CONCURRENCY (unset): a cap on every function's concurrency (1 = one invocation at a time)
  BILLOPS_LOCAL_PARAMETER_OVERRIDES (unset): template parameters, as sam's --parameter-overrides
  BILLOPS_FIXED_EGRESS_IP (true locally: the sandbox whitelists 127.0.0.1; the template parameter WorkerFixedEgressIp)
      ("SettleWindowSeconds=5 WorkerConcurrency=3")
  and any variable the template sets to a bare !Ref <Parameter> (BILLOPS_SETTLE_WINDOW_SECONDS,
  BILLOPS_ALLOWED_CIDRS, ...): its value here overrides that parameter (Environment excepted: always local)

More services (the CCBill sandbox) join with ``add_service(name, start, stop, port=...)`` before ``start()``:
``start(stack)`` is called after the built-ins that serve requests (so it can use ``stack.api_url``,
``stack.aws_endpoint`` ...) and before the event sources, ``stop()`` in reverse; a ``port`` (an int, or a callable
returning one) must accept connections before the stack reports ready. ``build_stack()`` is where
``python -m billops_local`` assembles its services.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TextIO
from urllib.parse import urlencode

from billops_local import aws_call_recording
from billops_local.aws_environment import (
    CreatedResources,
    EnvironmentPatch,
    LocalFunction,
    conflicting_aws_variables,
    create_resources,
    function_environments,
    local_aws_environment,
    merged_function_environment,
)
from billops_local.event_bus import DomainEventsTap
from billops_local.http_gateway import HttpGateway, RouteTable
from billops_local.local_control import LocalControl
from billops_local.moto_process import MotoProcess
from billops_local.queue_poller import DEFAULT_FAILURE_VISIBILITY_TIMEOUT, QueuePoller
from billops_local.schedule_runner import ScheduledFunction, ScheduleRunner, ScheduleTiming, TriggerResult
from billops_local.stream_poller import StreamPoller
from billops_local.template_resources import DEFAULT_TEMPLATE, LocalTemplate, TemplateError, load_template

log = logging.getLogger("billops_local")

READY_LINE = "billops local stack ready"
DEFAULT_WEBHOOK_TOKEN = "local-webhook-token"  # nosec B105  # the local stack's made-up webhook token
WEBHOOK_TOKEN_VARIABLE = "BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"  # nosec B105  # an environment variable's name, not a secret
CCBILL_CREDENTIALS_VARIABLE = "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN"
UNRESERVED_CONCURRENCY = 4
"""Execution environments a function without ReservedConcurrentExecutions may have at once, locally (each a
process, started when every warm one is busy)."""


class LocalStackError(RuntimeError):
    pass


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise LocalStackError(f"{name}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise LocalStackError(f"{name}={port} is not a port number")
    return port


def _whole_number(env: Mapping[str, str], name: str, default: int | None, minimum: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LocalStackError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise LocalStackError(f"{name}={value} must be at least {minimum}")
    return value


def parse_parameter_overrides(text: str) -> dict[str, str]:
    """``Key=Value Key2="a value"`` (sam's --parameter-overrides syntax) -> {"Key": "Value", ...}."""
    overrides: dict[str, str] = {}
    for item in shlex.split(text):
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise LocalStackError(f"BILLOPS_LOCAL_PARAMETER_OVERRIDES: {item!r} is not Name=Value")
        overrides[name.removeprefix("ParameterKey=")] = value
    return overrides


@dataclass(frozen=True)
class LocalSettings:
    """The stack's settings; ``from_env`` reads them from the environment (the module's docstring lists them)."""

    aws_port: int = 5000
    api_port: int = 3000
    sandbox_port: int = 4000
    webhook_token: str = DEFAULT_WEBHOOK_TOKEN
    host: str = "127.0.0.1"
    template_path: Path = DEFAULT_TEMPLATE
    failure_visibility_timeout: int = DEFAULT_FAILURE_VISIBILITY_TIMEOUT
    schedule_timing: ScheduleTiming = field(default_factory=ScheduleTiming)
    max_concurrency: int | None = None
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)  # for parameter-backed variables

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LocalSettings:
        try:
            timing = ScheduleTiming.from_env(env)
        except ValueError as error:
            raise LocalStackError(str(error)) from None
        return cls(
            aws_port=_port(env, "BILLOPS_AWS_PORT", 5000),
            api_port=_port(env, "BILLOPS_API_PORT", 3000),
            sandbox_port=_port(env, "BILLOPS_SANDBOX_PORT", 4000),
            webhook_token=env.get("BILLOPS_WEBHOOK_TOKEN") or DEFAULT_WEBHOOK_TOKEN,
            failure_visibility_timeout=_whole_number(env, "BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS",
                                                     DEFAULT_FAILURE_VISIBILITY_TIMEOUT, 0) or 0,
            schedule_timing=timing,
            max_concurrency=_whole_number(env, "BILLOPS_LOCAL_MAX_CONCURRENCY", None, 1),
            parameter_overrides=(overrides := parse_parameter_overrides(
                env.get("BILLOPS_LOCAL_PARAMETER_OVERRIDES", ""))),
            environment=_with_local_defaults(env, overrides),
        )


LOCAL_ENVIRONMENT_DEFAULTS = {
    # The sandbox whitelists 127.0.0.1 for allowUpgrade: locally the worker has a fixed egress address, so the stack
    # runs as if deployed with WorkerFixedEgressIp=true (the upgrade default is then the backend allowUpgrade post).
    # BILLOPS_FIXED_EGRESS_IP=false (or the parameter override) shows a deployment without it (enc links).
    "BILLOPS_FIXED_EGRESS_IP": ("WorkerFixedEgressIp", "true"),
}


def _with_local_defaults(env: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    environment = dict(env)
    for variable, (parameter, value) in LOCAL_ENVIRONMENT_DEFAULTS.items():
        if variable not in environment and parameter not in overrides:
            environment[variable] = value
    return environment


@dataclass
class Service:
    name: str
    start: Callable[[LocalStack], Any]
    stop: Callable[[], Any] | None = None
    port: int | Callable[[], int] | None = None
    description: str | Callable[[], str] | None = None


@dataclass
class _State:
    template: LocalTemplate | None = None
    moto: MotoProcess | None = None
    resources: CreatedResources | None = None
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    gateway: HttpGateway | None = None
    pollers: list[StreamPoller] = field(default_factory=list)
    queue_pollers: list[QueuePoller] = field(default_factory=list)
    schedules: ScheduleRunner | None = None
    domain_events: DomainEventsTap | None = None
    overridden_parameters: dict[str, str] = field(default_factory=dict)


class LocalStack:
    def __init__(
        self,
        settings: LocalSettings | None = None,
        *,
        poll_interval: float = 0.2,
        announce: bool = True,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings or LocalSettings.from_env()
        self.poll_interval = poll_interval
        self.announce = announce
        self.out = out
        self.state = _State()
        self._env = EnvironmentPatch()
        self._services: list[Service] = []
        self._late_services: list[Service] = []
        self._started: list[Service] = []
        self._running = False
        self.add_service("moto", self._start_moto, self._stop_moto, port=lambda: self.moto.port,
                         description=lambda: f"{self.aws_endpoint}  (AWS_ENDPOINT_URL; any credentials)")
        self.add_service("resources", self._create_resources, description=self._describe_resources)
        self.add_service("domain-events", self._start_domain_events, description=self._describe_domain_events)
        self.add_service("functions", self._create_functions, self._stop_functions,
                         description=self._describe_functions)
        self.add_service("http-api", self._start_gateway, self._stop_gateway, port=lambda: self.gateway.port,
                         description=self._describe_gateway)
        # The event sources: always after every added service (see start()).
        self._late_services = [
            Service("cold-starts", self._cold_starts),
            Service("stream-pollers", self._start_pollers, self._stop_pollers, description=self._describe_pollers),
            Service("queue-pollers", self._start_queue_pollers, self._stop_queue_pollers,
                    description=self._describe_queue_pollers),
            Service("schedules", self._start_schedules, self._stop_schedules, description=self._describe_schedules),
        ]

    # -- the pieces, once started --------------------------------------------------------------------------------

    @property
    def template(self) -> LocalTemplate:
        if self.state.template is None:
            self.state.template = self._load_template()
        return self.state.template

    @property
    def moto(self) -> MotoProcess:
        if self.state.moto is None:
            raise LocalStackError("moto is not running")
        return self.state.moto

    @property
    def resources(self) -> CreatedResources:
        if self.state.resources is None:
            raise LocalStackError("the resources are not created yet")
        return self.state.resources

    @property
    def functions(self) -> dict[str, LocalFunction]:
        return self.state.functions

    @property
    def gateway(self) -> HttpGateway:
        if self.state.gateway is None:
            raise LocalStackError("the HTTP API is not running")
        return self.state.gateway

    @property
    def pollers(self) -> list[StreamPoller]:
        return self.state.pollers

    @property
    def queue_pollers(self) -> list[QueuePoller]:
        return self.state.queue_pollers

    @property
    def schedules(self) -> ScheduleRunner:
        if self.state.schedules is None:
            raise LocalStackError("the schedules are not running")
        return self.state.schedules

    @property
    def domain_events(self) -> DomainEventsTap:
        if self.state.domain_events is None:
            raise LocalStackError("the domain events tap is not set up")
        return self.state.domain_events

    @property
    def aws_endpoint(self) -> str:
        return self.moto.endpoint_url

    @property
    def api_url(self) -> str:
        return self.gateway.url

    @property
    def webhook_token(self) -> str:
        return self.settings.webhook_token

    @property
    def webhook_path(self) -> str:
        """The route of the function that reads the webhook token (POST /webhooks/ccbill)."""
        for function in self.template.functions.values():
            if WEBHOOK_TOKEN_VARIABLE in function.environment:
                for route in function.http_routes:
                    if route.path != "$default" and "{" not in route.path:
                        return route.path
        return "/webhooks/ccbill"

    @property
    def webhook_url(self) -> str:
        return f"{self.api_url}{self.webhook_path}?{urlencode({'token': self.webhook_token})}"

    def trigger_schedule(self, function_logical_id: str, event_id: str | None = None) -> TriggerResult:
        """Run a schedule's function now (what ``POST /__local/schedules/<FunctionId>`` does)."""
        return self.schedules.trigger(function_logical_id, event_id)

    # -- services ------------------------------------------------------------------------------------------------

    def add_service(
        self,
        name: str,
        start: Callable[[LocalStack], Any],
        stop: Callable[[], Any] | None = None,
        *,
        port: int | Callable[[], int] | None = None,
        description: str | Callable[[], str] | None = None,
    ) -> None:
        """Add a service started after the ones already added (and stopped before them); the event sources
        (cold starts, stream and queue pollers, schedules) always start after it."""
        if self._running:
            raise LocalStackError(f"add {name!r} before start()")
        if any(service.name == name for service in self._services + self._late_services):
            raise LocalStackError(f"a service named {name!r} exists already")
        self._services.append(Service(name, start, stop, port, description))

    @property
    def service_names(self) -> list[str]:
        return [service.name for service in self._services + self._late_services]

    def start(self) -> Self:
        if self._running:
            return self
        self._running = True
        # BILLOPS_RECORD_AWS_CALLS: every function's AWS calls (make check-iam)
        aws_call_recording.install_from_environment(label="local stack")
        try:
            for service in self._services + self._late_services:
                log.debug("starting %s", service.name)
                service.start(self)
                self._started.append(service)
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise
        if self.announce:
            self._print_banner()
        return self

    def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            if service.stop is None:
                continue
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        self._env.restore()
        self._running = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _wait_until_accepting(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for service in self._started:
            if service.port is None:
                continue
            port = service.port() if callable(service.port) else service.port
            while True:
                try:
                    with socket.create_connection((self.settings.host, port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LocalStackError(f"{service.name} does not accept connections on port {port}") from None
                    time.sleep(0.05)

    # -- built-in services ---------------------------------------------------------------------------------------

    def _start_moto(self, _: LocalStack) -> None:
        self.template  # noqa: B018 - parse the template first: a template error must stop us before anything runs
        overriding = conflicting_aws_variables()
        if overriding:
            log.info("ignoring %s for the local stack", ", ".join(overriding))
        # In its own process; with BILLOPS_LOCAL_DYNAMODB_FAULTS (tests/reliability) its PutItem faults there.
        moto = MotoProcess(self.settings.host, self.settings.aws_port, environment=self.settings.environment,
                           verbose=log.isEnabledFor(logging.DEBUG))
        moto.start()
        self.state.moto = moto
        moto.reset()
        self._env.remove(overriding)
        self._env.set(local_aws_environment(moto.endpoint_url))

    def _stop_moto(self) -> None:
        if self.state.moto is not None:
            self.state.moto.stop()
            self.state.moto = None

    # -- the template, with local parameter values -------------------------------------------------------------

    def _load_template(self) -> LocalTemplate:
        """template.yaml with BILLOPS_LOCAL_PARAMETER_OVERRIDES and the parameter-backed variables of the
        environment as parameter values."""
        path = self.settings.template_path
        explicit = dict(self.settings.parameter_overrides)
        try:
            template = load_template(path, parameter_overrides=explicit)
        except TemplateError as error:
            raise LocalStackError(str(error)) from None
        from_environment: dict[str, tuple[str, str]] = {}  # parameter -> (variable, value)
        for function in template.functions.values():
            for variable, value in function.environment.items():
                parameter = value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None
                if (not isinstance(parameter, str) or parameter not in template.parameters
                        or parameter == "Environment" or variable not in self.settings.environment):
                    continue
                wanted = self.settings.environment[variable]
                seen = from_environment.get(parameter)
                if seen is not None and seen[1] != wanted:
                    raise LocalStackError(f"{seen[0]} and {variable} both set parameter {parameter}, to different "
                                          "values")
                if parameter in explicit and explicit[parameter] != wanted:
                    raise LocalStackError(f"{variable}={wanted!r} contradicts BILLOPS_LOCAL_PARAMETER_OVERRIDES "
                                          f"{parameter}={explicit[parameter]!r}")
                from_environment[parameter] = (variable, wanted)
        overrides = {**explicit, **{parameter: value for parameter, (_, value) in from_environment.items()}}
        changed = {name: value for name, value in overrides.items() if str(template.parameters.get(name)) != value}
        self.state.overridden_parameters = changed
        if not changed:
            return template
        try:
            return load_template(path, parameter_overrides=overrides)
        except TemplateError as error:
            raise LocalStackError(str(error)) from None

    # -- resources ---------------------------------------------------------------------------------------------

    def _secrets_named_by(self, variable: str) -> set[str]:
        """Secrets whose ARN a function receives as ``variable`` (!Ref <Secret>)."""
        ids = set()
        for function in self.template.functions.values():
            value = function.environment.get(variable)
            if isinstance(value, dict) and isinstance(value.get("Ref"), str) and value["Ref"] in self.template.secrets:
                ids.add(value["Ref"])
        return ids

    def _webhook_token_secrets(self) -> set[str]:
        """Secrets whose ARN a function receives as BILLOPS_WEBHOOK_TOKEN_SECRET_ARN."""
        return self._secrets_named_by(WEBHOOK_TOKEN_VARIABLE)

    @staticmethod
    def _sandbox_credentials() -> str | None:
        """The CCBill sandbox's DataLink login, in the credentials secret's shape (docs/ccbill-client.md)."""
        try:
            from billops_local.ccbill_sandbox.accounts import (
                DEFAULT_ACCOUNTS,
                DEFAULT_DATALINK_PASSWORD,
                DEFAULT_DATALINK_USERNAME,
            )
        except ImportError:
            return None
        return json.dumps({"client_accnum": DEFAULT_ACCOUNTS[0].client_accnum, "username": DEFAULT_DATALINK_USERNAME,
                           "password": DEFAULT_DATALINK_PASSWORD})

    def _create_resources(self, _: LocalStack) -> None:
        values = {logical_id: self.webhook_token for logical_id in self._webhook_token_secrets()}
        credentials = self._sandbox_credentials()
        if credentials is not None:
            values.update({logical_id: credentials for logical_id in self._secrets_named_by(
                CCBILL_CREDENTIALS_VARIABLE)})
        self.state.resources = create_resources(self.template, self.aws_endpoint, secret_values=values)
        environment = merged_function_environment(function_environments(self.template, self.resources))
        # The token is ours to put in the secret; left in the environment it would win over the secret
        # (billops.webhooks.webhook_token) and the production path would go untested.
        if "BILLOPS_WEBHOOK_TOKEN" not in environment:
            self._env.remove(["BILLOPS_WEBHOOK_TOKEN"])
        self._env.set(environment)
        _refuse_impossible_settings()

    def _start_domain_events(self, _: LocalStack) -> None:
        tap = DomainEventsTap(self.aws_endpoint, [bus.name for bus in self.resources.event_buses.values()])
        tap.start()
        self.state.domain_events = tap

    # -- functions ---------------------------------------------------------------------------------------------

    def _concurrency(self, logical_id: str) -> int:
        """ReservedConcurrentExecutions, or UNRESERVED_CONCURRENCY environments (Lambda: the account's unreserved
        pool), capped by BILLOPS_LOCAL_MAX_CONCURRENCY."""
        reserved = self.template.functions[logical_id].reserved_concurrency
        limit = reserved if reserved else UNRESERVED_CONCURRENCY
        if self.settings.max_concurrency is not None:
            limit = min(limit, self.settings.max_concurrency)
        return max(1, limit)

    def _create_functions(self, _: LocalStack) -> None:
        missing = [
            f"{logical_id}: {spec.module_path} (CodeUri {spec.code_uri}, Handler {spec.handler})"
            for logical_id, spec in self.template.functions.items()
            if not spec.module_path.is_file()
        ]
        if missing:
            raise LocalStackError("the template names handlers that do not exist:\n  " + "\n  ".join(missing))
        from billops_local.worker_faults import WORKER_FUNCTION, WorkerFaults

        worker_faults = WorkerFaults.from_env(self.settings.environment)  # BILLOPS_LOCAL_FAULTS (tests)
        if worker_faults is not None:
            log.warning("local worker faults are ON: %s", worker_faults.describe())
        for logical_id, spec in self.template.functions.items():
            setups = [worker_faults] if worker_faults is not None and logical_id == WORKER_FUNCTION else []
            self.state.functions[logical_id] = LocalFunction.from_spec(
                spec, max_concurrency=self._concurrency(logical_id), isolated=True, process_setups=setups)

    def _stop_functions(self) -> None:
        functions = list(self.functions.values())
        for function in functions:  # every environment's pipe closes first, then one wait for them all
            function.close()
        deadline = time.monotonic() + 5
        for function in functions:
            function.stop(timeout=max(0.0, deadline - time.monotonic()))

    def _cold_starts(self, _: LocalStack) -> None:
        """One warm environment per function, started side by side (each imports its handler in its process)."""
        def cold_start(logical_id: str, function: LocalFunction) -> None:
            try:
                function.load()
            except Exception:
                log.exception("%s: importing %s failed; every invocation will retry it (and fail as Lambda "
                              "would)", logical_id, function.module_path)

        threads = [threading.Thread(target=cold_start, args=item, name=f"cold-start-{item[0]}", daemon=True)
                   for item in self.functions.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- HTTP API ----------------------------------------------------------------------------------------------

    def _start_gateway(self, _: LocalStack) -> None:
        table = RouteTable.from_template(self.template.http_routes, self.functions)
        control = LocalControl(lambda: self.state.schedules, self._overview)
        gateway = HttpGateway(table, host=self.settings.host, port=self.settings.api_port, control=control)
        gateway.start()
        self.state.gateway = gateway

    def _stop_gateway(self) -> None:
        if self.state.gateway is not None:
            self.state.gateway.stop()
            self.state.gateway = None

    def _overview(self) -> dict[str, Any]:
        return {
            "aws_endpoint": self.aws_endpoint,
            "schedules": self.state.schedules.status() if self.state.schedules else [],
            "queue_pollers": [
                {"function": poller.function.logical_id, "queue_url": poller.queue_url,
                 "concurrency": poller.concurrency, "failure_visibility_timeout": poller.failure_visibility_timeout,
                 "invocations": poller.stats.invocations, "deleted_messages": poller.stats.deleted_messages,
                 "failed_messages": poller.stats.failed_messages}
                for poller in self.queue_pollers
            ],
            "domain_events_queue_url": self.state.domain_events.queue_url if self.state.domain_events else None,
            "overridden_parameters": dict(self.state.overridden_parameters),
        }

    # -- event sources -----------------------------------------------------------------------------------------

    def _start_pollers(self, _: LocalStack) -> None:
        for source in self.template.stream_sources:
            if not source.enabled:
                continue
            table = self.resources.tables[source.table_logical_id]
            if not table.stream_arn:
                raise LocalStackError(f"{source.table_logical_id} has no stream in moto")
            queue = self.resources.queues.get(source.on_failure_queue_logical_id or "")
            poller = StreamPoller(
                self.functions[source.function_logical_id],
                source,
                table.stream_arn,
                self.aws_endpoint,
                on_failure_queue_url=queue.url if queue else None,
                poll_interval=self.poll_interval,
            )
            poller.start()
            self.state.pollers.append(poller)

    def _stop_pollers(self) -> None:
        while self.state.pollers:
            self.state.pollers.pop().stop()

    def _start_queue_pollers(self, _: LocalStack) -> None:
        for source in self.template.queue_sources:
            if not source.enabled:
                continue
            if self.template.functions[source.function_logical_id].reserved_concurrency == 0:
                log.warning("%s has ReservedConcurrentExecutions 0: Lambda never invokes it; its queue is not "
                            "polled", source.function_logical_id)
                continue
            function = self.functions[source.function_logical_id]
            queue = self.resources.queues[source.queue_logical_id]
            concurrency = function.max_concurrency
            if source.maximum_concurrency is not None:
                concurrency = min(concurrency, source.maximum_concurrency)
            poller = QueuePoller(
                function,
                source,
                queue.url,
                queue.arn,
                self.aws_endpoint,
                concurrency=concurrency,
                failure_visibility_timeout=self.settings.failure_visibility_timeout,
                poll_interval=self.poll_interval,
            )
            poller.start()
            self.state.queue_pollers.append(poller)

    def _stop_queue_pollers(self) -> None:
        while self.state.queue_pollers:
            self.state.queue_pollers.pop().stop()

    def _start_schedules(self, _: LocalStack) -> None:
        runner = ScheduleRunner(
            (ScheduledFunction(schedule, self.functions[schedule.function_logical_id],
                               self.template.functions[schedule.function_logical_id].maximum_retry_attempts)
             for schedule in self.template.schedules),
            self.settings.schedule_timing,
        )
        runner.start()
        self.state.schedules = runner

    def _stop_schedules(self) -> None:
        if self.state.schedules is not None:
            self.state.schedules.stop()
            self.state.schedules = None

    # -- what is printed -------------------------------------------------------------------------------------------

    def _describe_resources(self) -> str:
        resources = self.resources
        names = [table.name for table in resources.tables.values()] + [q.name for q in resources.queues.values()]
        names += [secret.name for secret in resources.secrets.values()]
        names += [f"bus {bus.name}" for bus in resources.event_buses.values()]
        names += [f"key {alias.name}" for alias in resources.kms_aliases.values()]
        return ", ".join(names)

    def _describe_domain_events(self) -> str:
        return self.domain_events.describe()

    def _describe_functions(self) -> str:
        return ", ".join(
            f"{logical_id}" + (f" (x{function.max_concurrency})" if function.max_concurrency > 1 else "")
            for logical_id, function in self.functions.items()
        )

    def _describe_gateway(self) -> str:
        routes = ", ".join(sorted(self.gateway.route_table.route_keys)) or "no routes"
        return f"{self.api_url}  ({routes})"

    def _describe_pollers(self) -> str:
        return ", ".join(poller.name for poller in self.pollers) or "none"

    def _describe_queue_pollers(self) -> str:
        pollers = ", ".join(poller.name for poller in self.queue_pollers) or "none"
        return f"{pollers}; failed messages return after {self.settings.failure_visibility_timeout} s"

    def _describe_schedules(self) -> str:
        return f"{self.schedules.describe()}; {self.settings.schedule_timing.describe()}"

    def sample_curl(self) -> str:
        """A ready-made curl posting a short sample webhook (a Cancellation: few fields, no personal data)."""
        event_type = "Cancellation"
        try:
            from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

            fields = sample_fields(event_type)
            body, content_type = encode_body(fields, "json")
            query = urlencode(list(webhook_query(event_type, fields, self.webhook_token).items()))
        except Exception:  # noqa: BLE001 - the samples module is optional for the stack itself
            body, content_type = b'{"subscriptionId": "0126015401000000123"}', "application/json"
            query = urlencode({"token": self.webhook_token, "eventType": event_type})
        url = f"{self.api_url}{self.webhook_path}?{query}"
        return (
            f"curl -sS -i -X POST {shlex.quote(url)} -H {shlex.quote('Content-Type: ' + content_type)} "
            f"--data-binary {shlex.quote(body.decode('utf-8'))}"
        )

    def _print_banner(self) -> None:
        out = self.out or sys.stdout
        lines = ["billops local stack"]
        for service in self._started:
            if service.description is None:
                continue
            text = service.description() if callable(service.description) else service.description
            lines.append(f"  {service.name:<15} {text}")
        if self.state.overridden_parameters:
            lines.append("  parameters      " + ", ".join(
                f"{name}={value}" for name, value in sorted(self.state.overridden_parameters.items())))
        lines += [
            "",
            "Webhook URL (configure CCBill's sandbox / post to it):",
            f"  {self.webhook_url}",
            "Try it:",
            f"  {self.sample_curl()}",
            "Look inside:",
            f"  aws --endpoint-url {self.aws_endpoint} dynamodb scan --table-name "
            f"{self.resources.tables[next(iter(self.resources.tables))].name}" if self.resources.tables else "",
        ]
        if self.state.domain_events is not None and self.state.domain_events.queue_url:
            lines.append(f"  aws --endpoint-url {self.aws_endpoint} sqs receive-message --max-number-of-messages 10 "
                         f"--queue-url {self.state.domain_events.queue_url}   (published domain events)")
        if self.state.schedules is not None and self.state.schedules.scheduled:
            first = self.state.schedules.scheduled[0].schedule.function_logical_id
            lines += ["Run a schedule now:", f"  curl -sS -X POST {self.api_url}/__local/schedules/{first}"]
        lines += ["", READY_LINE]
        print("\n".join(line for line in lines), file=out, flush=True)


def _refuse_impossible_settings() -> None:
    """Settings every function would refuse at its cold start (billops.settings.SettingsError): the stack refuses
    to start, with the same message, rather than answer every request with an import error."""
    from billops.settings import SettingsError, settings_from_env

    try:
        settings_from_env()
    except SettingsError as error:
        raise LocalStackError(str(error)) from None


def build_stack(settings: LocalSettings | None = None, **options: Any) -> LocalStack:
    """The stack ``python -m billops_local`` runs. Further services are added here, e.g.
    ``stack.add_service("ccbill-sandbox", start, stop, port=stack.settings.sandbox_port)``."""
    from billops_local.ccbill_sandbox.local_service import add_to_stack

    stack = LocalStack(settings, **options)
    add_to_stack(stack)  # the CCBill sandbox on BILLOPS_SANDBOX_PORT, delivering webhooks to the receiver
    from billops_local.api_key_seed import add_to_stack as add_api_key_seed  # BILLOPS_API_KEY in the keys table
    add_api_key_seed(stack)
    return stack
