"""GET /upgrade/{token}: the consumer's upgrade page (HTML), public - the signed token is the only credential.

Thin: route, then billops.upgrade_page.consumer_page decides. The token (the path) is never logged: the access log
has the route key only, and this handler logs the outcome, not the request.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from billops.operations.operation_settings import operation_settings_from_env
from billops.operations.subscription_facts_store import SubscriptionFactsStore
from billops.settings import get_settings
from billops.storage.operations_table import OperationsTable
from billops.storage.subscriptions_table import SubscriptionsTable
from billops.upgrade_page.consumer_page import (
    PageResult,
    UpgradePage,
    message,
    min_window_remaining_for,
    temporarily_unavailable,
)
from billops.upgrade_page.upgrade_links import ContainerSigningKeys
from billops.upgrade_page.upgrade_offers import upgrade_configuration

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

subscriptions = SubscriptionsTable(get_settings().subscriptions_table)


def submit_operation(message: dict) -> None:
    """The second allowUpgrade post for a late consumer: recorded, then queued (a failed send is logged; the page's
    next load sends it again)."""
    from billops.operations.operation_submission import NotQueued, record_and_queue

    try:
        record_and_queue(message)
    except NotQueued:
        logger.warning("the repeated allowUpgrade is recorded but not queued yet")


page = UpgradePage(
    keys=ContainerSigningKeys(),
    subscriptions=subscriptions,
    operations=OperationsTable(operation_settings_from_env().operations_table),
    configuration=upgrade_configuration,
    sales_from=SubscriptionFactsStore(subscriptions).sales_from,
    submit=submit_operation,
    min_window_remaining=min_window_remaining_for(operation_settings_from_env().upgrade_window_seconds),
)

METRIC_NAMES = {
    "shown": "UpgradePageShown",
    "preparing": "UpgradePagePreparing",
    "invalid": "UpgradeLinkInvalid",
    "expired": "UpgradeLinkExpired",
    "unavailable": "UpgradePageUnavailable",
    "used": "UpgradeLinkUsed",
    "error": "UpgradePageErrors",
}


@app.get("/upgrade/<token>")
def upgrade_page(token: str) -> Response:
    return _html(page.render(token))


@app.not_found
def not_found(_: Exception) -> Response:
    return _html(message(404, "invalid", "Page not found", "There is nothing at this address."))


@app.exception_handler(Exception)
def unexpected(_: Exception) -> Response:
    logger.exception("unexpected error on the upgrade page")
    return _html(temporarily_unavailable(), status=500)


def _html(result: PageResult, status: int | None = None) -> Response:
    metrics.add_metric(name=METRIC_NAMES.get(result.outcome, "UpgradePageErrors"), unit=MetricUnit.Count, value=1)
    logger.info("upgrade page answered", extra={"outcome": result.outcome, "status": status or result.status,
                                                "operation_id": result.operation_id})
    headers = dict(result.headers)
    content_type = headers.pop("Content-Type")
    return Response(status_code=status or result.status, content_type=content_type, body=result.html,
                    headers=headers)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
