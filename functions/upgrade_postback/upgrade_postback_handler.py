"""POST /postbacks/ccbill/upgrade/{outcome}: the Subscription Upgrade System's Approval / Denial Background Posts.

Thin: route, then billops.webhooks.upgrade_postbacks decides. The body (personal data) and the query string (the
token) are never logged.
"""

import json

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from billops.api_errors import internal_error, resource_not_found
from billops.webhooks.upgrade_postbacks import UpgradePostbacks
from billops.operations.wiring import build_services
from billops.settings import get_settings
from billops.webhooks.intake import WebhookRequest

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


services = build_services(on_metric=_count)
postbacks = UpgradePostbacks(get_settings(), services.settler)


@app.post("/postbacks/ccbill/upgrade/<outcome>")
def receive_upgrade_postback(outcome: str) -> Response:
    result = postbacks.receive(outcome, WebhookRequest.from_http_api_event(app.current_event.raw_event))
    for name in result.metrics:
        _count(name)
    logger.info("upgrade postback answered", extra={"outcome": result.outcome, "status": result.status,
                                                    "operation_id": result.operation_id})
    return _json(result.status, result.body)


@app.not_found
def not_found(_: Exception) -> Response:
    error = resource_not_found("No such route.")
    return _json(error.status, error.body())


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    logger.exception("unexpected error in the upgrade postback receiver")
    failure = internal_error()
    return _json(failure.status, failure.body())


def _json(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
