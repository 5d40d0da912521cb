"""Settings of the daily figures: the model lives with every other setting, in billops.settings.reports (the
variables are listed there and in billops.settings.registry); its names stay importable from here."""

from __future__ import annotations

from collections.abc import Mapping

from billops.settings.reports import ReportSettings


def report_settings_from_env(env: Mapping[str, str] | None = None) -> ReportSettings:
    """The report settings read from ``env`` (default: os.environ); SettingsError names every wrong variable."""
    return ReportSettings.from_env(env)


__all__ = ["ReportSettings", "report_settings_from_env"]
