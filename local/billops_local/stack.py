"""The local stack: every piece started in order, stopped in reverse, in one process.

Built-in services, in start order:

  moto            moto's server on 127.0.0.1:$BILLOPS_AWS_PORT; this process's AWS_ENDPOINT_URL, region and dummy
                  credentials then point every boto3 client (the handlers' included) at it
  resources       the template's tables, queues and secrets created in moto; the webhook token
                  ($BILLOPS_WEBHOOK_TOKEN, default local-webhook-token) stored in the token secret, which the
                  receiver reads through BILLOPS_WEBHOOK_TOKEN_SECRET_ARN exactly as in AWS; every function's
                  template environment merged into os.environ
  functions       each handler imported from CodeUri + Handler (a failed import is logged and retried per call)
  http-api        the HTTP API emulator on 127.0.0.1:$BILLOPS_API_PORT with the template's routes
  stream-pollers  one poller per DynamoDB event of the template

More services (the CCBill sandbox) join with ``add_service(name, start, stop, port=...)`` before ``start()``:
``start(stack)`` is called after the built-ins (so it can use ``stack.api_url``, ``stack.aws_endpoint`` ...),
``stop()`` before them; a ``port`` (an int, or a callable returning one) must accept connections before the stack
reports ready. ``build_stack()`` is where ``python -m billops_local`` assembles its services.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TextIO
from urllib.parse import urlencode

from billops_local.aws_environment import (
    CreatedResources,
    EnvironmentPatch,
    LocalFunction,
    MotoServer,
    conflicting_aws_variables,
    create_resources,
    function_environments,
    local_aws_environment,
    merged_function_environment,
)
from billops_local.http_gateway import HttpGateway, RouteTable
from billops_local.stream_poller import StreamPoller
from billops_local.template_resources import DEFAULT_TEMPLATE, LocalTemplate, load_template

log = logging.getLogger("billops_local")

READY_LINE = "billops local stack ready"
DEFAULT_WEBHOOK_TOKEN = "local-webhook-token"
WEBHOOK_TOKEN_VARIABLE = "BILLOPS_WEBHOOK_TOKEN_SECRET_ARN"


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


@dataclass(frozen=True)
class LocalSettings:
    """BILLOPS_AWS_PORT (5000), BILLOPS_API_PORT (3000), BILLOPS_SANDBOX_PORT (4000), BILLOPS_WEBHOOK_TOKEN
    (local-webhook-token). Port 0 means any free port."""

    aws_port: int = 5000
    api_port: int = 3000
    sandbox_port: int = 4000
    webhook_token: str = DEFAULT_WEBHOOK_TOKEN
    host: str = "127.0.0.1"
    template_path: Path = DEFAULT_TEMPLATE

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LocalSettings:
        return cls(
            aws_port=_port(env, "BILLOPS_AWS_PORT", 5000),
            api_port=_port(env, "BILLOPS_API_PORT", 3000),
            sandbox_port=_port(env, "BILLOPS_SANDBOX_PORT", 4000),
            webhook_token=env.get("BILLOPS_WEBHOOK_TOKEN") or DEFAULT_WEBHOOK_TOKEN,
        )


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
    moto: MotoServer | None = None
    resources: CreatedResources | None = None
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    gateway: HttpGateway | None = None
    pollers: list[StreamPoller] = field(default_factory=list)


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
        self._started: list[Service] = []
        self._running = False
        self.add_service("moto", self._start_moto, self._stop_moto, port=lambda: self.moto.port,
                         description=lambda: f"{self.aws_endpoint}  (AWS_ENDPOINT_URL; any credentials)")
        self.add_service("resources", self._create_resources, description=self._describe_resources)
        self.add_service("functions", self._load_functions)
        self.add_service("http-api", self._start_gateway, self._stop_gateway, port=lambda: self.gateway.port,
                         description=self._describe_gateway)
        self.add_service("stream-pollers", self._start_pollers, self._stop_pollers,
                         description=self._describe_pollers)

    # -- the pieces, once started --------------------------------------------------------------------------------

    @property
    def template(self) -> LocalTemplate:
        if self.state.template is None:
            self.state.template = load_template(self.settings.template_path)
        return self.state.template

    @property
    def moto(self) -> MotoServer:
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
        """Add a service started after the ones already added (and stopped before them)."""
        if self._running:
            raise LocalStackError(f"add {name!r} before start()")
        if any(service.name == name for service in self._services):
            raise LocalStackError(f"a service named {name!r} exists already")
        self._services.append(Service(name, start, stop, port, description))

    @property
    def service_names(self) -> list[str]:
        return [service.name for service in self._services]

    def start(self) -> Self:
        if self._running:
            return self
        self._running = True
        try:
            for service in self._services:
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
        moto = MotoServer(self.settings.host, self.settings.aws_port)
        moto.start()
        self.state.moto = moto
        moto.reset()
        self._env.remove(overriding)
        self._env.set(local_aws_environment(moto.endpoint_url))

    def _stop_moto(self) -> None:
        if self.state.moto is not None:
            self.state.moto.stop()
            self.state.moto = None

    def _webhook_token_secrets(self) -> set[str]:
        """Secrets whose ARN a function receives as BILLOPS_WEBHOOK_TOKEN_SECRET_ARN."""
        ids = set()
        for function in self.template.functions.values():
            value = function.environment.get(WEBHOOK_TOKEN_VARIABLE)
            if isinstance(value, dict) and isinstance(value.get("Ref"), str) and value["Ref"] in self.template.secrets:
                ids.add(value["Ref"])
        return ids

    def _create_resources(self, _: LocalStack) -> None:
        token_secrets = self._webhook_token_secrets()
        self.state.resources = create_resources(
            self.template,
            self.aws_endpoint,
            secret_values={logical_id: self.webhook_token for logical_id in token_secrets},
        )
        environment = merged_function_environment(function_environments(self.template, self.resources))
        # The token is ours to put in the secret; left in the environment it would win over the secret
        # (billops.webhooks.webhook_token) and the production path would go untested.
        if "BILLOPS_WEBHOOK_TOKEN" not in environment:
            self._env.remove(["BILLOPS_WEBHOOK_TOKEN"])
        self._env.set(environment)
        _forget_cached_settings()

    def _load_functions(self, _: LocalStack) -> None:
        for logical_id, spec in self.template.functions.items():
            function = LocalFunction.from_spec(spec)
            self.state.functions[logical_id] = function
            try:
                function.load()
            except Exception:
                log.exception("%s: importing %s failed; every invocation will retry it (and fail as Lambda would)",
                              logical_id, spec.module_path)

    def _start_gateway(self, _: LocalStack) -> None:
        table = RouteTable.from_template(self.template.http_routes, self.functions)
        gateway = HttpGateway(table, host=self.settings.host, port=self.settings.api_port)
        gateway.start()
        self.state.gateway = gateway

    def _stop_gateway(self) -> None:
        if self.state.gateway is not None:
            self.state.gateway.stop()
            self.state.gateway = None

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

    # -- what is printed -------------------------------------------------------------------------------------------

    def _describe_resources(self) -> str:
        resources = self.resources
        names = [table.name for table in resources.tables.values()] + [q.name for q in resources.queues.values()]
        return ", ".join(names + [secret.name for secret in resources.secrets.values()])

    def _describe_gateway(self) -> str:
        routes = ", ".join(sorted(self.gateway.route_table.route_keys)) or "no routes"
        return f"{self.api_url}  ({routes})"

    def _describe_pollers(self) -> str:
        return ", ".join(poller.name for poller in self.pollers) or "none"

    def sample_curl(self) -> str:
        """A ready-made curl posting a sample NewSaleSuccess webhook to the local receiver."""
        event_type = "NewSaleSuccess"
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
        lines += [
            "",
            "Webhook URL (configure CCBill's sandbox / post to it):",
            f"  {self.webhook_url}",
            "Try it:",
            f"  {self.sample_curl()}",
            "Look inside:",
            f"  aws --endpoint-url {self.aws_endpoint} dynamodb scan --table-name "
            f"{self.resources.tables[next(iter(self.resources.tables))].name}" if self.resources.tables else "",
            "",
            READY_LINE,
        ]
        print("\n".join(line for line in lines), file=out, flush=True)


def _forget_cached_settings() -> None:
    """In-process users (tests) may have imported billops already: make it re-read the environment."""
    settings = sys.modules.get("billops.settings")
    if settings is not None and hasattr(settings, "get_settings"):
        settings.get_settings.cache_clear()
    client = sys.modules.get("billops.storage.dynamodb_client")
    if client is not None and hasattr(client, "reset_client"):
        client.reset_client()


def build_stack(settings: LocalSettings | None = None, **options: Any) -> LocalStack:
    """The stack ``python -m billops_local`` runs. Further services are added here, e.g.
    ``stack.add_service("ccbill-sandbox", start, stop, port=stack.settings.sandbox_port)``."""
    from billops_local.ccbill_sandbox.local_service import add_to_stack

    stack = LocalStack(settings, **options)
    add_to_stack(stack)  # the CCBill sandbox on BILLOPS_SANDBOX_PORT, delivering webhooks to the receiver
    return stack
