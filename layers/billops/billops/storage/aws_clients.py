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


def reset_clients() -> None:
    """Forget every client (tests switch endpoints between cases)."""
    with _lock:
        _clients.clear()
