"""Settings of the merchant API, from BILLOPS_API_* environment variables (docs/merchant-api.md lists them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_KEYS_TABLE = "billops-api-keys"


@dataclass(frozen=True)
class ApiSettings:
    environment: str = "local"
    keys_table: str = DEFAULT_KEYS_TABLE
    key_cache_seconds: float = 60.0
    """How long a container trusts what it read of a key (a revoked key keeps working this long, at most)."""
    failure_limit: int = 10
    """Authentication failures one source may make per window before it is answered 429."""
    failure_window_seconds: int = 300
    max_body_bytes: int = 64 * 1024
    events_lookback_days: int = 7
    """GET /v1/events looks this many days back by default (``days`` changes it, up to 31)."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        return max(float(text), minimum)
    except ValueError:
        return default


def api_settings_from_env(env: Mapping[str, str] | None = None) -> ApiSettings:
    env = os.environ if env is None else env
    environment = (env.get("BILLOPS_ENV") or "local").strip() or "local"
    return ApiSettings(
        environment=environment,
        # Fail closed: in AWS a missing BILLOPS_API_KEYS_TABLE means no key is valid (every request is refused),
        # never a lookup in some other table that happens to carry the default name.
        keys_table=(env.get("BILLOPS_API_KEYS_TABLE") or "").strip()
        or (DEFAULT_KEYS_TABLE if environment == "local" else ""),
        key_cache_seconds=_number(env, "BILLOPS_API_KEY_CACHE_SECONDS", 60.0, 0.0),
        failure_limit=int(_number(env, "BILLOPS_API_AUTH_FAILURE_LIMIT", 10, 1)),
        failure_window_seconds=int(_number(env, "BILLOPS_API_AUTH_FAILURE_WINDOW_SECONDS", 300, 1)),
        max_body_bytes=int(_number(env, "BILLOPS_API_MAX_BODY_BYTES", 64 * 1024, 1024)),
        events_lookback_days=int(_number(env, "BILLOPS_API_EVENTS_LOOKBACK_DAYS", 7, 1)),
    )
