"""Settings of the merchant API (BILLOPS_API_*; docs/merchant-api.md lists them): the model lives with every other
setting, in billops.settings.merchant_api; its names stay importable from here."""

from __future__ import annotations

from collections.abc import Mapping

from billops.settings.merchant_api import DEFAULT_KEYS_TABLE, ApiSettings


def api_settings_from_env(env: Mapping[str, str] | None = None) -> ApiSettings:
    return ApiSettings.from_env(env)


__all__ = ["DEFAULT_KEYS_TABLE", "ApiSettings", "api_settings_from_env"]
