"""POST /webhooks/ccbill: where every CCBill webhook enters.

Thin by design: wire logging and metrics, route, and hand the request to billops.webhooks.intake, which decides
the answer. Neither the event nor the query string is ever logged: the query carries the webhook token and the
body carries subscribers' personal data.

What a delivery costs in CloudWatch Logs is paid on every webhook, so the common case writes nothing of ours: an
accepted delivery is logged at DEBUG (dropped at the template's default level) and publishes no metric (the access
log's metric filter counts the 200s); a duplicate is logged at DEBUG and counted (WebhookDuplicate: CCBill sent it
again); rejections, quarantines, unknown types, deliveries with fields stored as received (WebhookFieldWarnings)
and storage failures are logged at WARNING and counted.
"""

import warnings

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
# An invocation without metrics is the norm here, not a mistake worth a warning line.
warnings.filterwarnings("ignore", message="No application metrics to publish")
_settings = get_settings()
intake = WebhookIntake(_settings, EventsTable(_settings.events_table))
QUIET_OUTCOMES = frozenset({"accepted", "duplicate"})


@app.post("/webhooks/ccbill")
def receive_ccbill_webhook() -> Response:
    result = intake.receive(WebhookRequest.from_http_api_event(app.current_event.raw_event))
    for name in result.metrics:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    level = "debug" if result.outcome in QUIET_OUTCOMES and not result.field_warnings else "warning"
    # Keys are keyed hashes or CCBill IDs (billops.webhooks.delivery_keys): they reveal no personal data. Fields
    # stored as received are named, never their values.
    getattr(logger, level)("webhook answered", extra={"outcome": result.outcome, "status": result.status,
                                                      "event_type": result.event_type, "delivery_key": result.key,
                                                      "fields_with_warnings": list(result.field_warnings) or None})
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

