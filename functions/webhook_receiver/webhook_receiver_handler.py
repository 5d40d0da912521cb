"""POST /webhooks/ccbill: where every CCBill webhook enters.

Thin by design: wire logging and metrics, route, and hand the request to billops.webhooks.intake, which decides
the answer. Neither the event nor the query string is ever logged: the query carries the webhook token and the
body carries subscribers' personal data.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from billops.api_errors import internal_error, resource_not_found
from billops.settings import get_settings
from billops.storage.events_table import EventsTable
from billops.webhooks.intake import WebhookIntake, WebhookRequest

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()
_settings = get_settings()
intake = WebhookIntake(_settings, EventsTable(_settings.events_table))


@app.post("/webhooks/ccbill")
def receive_ccbill_webhook() -> Response:
    result = intake.receive(WebhookRequest.from_http_api_event(app.current_event.raw_event))
    for name in result.metrics:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("webhook answered", extra={"outcome": result.outcome, "status": result.status,
                                            "event_type": result.event_type, "delivery_key": result.key})
    return _json(result.status, result.body)


@app.not_found
def not_found(_: Exception) -> Response:
    error = resource_not_found("No such route.")
    return _json(error.status, error.body())


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    logger.exception("unexpected error in the webhook receiver")
    failure = internal_error()
    return _json(failure.status, failure.body())


def _json(status: int, body: dict) -> Response:
    import json

    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)

