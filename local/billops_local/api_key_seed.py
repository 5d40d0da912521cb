"""The local stack's merchant API key: ``BILLOPS_API_KEY`` (default ``local-api-key``), stored hashed in the keys table
at start-up with every scope (read, write, pii), so ``curl -u local-api-key: http://127.0.0.1:3000/v1/...`` works
out of the box. Other keys are created with the CLI or ``billops.merchant_api.api_keys.create_key``.

``add_to_stack(stack)`` (called from ``billops_local.stack.build_stack``) registers the service; it runs after the
resources exist and before the event sources start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_API_KEY = "local-api-key"
"""The documented local default: a test key only, never valid anywhere but the local stack."""
API_KEY_VARIABLE = "BILLOPS_API_KEY"
KEYS_TABLE_VARIABLE = "BILLOPS_API_KEYS_TABLE"
LOCAL_KEY_ID = "key_local"


class ApiKeySeed:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self.table_name: str | None = None

    @property
    def api_key(self) -> str:
        return (self._env.get(API_KEY_VARIABLE) or "").strip() or DEFAULT_API_KEY

    def start(self, stack: Any) -> None:
        from billops.merchant_api.api_keys import PII, READ, WRITE, ApiKeysTable, register_key

        from billops_local.aws_environment import aws_client

        # The table a function reads as BILLOPS_API_KEYS_TABLE (the template's !Ref ApiKeysTable, resolved).
        table_name = os.environ.get(KEYS_TABLE_VARIABLE)
        if not table_name:
            return  # a template without the merchant API: nothing to seed
        table = ApiKeysTable(table_name, aws_client("dynamodb", stack.aws_endpoint))
        register_key(table, self.api_key, "local stack (BILLOPS_API_KEY)", (READ, WRITE, PII), key_id=LOCAL_KEY_ID)
        self.table_name = table_name

    def describe(self) -> str:
        if self.table_name is None:
            return "no keys table in the template"
        shown = "the default local-api-key" if self.api_key == DEFAULT_API_KEY else f"${API_KEY_VARIABLE}"
        return f"{shown} (read, write, pii) in {self.table_name}: curl -u <key>: <api>/v1/subscriptions"


def add_to_stack(stack: Any, env: Mapping[str, str] | None = None) -> ApiKeySeed:
    seed = ApiKeySeed(env)
    stack.add_service("api-key-seed", seed.start, description=seed.describe)
    return seed
