"""Settings of the operations functions (docs/operations.md lists them): the model lives with every other setting,
in billops.settings.operations; its names stay importable from here."""

from __future__ import annotations

from collections.abc import Mapping

from billops.settings.operations import OperationSettings


def operation_settings_from_env(env: Mapping[str, str] | None = None) -> OperationSettings:
    return OperationSettings.from_env(env)


__all__ = ["OperationSettings", "operation_settings_from_env"]
