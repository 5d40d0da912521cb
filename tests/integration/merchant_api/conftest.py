"""The merchant API's handler against moto (the template's resources, ApiKeysTable included) and a real CCBill
sandbox, next to the operations stack of tests/integration/operations (its fixtures are reused as they are): what
the API queues, the real worker carries out."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from billops_local.aws_environment import aws_client
from billops_local.ccbill_sandbox import start_sandbox
from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY, client_environment
from billops_local.http_api_events import http_api_event
from billops_local.template_resources import LOCAL_PREFIX

_OPERATIONS_CONFTEST = Path(__file__).resolve().parents[1] / "operations" / "conftest.py"
_spec = importlib.util.spec_from_file_location("operations_fixtures_for_merchant_api", _OPERATIONS_CONFTEST)
_operations = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _operations
_spec.loader.exec_module(_operations)

ops = _operations.ops
webhook_capture = _operations.webhook_capture

KEYS_TABLE = LOCAL_PREFIX + "ApiKeysTable"
KEYS = {
    "full": ("bo_test_full0000000000000000000000000", ("read", "write", "pii")),
    "reader": ("bo_test_reader00000000000000000000000", ("read",)),
    "writer": ("bo_test_writer00000000000000000000000", ("write",)),
    "operator": ("bo_test_operator000000000000000000000", ("read", "write")),
}
CLIENT_IP = "198.51.100.20"


@pytest.fixture
def sandbox(webhook_capture):
    """The operations stack's sandbox, knowing the upgrade key (it reads `enc` as CCBill would)."""
    handle = start_sandbox("127.0.0.1", 0, webhook_capture.url, "json", webhook_retry_delays=(0.05, 0.1),
                           upgrade_key=LOCAL_UPGRADE_KEY)
    yield handle
    handle.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class MerchantApiStack:
    ops: Any
    handler: Any
    context: Any
    loader: Any
    keys_table: str
    calls: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, *, query: dict | str | None = None, body: Any = None,
             content_type: str | None = None, key: str | None = "full", authorization: str | None = None,
             headers: dict[str, str] | None = None, source_ip: str = CLIENT_IP) -> Answer:
        request_headers = dict(headers or {})
        if authorization is not None:
            request_headers["authorization"] = authorization
        elif key is not None:
            secret = KEYS[key][0] if key in KEYS else key
            request_headers["authorization"] = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
        raw: bytes | None = None
        if isinstance(body, dict) and content_type != "application/x-www-form-urlencoded":
            raw, content_type = json.dumps(body).encode(), content_type or "application/json"
        elif isinstance(body, dict):
            raw = urlencode(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        if content_type:
            request_headers["content-type"] = content_type
        raw_query = urlencode(query) if isinstance(query, dict) else (query or "")
        event = http_api_event(method, path, raw_query, request_headers, raw, source_ip,
                               route_key="ANY /v1/{proxy+}", path_parameters={"proxy": path[len("/v1/"):]})
        answer = self.handler.handler(event, self.context)
        return Answer(answer["statusCode"], {k.lower(): v for k, v in (answer.get("headers") or {}).items()},
                      json.loads(answer["body"]) if answer.get("body") else {})

    @staticmethod
    def secret(name: str) -> str:
        return KEYS[name][0]

    def reload(self) -> None:
        """A cold start: the handler reads its environment again."""
        self.handler = self.loader("merchant_api")

    def record(self, subscription_id: str) -> dict[str, Any] | None:
        return self.ops.subscription(subscription_id)


@pytest.fixture
def merchant_api(ops, monkeypatch, handler_loader, lambda_context) -> MerchantApiStack:
    from billops.merchant_api.api_keys import ApiKeysTable, register_key
    from billops.upgrade_page.upgrade_links import reset_signing_keys
    from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

    endpoint = ops.tables.endpoint_url
    secret_arn = aws_client("secretsmanager", endpoint).describe_secret(
        SecretId=LOCAL_PREFIX + "UpgradeLinkSigningSecret")["ARN"]
    for name, value in {
        **client_environment(endpoint, ops.sandbox, LOCAL_UPGRADE_KEY),
        "BILLOPS_API_KEYS_TABLE": KEYS_TABLE,
        "BILLOPS_UPGRADE_LINK_SECRET_ARN": secret_arn,
        "BILLOPS_PUBLIC_BASE_URL": "https://billing.example.test",
        "BILLOPS_API_AUTH_FAILURE_LIMIT": "3",
    }.items():
        monkeypatch.setenv(name, value)
    reset_upgrade_configuration()
    reset_signing_keys()
    table = ApiKeysTable(KEYS_TABLE, aws_client("dynamodb", endpoint))
    for name, (secret, scopes) in KEYS.items():
        register_key(table, secret, name, scopes, key_id=f"key_{name}")
    # The worker and the reconciliation job read the client settings again (the catalogue now has the upgrade key).
    ops.reload("operation_worker", "reconciliation")
    stack = MerchantApiStack(ops, handler_loader("merchant_api"), lambda_context, handler_loader, KEYS_TABLE)
    yield stack
    reset_upgrade_configuration()
    reset_signing_keys()
