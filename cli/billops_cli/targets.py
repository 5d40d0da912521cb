"""Which stack the CLI talks to, and how its tables, queues and functions are found.

* ``--local`` (the default when no stack is given): the stack ``make run`` starts. AWS calls go to moto on
  ``http://127.0.0.1:$BILLOPS_AWS_PORT`` (5000) with dummy credentials (never the operator's own), the local
  control endpoints to ``http://127.0.0.1:$BILLOPS_API_PORT`` (3000). Every resource is called
  ``billops-local-<LogicalId>`` (``.fifo`` for FIFO queues), as billops_local.template_resources names them.
* ``--stack NAME [--region R] [--profile P]``: a deployed stack. Names and URLs come from the CloudFormation
  stack's outputs (EventsTableName, OperationsQueueUrl, ...); a resource without an output is found by its
  logical ID (DescribeStackResource's physical ID: a table's name, a queue's URL, a function's name). The
  operator's own AWS credentials are used (profile, environment, SSO...).

The domain code in the ``billops`` package reads table names and queue URLs from BILLOPS_* variables and makes its
AWS clients from the process environment, exactly as in a Lambda function; ``Target.activate`` sets both for the
resources a command needs, so the CLI runs the very code the functions run.
"""

from __future__ import annotations

import functools
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from billops.settings.registry import VARIABLES as REGISTERED_VARIABLES
from billops_cli.output import CliError

LOCAL_PREFIX = "billops-local-"
LOCAL_REGION = "us-east-1"
LOCAL_HOST = "127.0.0.1"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # nosec B105  # moto's dummy credentials for the local stack, not a secret
    "AWS_SESSION_TOKEN": "testing",  # nosec B105  # moto's dummy credentials for the local stack, not a secret
}

OUTPUT_KEYS = {
    **{entry.resource: entry.output for entry in REGISTERED_VARIABLES if entry.resource and entry.output},
    "ProjectorDeadLetterQueue": "ProjectorDeadLetterQueueUrl",  # no function reads it: only the CLI
}
"""Logical ID -> the stack output holding its name / URL (template.yaml's Outputs; billops.settings.registry)."""

LIBRARY_VARIABLES = {entry.resource: entry.name for entry in REGISTERED_VARIABLES if entry.resource}
"""Logical ID -> the variable through which the billops package's code finds it, as the functions do (the one list:
billops.settings.registry, which the template test checks against template.yaml)."""

QUEUES = frozenset({"OperationsQueue", "OperationsDeadLetterQueue", "ProjectorDeadLetterQueue"})
SCHEDULE_TIMEOUT_SECONDS = 330  # the reconciliation function's Timeout (300 s) and some


def _client_config(read_timeout: float | None = None) -> Any:
    from botocore.config import Config

    return Config(connect_timeout=5, read_timeout=read_timeout or 30,
                  retries={"max_attempts": 5, "mode": "adaptive"})


