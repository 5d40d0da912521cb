"""Each function's objects, built from its environment once per container (its cold start). A function's settings
are read here (billops.settings), and its tables, queues and clients are chosen here, so a handler imports no
storage module and names no variable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def webhook_intake_from_env() -> Any:
    """POST /webhooks/ccbill: webhook intake over the events table."""
    from billops.settings import get_settings
    from billops.storage.events_table import EventsTable
    from billops.webhooks.intake import WebhookIntake

    settings = get_settings()
    return WebhookIntake(settings, EventsTable(settings.events_table))


def upgrade_postbacks_from_env(on_metric: Callable[[str], None]) -> Any:
    """POST /postbacks/ccbill/upgrade/{outcome}: CCBill's upgrade Approval / Denial posts, settling operations."""
    from billops.webhooks.upgrade_postbacks import UpgradePostbacks
    from billops.operations.wiring import build_services
    from billops.settings import get_settings

    return UpgradePostbacks(get_settings(), build_services(on_metric=on_metric).settler)


def upgrade_page_from_env(submit: Callable[[dict], None]) -> Any:
    """GET /upgrade/{token}: the consumer's upgrade page; ``submit`` queues a late consumer's second post."""
    from billops.operations.operation_settings import operation_settings_from_env
    from billops.operations.subscription_facts_store import SubscriptionFactsStore
    from billops.settings import get_settings
    from billops.storage.operations_table import OperationsTable
    from billops.storage.subscriptions_table import SubscriptionsTable
    from billops.upgrade_page.consumer_page import UpgradePage, min_window_remaining_for
    from billops.upgrade_page.upgrade_links import ContainerSigningKeys
    from billops.upgrade_page.upgrade_offers import upgrade_configuration

    operations = operation_settings_from_env()
    subscriptions = SubscriptionsTable(get_settings().subscriptions_table)
    return UpgradePage(keys=ContainerSigningKeys(), subscriptions=subscriptions,
                       operations=OperationsTable(operations.operations_table), configuration=upgrade_configuration,
                       sales_from=SubscriptionFactsStore(subscriptions).sales_from, submit=submit,
                       min_window_remaining=min_window_remaining_for(operations.upgrade_window_seconds))


def merchant_api_routes_from_env(app: Any, logger: Any, count: Callable[[str], None]) -> list[tuple[str, str]]:
    """/v1/...: the merchant API's routes registered on ``app`` (its resolver); returns their (method, path)."""
    from billops.merchant_api.api_service import MerchantApi
    from billops.merchant_api.http_routes import register_routes
    from billops.merchant_api.report_routes import ReportRoutes

    return register_routes(app, MerchantApi.from_env(on_metric=count), ReportRoutes.from_env(), logger, count)
