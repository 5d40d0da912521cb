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
_shared_provider: Any = None


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
    global _shared_provider
    from aws_lambda_powertools.utilities import parameters

    if shared and (provider := parameters.base.DEFAULT_PROVIDERS.get("secrets")) is not None:
        return provider
    provider = parameters.SecretsProvider(boto3_client=aws_client("secretsmanager"))
    if shared:
        parameters.base.DEFAULT_PROVIDERS["secrets"] = _shared_provider = provider
    return provider


def reset_clients() -> None:
    """Forget every client, and the default secrets provider made on one (tests switch endpoints between cases)."""
    global _shared_provider
    with _lock:
        _clients.clear()
    if _shared_provider is not None:
        from aws_lambda_powertools.utilities import parameters

        if parameters.base.DEFAULT_PROVIDERS.get("secrets") is _shared_provider:
            del parameters.base.DEFAULT_PROVIDERS["secrets"]
        _shared_provider = None
