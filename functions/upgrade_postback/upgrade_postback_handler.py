"""POST /postbacks/ccbill/upgrade/{outcome}: the Subscription Upgrade System's Approval / Denial Background Posts.

Thin: route, then billops.webhooks.upgrade_postbacks decides (the wiring is billops.composition, the JSON answers
and observability billops.composition.http). The body (personal data) and the query string (the token) are never
logged.
"""

from aws_lambda_powertools.event_handler import Response

from billops.composition.functions import upgrade_postbacks_from_env
from billops.composition.http import json_resolver, json_response, lambda_entry, observability
from billops.webhooks.intake import WebhookRequest

logger, metrics, count = observability()
app = json_resolver(logger, "the upgrade postback receiver")
postbacks = upgrade_postbacks_from_env(on_metric=count)


@app.post("/postbacks/ccbill/upgrade/<outcome>")
def receive_upgrade_postback(outcome: str) -> Response:
    result = postbacks.receive(outcome, WebhookRequest.from_http_api_event(app.current_event.raw_event))
    for name in result.metrics:
        count(name)
    logger.info("upgrade postback answered", extra={"outcome": result.outcome, "status": result.status,
                                                    "operation_id": result.operation_id})
    return json_response(result.status, result.body)


handler = lambda_entry(app, logger, metrics)
