"""What every HTTP function shares: its observability (Powertools Logger and Metrics, a counter, the Lambda entry
point that injects the context and flushes the metrics) and its JSON answers in ChargeBee's error model
(billops.api_errors): an unknown route is a 404 ``resource_not_found``, an unexpected exception a logged 500
``internal_error`` with no detail (the cause is in the log, never in the answer to a stranger).

A handler builds its resolver with ``json_resolver`` and exports ``lambda_entry(app, logger, metrics)``; routes
answer with ``json_response`` / ``error_response``. Neither the event, the query string (a token) nor a body
(personal data) is ever logged here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types

from billops.api_errors import ApiError, internal_error, resource_not_found
from billops.composition.observability import observability

# An invocation without metrics is the norm for a quiet webhook, not a mistake worth a warning line.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers=headers or None)


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return json_response(error.status, error.body(), headers)


def json_resolver(logger: Logger, what: str, resolver: APIGatewayHttpResolver | None = None,
                  on_unexpected: Callable[[], None] | None = None) -> APIGatewayHttpResolver:
    """``resolver`` (a new APIGatewayHttpResolver by default) answering unknown routes and unexpected errors in
    JSON; ``what`` names the function in the log line of an unexpected error. A handler may register its own
    ``not_found`` afterwards (the merchant API's 405s)."""
    app = resolver or APIGatewayHttpResolver()

    @app.not_found
    def not_found(_: Exception) -> Response:
        return error_response(resource_not_found("No such route."))

    @app.exception_handler(Exception)
    def unexpected(_: Exception) -> Response:
        logger.exception(f"unexpected error in {what}")
        if on_unexpected is not None:
            on_unexpected()
        return error_response(internal_error())

    return app


def lambda_entry(app: Any, logger: Logger, metrics: Metrics,
                 before: Callable[[dict], None] | None = None) -> Callable[[dict, object], dict]:
    """The function's handler: Lambda context in every log line, metrics flushed, ``app`` resolves the event."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def handler(event: dict, context: object) -> dict:
        if before is not None:
            before(event)
        return app.resolve(event, context)

    return handler


__all__ = ["error_response", "json_resolver", "json_response", "lambda_entry", "observability"]
