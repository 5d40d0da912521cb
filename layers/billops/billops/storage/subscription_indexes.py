"""Reads of the subscriptions table's indexes that the operations need (the table's items: subscriptions_table.py).

* ``sales_from``: the subscriptions sold as upgrades/up-sales of one (GSI ``by_original_subscription``,
  original_subscription_id + signed_up_at) - None when the table has no such index;
* ``stale_subscriptions``: subscriptions of some statuses whose last CCBill view is older than a cutoff (GSI
  ``by_status_created``, which projects ``ccbill_view``), bounded work per call.
"""

from __future__ import annotations

import logging
from typing import Any

from billops.storage.errors import StorageUnavailable
from billops.storage.paging import every_item
from billops.storage.subscriptions_table import SubscriptionsTable

logger = logging.getLogger(__name__)

BY_ORIGINAL_SUBSCRIPTION = "by_original_subscription"
BY_STATUS = "by_status_created"
_NO_INDEX = ("ValidationException", "ResourceNotFoundException")


def sales_from(table: SubscriptionsTable, original_subscription_id: str) -> list[dict[str, Any]] | None:
    """Subscriptions sold as upgrades/up-sales of ``original_subscription_id``; None if the index is missing."""
    request = {
        "TableName": table.table_name,
        "IndexName": BY_ORIGINAL_SUBSCRIPTION,
        "KeyConditionExpression": "original_subscription_id = :original",
        "ExpressionAttributeValues": {":original": {"S": original_subscription_id}},
    }
    try:
        # A bounded record's history (which sale made it) is in the history table (issue 14).
        return [table.with_history(item)
                for item in every_item(table.client.query, request, failure="DynamoDB query failed")]
    except StorageUnavailable as error:
        code = (getattr(error.__cause__, "response", None) or {}).get("Error", {}).get("Code")
        if code in _NO_INDEX:
            logger.warning("the subscriptions table has no %s index; upgrades are settled by the projector's "
                           "webhook hook only", BY_ORIGINAL_SUBSCRIPTION)
            return None
        raise


def stale_subscriptions(table: SubscriptionsTable, statuses: tuple[str, ...], cutoff: str, limit: int, *,
                        max_pages: int = 10) -> list[str]:
    """IDs of subscriptions in ``statuses`` whose ``ccbill_view.refreshed_at`` is older than ``cutoff`` (or absent):
    at most ``limit``, reading at most ``max_pages`` pages per status (bounded work per run)."""
    found: list[str] = []
    for status in statuses:
        request = {
            "TableName": table.table_name,
            "IndexName": BY_STATUS,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
            "ProjectionExpression": "subscription_id, ccbill_view",
        }
        for item in every_item(table.client.query, request, failure="DynamoDB query failed", max_pages=max_pages):
            refreshed = str((item.get("ccbill_view") or {}).get("refreshed_at") or "")
            if refreshed < cutoff:
                found.append(str(item["subscription_id"]))
                if len(found) >= limit:
                    return found
    return found
