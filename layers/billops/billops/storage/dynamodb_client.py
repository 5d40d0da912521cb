"""The container's DynamoDB client, and the base of the thin table wrappers."""

from __future__ import annotations

from typing import Any

from billops.storage.aws_clients import aws_client, reset_clients


def dynamodb_client() -> Any:
    return aws_client("dynamodb")


def reset_client() -> None:
    """Forget the clients (tests switch endpoints between cases)."""
    reset_clients()


class DynamoDBTable:
    """Base of the thin table wrappers: a table name and a client (the container's, unless one is given)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()
