"""``GET /v1/reports/summary`` and ``GET /v1/reports/daily``: the daily figures (billops.reports) of a range of days.

Query: ``from`` and ``to`` (``YYYY-MM-DD``, UTC days, both included, at most 366 days), optional ``client_subacc``
(every subaccount otherwise). Scope ``read``. Documents: billops.reports.report_documents; guide: docs/reports.md.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_authentication import require_scope
from billops.merchant_api.api_keys import READ, ApiKey
from billops.merchant_api.api_service import Answer
from billops.merchant_api.request_bodies import parse_query
from billops.storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)

PARAMETERS = ("from", "to", "client_subacc")
MAX_RANGE_DAYS = 366
FIRST_YEAR, LAST_YEAR = 2000, 2099
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SUBACC = re.compile(r"^\d{1,4}$")


def _day(text: str | None, param: str) -> date:
    if not text:
        raise failures.param_wrong_value(f"{param} is required: a day as YYYY-MM-DD.", param)
    try:
        day = date.fromisoformat(text) if _DAY.match(text) else None
    except ValueError:
        day = None
    if day is None or not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise failures.param_wrong_value(f"{param} must be a day as YYYY-MM-DD, from {FIRST_YEAR} to {LAST_YEAR}.",
                                         param)
    return day


class ReportRoutes:
    def __init__(self, reader: Any, currency: str) -> None:
        self.reader = reader
        """billops.reports.report_reading.ReportReader, or None when the stack has no reports table."""
        self.currency = currency

    @classmethod
    def from_env(cls, dynamodb: Any = None) -> ReportRoutes:
        from billops.reports.report_reading import ReportReader
        from billops.reports.report_settings import report_settings_from_env
        from billops.storage.reports_table import ReportsTable

        settings = report_settings_from_env()
        reader = ReportReader(ReportsTable(settings.reports_table, dynamodb)) if settings.enabled else None
        return cls(reader, settings.currency)

    def _read(self, key: ApiKey, raw_query: str | None) -> tuple[Any, str | None]:
        require_scope(key, READ)
        query = parse_query(raw_query, PARAMETERS)
        start, end = _day(query.get("from"), "from"), _day(query.get("to"), "to")
        if end < start:
            raise failures.param_wrong_value("to must not be before from.", "to")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise failures.param_wrong_value(f"A report covers at most {MAX_RANGE_DAYS} days.", "to")
        subacc = query.get("client_subacc") or None
        if subacc is not None and not _SUBACC.match(subacc):
            raise failures.param_wrong_value("client_subacc must be up to 4 digits.", "client_subacc")
        subacc = subacc.zfill(4) if subacc else None
        if self.reader is None:
            raise failures.not_found("This stack keeps no report figures (BILLOPS_REPORTS_TABLE is not set).")
        try:
            return self.reader.read(start, end, subacc), subacc
        except StorageUnavailable:
            logger.exception("the report figures could not be read")
            raise failures.service_unavailable() from None

    def summary(self, key: ApiKey, raw_query: str | None) -> Answer:
        from billops.reports.report_documents import summary_document

        data, subacc = self._read(key, raw_query)
        return Answer(200, summary_document(data, self.currency, subacc))

    def daily(self, key: ApiKey, raw_query: str | None) -> Answer:
        from billops.reports.report_documents import daily_documents

        data, subacc = self._read(key, raw_query)
        return Answer(200, daily_documents(data, self.currency, subacc))
