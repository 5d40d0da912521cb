"""POST /webhooks/ccbill: where every CCBill webhook enters.

Thin by design: route and hand the request to billops.webhooks.intake, which decides the answer (the wiring is
billops.composition, the JSON answers and observability billops.composition.http). Neither the event nor the query
string is ever logged: the query carries the webhook token and the body carries subscribers' personal data.

What a delivery costs in CloudWatch Logs is paid on every webhook, so the common case writes nothing of ours: an
accepted delivery is logged at DEBUG (dropped at the template's default level) and publishes no metric (the access
log's metric filter counts the 200s); a duplicate is logged at DEBUG and counted (WebhookDuplicate: CCBill sent it
again); rejections, quarantines, unknown types, deliveries with fields stored as received (WebhookFieldWarnings)
and storage failures are logged at WARNING and counted.
"""

from billops.cold_start import container_init, first_invocation

# The collector waits while the container's init and first invocation run (billops.cold_start: ~30 ms of the
# import's CPU, ~8 ms of the first delivery's).
with container_init():
    from aws_lambda_powertools.event_handler import Response

    from billops.composition.functions import webhook_intake_from_env
    from billops.composition.http import json_resolver, json_response, lambda_entry, observability
    from billops.webhooks.intake import WebhookRequest

    logger, metrics, count = observability()
    app = json_resolver(logger, "the webhook receiver")
    intake = webhook_intake_from_env()

QUIET_OUTCOMES = frozenset({"accepted", "duplicate"})


@app.post("/webhooks/ccbill")
def receive_ccbill_webhook() -> Response:
    result = intake.receive(WebhookRequest.from_http_api_event(app.current_event.raw_event))
    for name in result.metrics:
        count(name)
    level = "debug" if result.outcome in QUIET_OUTCOMES and not result.field_warnings else "warning"
    # Keys are keyed hashes or CCBill IDs (billops.webhooks.delivery_keys): they reveal no personal data. Fields
    # stored as received are named, never their values.
    getattr(logger, level)("webhook answered", extra={"outcome": result.outcome, "status": result.status,
                                                      "event_type": result.event_type, "delivery_key": result.key,
                                                      "fields_with_warnings": list(result.field_warnings) or None})
    return json_response(result.status, result.body)


handler = first_invocation(lambda_entry(app, logger, metrics))
