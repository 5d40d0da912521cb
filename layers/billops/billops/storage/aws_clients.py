"""One boto3 client per AWS service per container, created on first use, pointed wherever the environment says.

boto3 honours AWS_ENDPOINT_URL, which is how the local stack (moto's server) and tests redirect every call without
any code path of our own. Timeouts are short and retries bounded: a webhook must be answered well within API
Gateway's 30 s, and an unconfirmed write is answered 5xx so the sender tries again.
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def aws_client(service: str) -> Any:
    client = _clients.get(service)
    if client is None:
        with _lock:
            client = _clients.get(service)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.client(
                    service,
                    config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}),
                )
                _clients[service] = client
    return client


def secrets_provider(*, shared: bool = True) -> Any:
    """A Powertools SecretsProvider on this container's Secrets Manager client.

    Powertools' providers otherwise make a boto3 session of their own, which loads botocore's endpoint data and
    handlers a second time: about a third of the receiver's first-delivery CPU (bench/report.md, cold starts).
    ``shared``: the process-wide default provider that ``parameters.get_secret`` and ``clear_caches`` use (one cache
    for the container); otherwise a provider with a cache of its own."""
    from aws_lambda_powertools.utilities import parameters

    if not shared:
        return parameters.SecretsProvider(boto3_client=aws_client("secretsmanager"))
    provider = parameters.base.DEFAULT_PROVIDERS.get("secrets")
    if provider is None:
        provider = parameters.SecretsProvider(boto3_client=aws_client("secretsmanager"))
        parameters.base.DEFAULT_PROVIDERS["secrets"] = provider
    return provider


def reset_clients() -> None:
    """Forget every client, and the default secrets provider built on one (tests switch endpoints between cases)."""
    with _lock:
        _clients.clear()
    import sys

    parameters_base = sys.modules.get("aws_lambda_powertools.utilities.parameters.base")
    if parameters_base is not None:
        parameters_base.DEFAULT_PROVIDERS.pop("secrets", None)
