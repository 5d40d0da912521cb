"""The upgrade page's handler against moto (the template's resources) and a real CCBill sandbox that knows the
upgrade key, next to the operations stack of tests/integration/operations (its fixtures are reused as they are)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from billops_local.aws_environment import aws_client
from billops_local.ccbill_sandbox import start_sandbox
from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY, client_environment
from billops_local.http_api_events import http_api_event
from billops_local.template_resources import LOCAL_PREFIX

_OPERATIONS_CONFTEST = Path(__file__).resolve().parents[1] / "operations" / "conftest.py"
_spec = importlib.util.spec_from_file_location("operations_fixtures_for_upgrade_page", _OPERATIONS_CONFTEST)
_operations = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _operations  # dataclasses look their module up while it is being executed
_spec.loader.exec_module(_operations)

ops = _operations.ops
webhook_capture = _operations.webhook_capture
PUBLIC_BASE_URL = "https://billing.example.test"


@pytest.fixture
def sandbox(webhook_capture):
    """The operations stack's sandbox, plus the upgrade key, so it can read `enc` as CCBill would."""
    handle = start_sandbox("127.0.0.1", 0, webhook_capture.url, "json", webhook_retry_delays=(0.05, 0.1),
                           upgrade_key=LOCAL_UPGRADE_KEY)
    yield handle
    handle.stop()


@dataclass
class UpgradePageStack:
    ops: Any
    handler: Any
    context: Any
    secret_arn: str

    def use_backend_post(self) -> None:
        """The deployment and the sandbox's accounts switch to the Security Type backend_post (allowUpgrade)."""
        import os

        from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

        os.environ["BILLOPS_UPGRADE_SECURITY"] = "backend_post"  # the fixture's monkeypatch puts it back
        reset_upgrade_configuration()
        self.ops.sandbox.set_upgrade_security("backend_post", ("127.0.0.1/32",))

    def get(self, token: str, path: str | None = None) -> dict[str, Any]:
        path = path or f"/upgrade/{token}"
        event = http_api_event("GET", path, "", {"accept": "text/html"}, None, "198.51.100.7",
                               route_key="GET /upgrade/{token}", path_parameters={"token": token})
        answer = self.handler.handler(event, self.context)
        return {"status": answer["statusCode"], "headers": answer.get("headers") or {}, "html": answer["body"]}


@pytest.fixture
def upgrade_page(ops, monkeypatch, handler_loader, lambda_context) -> UpgradePageStack:
    from billops.upgrade_page.upgrade_links import reset_signing_keys
    from billops.upgrade_page.upgrade_offers import reset_upgrade_configuration

    endpoint = ops.tables.endpoint_url
    secret_arn = aws_client("secretsmanager", endpoint).describe_secret(
        SecretId=LOCAL_PREFIX + "UpgradeLinkSigningSecret")["ARN"]
    for name, value in {
        **client_environment(endpoint, ops.sandbox, LOCAL_UPGRADE_KEY),
        "BILLOPS_UPGRADE_LINK_SECRET_ARN": secret_arn,
        "BILLOPS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "BILLOPS_UPGRADE_SECURITY": "encryption",  # enc links; allow_upgrade tests call use_backend_post()
    }.items():
        monkeypatch.setenv(name, value)
    ops.sandbox.set_upgrade_security("encryption")
    reset_upgrade_configuration()
    reset_signing_keys()
    handler = handler_loader("upgrade_page")
    yield UpgradePageStack(ops, handler, lambda_context, secret_arn)
    reset_upgrade_configuration()
    reset_signing_keys()
