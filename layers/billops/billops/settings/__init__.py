"""The project's settings: every BILLOPS_* variable, read by one parser (billops.settings.base) into typed models.

* ``base``: the rules (blank = default, anything else must parse, one SettingsError naming every wrong variable,
  defaults fail closed without ``BILLOPS_ENV=local``) and ``load(Model, env=None)``;
* ``webhooks``, ``privacy``, ``ccbill``, ``operations``, ``merchant_api``, ``upgrade_links``, ``reports``: the groups;
* ``functions``: each function's settings (the groups it reads), checked at its cold start;
* ``registry``: every variable and where a deployed stack's value comes from (template resource, parameter...).

This module keeps the webhook path's names (``Settings``, ``settings_from_env``, ``get_settings``) importable from
``billops.settings`` and imports nothing else, so the receiver's cold start loads only what it reads.
"""

from __future__ import annotations

from functools import lru_cache

from billops.settings.base import SettingsError, load
from billops.settings.webhooks import (
    CCBILL_WEBHOOK_CIDRS,
    DEFAULT_MAX_BODY_BYTES,
    LOOPBACK_CIDR,
    Settings,
    settings_from_env,
)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The webhook path's settings for this process (the CLI, tests); functions get theirs from their composition
    root. Tests that change the environment call get_settings.cache_clear()."""
    return settings_from_env()


__all__ = ["CCBILL_WEBHOOK_CIDRS", "DEFAULT_MAX_BODY_BYTES", "LOOPBACK_CIDR", "Settings", "SettingsError",
           "get_settings", "load", "settings_from_env"]