@dataclass
class Target:
    """A stack: its resources by logical ID, AWS clients for it, and its schedules."""

    description: str = ""
    _clients: dict[tuple[str, float | None], Any] = field(default_factory=dict, repr=False)
    _resolved: dict[str, str] = field(default_factory=dict, repr=False)

    kind = "abstract"

    # --- resources ---------------------------------------------------------------------------------------------

    def table(self, logical_id: str) -> str:
        return self._resource(logical_id)

    def queue_url(self, logical_id: str) -> str:
        return self._resource(logical_id)

    def event_bus(self) -> str | None:
        try:
            return self._resource("DomainEventBus")
        except CliError:
            return None

    def _resource(self, logical_id: str) -> str:
        if logical_id not in self._resolved:
            self._resolved[logical_id] = self._lookup(logical_id)
        return self._resolved[logical_id]

    def _lookup(self, logical_id: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- clients -----------------------------------------------------------------------------------------------

    def client(self, service: str, *, read_timeout: float | None = None) -> Any:
        key = (service, read_timeout)
        if key not in self._clients:
            self._clients[key] = self._make_client(service, read_timeout)
        return self._clients[key]

    def _make_client(self, service: str, read_timeout: float | None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- the billops package's view ----------------------------------------------------------------------------

    def library_environment(self, logical_ids: Iterable[str]) -> dict[str, str]:
        """BILLOPS_* variables naming ``logical_ids`` (those the package reads), plus the AWS settings."""
        values = dict(self._aws_environment())
        for logical_id in logical_ids:
            variable = LIBRARY_VARIABLES.get(logical_id)
            if variable is None:
                continue
            value = self.event_bus() if logical_id == "DomainEventBus" else self._resource(logical_id)
            if value:
                values[variable] = value
        return values

    def activate(self, *logical_ids: str) -> None:
        """Point the billops package (its settings and its cached AWS clients) at this stack's resources."""
        for name in self._aws_variables_to_remove():
            os.environ.pop(name, None)
        os.environ.update(self.library_environment(logical_ids))
        from billops.settings import get_settings
        from billops.storage.aws_clients import reset_clients

        get_settings.cache_clear()
        reset_clients()
        try:
            from billops.privacy.field_encryption import reset_default_cipher
        except ImportError:  # pragma: no cover - older layer
            return
        reset_default_cipher()

    def _aws_environment(self) -> dict[str, str]:
        return {}

    def _aws_variables_to_remove(self) -> list[str]:
        return []

    # --- schedules ---------------------------------------------------------------------------------------------

    def run_schedule(self, function_logical_id: str,
                     payload: dict[str, Any] | None = None) -> dict[str, Any]:  # pragma: no cover - abstract
        """Run a scheduled function now and return what it returned (``payload``: the event to give it instead of a
        scheduled one, e.g. an operator command)."""
        raise NotImplementedError

    def receiver_environment(self) -> dict[str, str]:
        """The webhook receiver's settings (BILLOPS_CLIENT_ACCNUM, ...), for replaying deliveries exactly as it
        would take them."""
        return {}

    def environment_name(self) -> str:
        """``local``, or the stack's Environment parameter (dev, prod): what new API keys are prefixed with."""
        return "local"

    def setting(self, parameter: str, variable: str) -> str | None:
        """A setting the stack gives its functions: the template parameter ``parameter`` of a deployed stack, or
        ``variable`` in this environment for the local stack (which reads its parameters from there too)."""
        return os.environ.get(variable)


@dataclass
class LocalTarget(Target):
    aws_endpoint: str = ""
    api_url: str = ""

    kind = "local"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LocalTarget:
        env = dict(os.environ if env is None else env)
        aws_port = _port(env, "BILLOPS_AWS_PORT", 5000)
        api_port = _port(env, "BILLOPS_API_PORT", 3000)
        aws_endpoint = f"http://{LOCAL_HOST}:{aws_port}"
        api_url = f"http://{LOCAL_HOST}:{api_port}"
        return cls(description=f"local stack (AWS {aws_endpoint}, API {api_url})", aws_endpoint=aws_endpoint,
                   api_url=api_url)

    def _lookup(self, logical_id: str) -> str:
        name = LOCAL_PREFIX + logical_id
        if logical_id == "BillopsKey":
            return f"alias/{LOCAL_PREFIX}BillopsKeyAlias"  # the local stack names aliases like its other resources
        if logical_id not in QUEUES:
            return name
        sqs = self.client("sqs")
        for candidate in (name, name + ".fifo"):
            try:
                return str(sqs.get_queue_url(QueueName=candidate)["QueueUrl"])
            except sqs.exceptions.QueueDoesNotExist:
                continue
            except Exception as error:  # noqa: BLE001 - connection refused: the stack is not running
                raise CliError(f"the local stack does not answer at {self.aws_endpoint} ({type(error).__name__}); "
                               "start it with `make run`, or give --stack NAME") from None
        raise CliError(f"the local stack has no queue {name}")

    def _make_client(self, service: str, read_timeout: float | None) -> Any:
        return _local_session().client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=LOCAL_REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            config=_client_config(read_timeout),
        )

    def _aws_environment(self) -> dict[str, str]:
        # As the local stack's own process does (billops_local.aws_environment.local_aws_environment): no profile,
        # config or credentials file of the operator's can send a call to a real account.
        return {"AWS_ENDPOINT_URL": self.aws_endpoint, "AWS_DEFAULT_REGION": LOCAL_REGION, "AWS_REGION": LOCAL_REGION,
                **DUMMY_CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "BILLOPS_ENV": "local"}

    def _aws_variables_to_remove(self) -> list[str]:
        return [name for name in os.environ
                if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")]

    def receiver_environment(self) -> dict[str, str]:
        # The local stack's receiver keys hashed deliveries with the stack's own secret (the template's).
        return {"BILLOPS_DELIVERY_KEY_SECRET_ARN": LOCAL_PREFIX + "DeliveryKeySecret"}

    def run_schedule(self, function_logical_id: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.api_url}/__local/schedules/{function_logical_id}"
        data = json.dumps(payload).encode("utf-8") if payload else b""
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=SCHEDULE_TIMEOUT_SECONDS) as answer:  # nosec B310  # an http URL of the local stack, built here
                body = json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                body = json.loads(error.read() or b"{}")
            except ValueError:
                body = {}
            message = body.get("errorMessage") or body.get("message") or f"HTTP {error.code}"
            raise CliError(f"{function_logical_id} failed: {body.get('errorType') or ''} {message}".strip()) from None
        except (urllib.error.URLError, OSError) as error:
            raise CliError(f"the local stack does not answer at {self.api_url} ({error}); start it with `make run`")\
                from None
        return body.get("result") if isinstance(body, dict) and "result" in body else body


@dataclass
class AwsTarget(Target):
    stack_name: str = ""
    region: str | None = None
    profile: str | None = None
    _session: Any = field(default=None, repr=False)
    _outputs: dict[str, str] | None = field(default=None, repr=False)
    _parameters: dict[str, str] = field(default_factory=dict, repr=False)

    kind = "aws"

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3
            from botocore.exceptions import ProfileNotFound

            try:
                self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            except ProfileNotFound as error:
                raise CliError(str(error)) from None
            if not self._session.region_name:
                raise CliError("no AWS region: give --region or set AWS_REGION / a profile's region")
        return self._session

    def _make_client(self, service: str, read_timeout: float | None) -> Any:
        return self.session.client(service, config=_client_config(read_timeout))

    @property
    def outputs(self) -> dict[str, str]:
        if self._outputs is None:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
            except ClientError as error:
                raise CliError(f"stack {self.stack_name}: {error.response.get('Error', {}).get('Message', error)}")\
                    from None
            except BotoCoreError as error:
                raise CliError(f"stack {self.stack_name}: {error}") from None
            self._outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs", [])}
            self._parameters = {str(p["ParameterKey"]): str(p.get("ParameterValue") or "")
                                for p in stacks[0].get("Parameters", [])}
        return self._outputs

    def setting(self, parameter: str, variable: str) -> str | None:
        self.outputs  # noqa: B018 - reads the parameters too
        return self._parameters.get(parameter)

    def environment_name(self) -> str:
        self.outputs  # noqa: B018 - reads the parameters too
        environment = self._parameters.get("Environment", "").strip().lower()
        if not environment:
            raise CliError(f"stack {self.stack_name} has no Environment parameter")
        return environment

    def _lookup(self, logical_id: str) -> str:
        output = OUTPUT_KEYS.get(logical_id)
        if output and self.outputs.get(output):
            return self.outputs[output]
        return self.physical_id(logical_id)

    def physical_id(self, logical_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client("cloudformation").describe_stack_resource(StackName=self.stack_name,
                                                                           LogicalResourceId=logical_id)
        except ClientError as error:
            raise CliError(f"stack {self.stack_name} has no resource {logical_id} "
                           f"({error.response.get('Error', {}).get('Message', '')})") from None
        except BotoCoreError as error:
            raise CliError(f"stack {self.stack_name}: {error}") from None
        return str(answer["StackResourceDetail"]["PhysicalResourceId"])

    def _aws_environment(self) -> dict[str, str]:
        values = {"AWS_DEFAULT_REGION": self.session.region_name, "AWS_REGION": self.session.region_name}
        if self.profile:
            values["AWS_PROFILE"] = self.profile
        return values

    def run_schedule(self, function_logical_id: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self.physical_id(function_logical_id)
        client = self.client("lambda", read_timeout=SCHEDULE_TIMEOUT_SECONDS)
        event = payload or {"source": "billops.cli", "detail-type": "Scheduled Event", "detail": {}}
        try:
            answer = client.invoke(FunctionName=name, InvocationType="RequestResponse",
                                   Payload=json.dumps(event).encode("utf-8"))
        except (ClientError, BotoCoreError) as error:
            raise CliError(f"invoking {name} failed: {error}") from None
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else payload
            raise CliError(f"{name} failed: {message}")
        return payload

    def receiver_environment(self) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            name = self.physical_id("WebhookReceiverFunction")
            configuration = self.client("lambda").get_function_configuration(FunctionName=name)
        except (ClientError, BotoCoreError, CliError) as error:
            raise CliError("cannot read the webhook receiver's settings (lambda:GetFunctionConfiguration on "
                           f"WebhookReceiverFunction): {error}") from None
        variables = dict((configuration.get("Environment") or {}).get("Variables") or {})
        wanted = ("BILLOPS_ENV", "BILLOPS_CLIENT_ACCNUM", "BILLOPS_CLIENT_SUBACCS", "BILLOPS_MAX_BODY_BYTES",
                  "BILLOPS_PASSTHROUGH_CLEAR_FIELDS", "BILLOPS_CUSTOMER_REFERENCE_FIELD",
                  # a replayed delivery is keyed, dated and authorised as the receiver would (needs
                  # secretsmanager:GetSecretValue on the DeliveryKeySecretArn output)
                  "BILLOPS_DELIVERY_KEY_SECRET_ARN", "BILLOPS_CHECK_LEGACY_DELIVERY_KEYS", "BILLOPS_CCBILL_TIMEZONE",
                  "BILLOPS_UPGRADE_CATALOGUE")
        return {name: value for name, value in variables.items() if name in wanted}


@functools.lru_cache(maxsize=1)
def _local_session() -> Any:
    """One session for the local stack's clients: a session loads each service's model once."""
    import boto3

    return boto3.session.Session()


def _port(env: dict[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise CliError(f"{name}={raw!r} is not a port number", 2) from None
    if not 0 < port < 65536:
        raise CliError(f"{name}={port} is not a port number", 2)
    return port


STACK_VARIABLE = "BILLOPS_STACK"
"""The deployed stack to use when neither --stack nor --local is given (an operator's shell profile, CI)."""


def resolve_target(*, local: bool = False, stack: str | None = None, region: str | None = None,
                   profile: str | None = None, env: dict[str, str] | None = None) -> Target:
    if local and stack:
        raise CliError("give either --local or --stack, not both", 2)
    if not local and not stack:
        stack = (os.environ if env is None else env).get(STACK_VARIABLE, "").strip() or None
    if stack:
        return AwsTarget(description=f"stack {stack}" + (f" ({region})" if region else ""), stack_name=stack,
                         region=region, profile=profile)
    if region or profile:
        raise CliError("--region and --profile go with --stack", 2)
    return LocalTarget.from_env(env)
