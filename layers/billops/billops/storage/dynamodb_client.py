"""One DynamoDB client per container, created on first use, pointed wherever the environment says.

boto3 honours AWS_ENDPOINT_URL, which is how the local stack (moto's server) and tests redirect every call
without any code path of our own. Timeouts are short and retries bounded: a webhook must be answered well within
API Gateway's 30 s, and an unconfirmed write is answered 5xx so CCBill delivers again.
"""

from __future__ import annotations

import threading
from typing import Any

_client: Any = None
_lock = threading.Lock()


def dynamodb_client() -> Any:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                import boto3
                from botocore.config import Config

                _client = boto3.client(
                    "dynamodb",
                    config=Config(
                        connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
                    ),
                )
    return _client


def reset_client() -> None:
    """Forget the client (tests switch endpoints between cases)."""
    global _client
    _client = None


class DynamoDBTable:
    """Base of the thin table wrappers: a table name and a client (the container's, unless one is given)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()
