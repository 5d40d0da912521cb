"""GET /upgrade/{token}: the consumer's upgrade page (HTML), public - the signed token is the only credential.

Thin: route, then billops.upgrade_page.consumer_page decides (the wiring is billops.composition). The token (the
path) is never logged: the access log has the route key only, and this handler logs the outcome, not the request.
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from billops.composition.functions import upgrade_page_from_env
from billops.composition.http import lambda_entry, observability
from billops.upgrade_page.consumer_page import PageResult, message, temporarily_unavailable

logger, metrics, count = observability()
app = APIGatewayHttpResolver()
METRIC_NAMES = {"shown": "UpgradePageShown", "preparing": "UpgradePagePreparing", "invalid": "UpgradeLinkInvalid",
                "expired": "UpgradeLinkExpired", "unavailable": "UpgradePageUnavailable", "used": "UpgradeLinkUsed",
                "error": "UpgradePageErrors"}


def submit_operation(message: dict) -> None:
    """The second allowUpgrade post for a late consumer: recorded, then queued (a failed send is logged; the page's
    next load sends it again)."""
    from billops.operations.operation_submission import NotQueued, record_and_queue

    try:
        record_and_queue(message)
    except NotQueued:
        logger.warning("the repeated allowUpgrade is recorded but not queued yet")


page = upgrade_page_from_env(submit=submit_operation)


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
    count(METRIC_NAMES.get(result.outcome, "UpgradePageErrors"))
    logger.info("upgrade page answered", extra={"outcome": result.outcome, "status": status or result.status,
                                                "operation_id": result.operation_id})
    headers = dict(result.headers)
    return Response(status_code=status or result.status, content_type=headers.pop("Content-Type"),
                    body=result.html, headers=headers)


handler = lambda_entry(app, logger, metrics)
