"""The merchant API's routes on a Powertools resolver (docs/merchant-api.md): ``register_routes`` authenticates
(a middleware, for every route but the OpenAPI document), routes, hands the parts of the request to
billops.merchant_api.api_service.MerchantApi (or ReportRoutes), and turns its answer or error into JSON
(billops.composition.http). Unknown paths are 404 and known paths with another method 405 (with ``Allow``), in
ChargeBee's error model. Neither the Authorization header nor a body is ever logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types

from billops.api_errors import ApiError
from billops.composition.http import error_response, json_response
from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_authentication import require_scope
from billops.merchant_api.api_keys import WRITE
from billops.merchant_api.openapi import openapi_document_text
from billops.merchant_api.request_bodies import parse_body, parse_query

OPENAPI_PATH = "/v1/openapi.json"
OPERATION_TYPES = ("discount", "upgrade", "cancel", "extend", "refund", "void")
"""The operations requested by ``POST /v1/subscriptions/{subscription_id}/<type>``."""


def register_routes(app: APIGatewayHttpResolver, api: Any, reports: Any, logger: Any,
                    count: Callable[[str], None]) -> list[tuple[str, str]]:
    """Register every route of the merchant API on ``app`` (built by billops.composition.http.json_resolver), with
    ``api`` (MerchantApi) and ``reports`` (ReportRoutes) answering; returns the (method, path) of every route, in
    OpenAPI's path syntax (tests compare it with the OpenAPI document)."""
    routes: list[tuple[str, str]] = []

    def route(method: str, path: str, answer: Callable[..., Response]) -> None:
        routes.append((method, path))
        app.route(re.sub(r"\{(\w+)\}", r"<\1>", path), method=method)(answer)

    def key():
        return app.context["api_key"]

    def query() -> str:
        return app.current_event.raw_event.get("rawQueryString") or ""

    def headers() -> dict:
        return {str(name).lower(): str(value) for name, value in (app.current_event.headers or {}).items()}

    def body() -> dict:
        # Only the write routes read a body: a key that may not write is refused before its body is even parsed
        # (a stranger's body costs nothing, and cannot turn a 403 into anything else).
        require_scope(key(), WRITE)
        event = app.current_event.raw_event
        return parse_body(event.get("body"), bool(event.get("isBase64Encoded")), headers().get("content-type"),
                          api.settings.max_body_bytes)

    def no_query() -> None:
        """POST parameters travel in the body; a query string on a POST is a mistake worth telling."""
        parse_query(query(), ())

    def answered(answer) -> Response:
        return json_response(answer.status, answer.body, answer.headers)

    def authenticate(app: APIGatewayHttpResolver, next_middleware):
        if app.current_event.path == OPENAPI_PATH and app.current_event.http_method.upper() == "GET":
            return next_middleware(app)
        source_ip = app.current_event.request_context.http.source_ip
        app.append_context(api_key=api.authenticate(headers().get("authorization"), source_ip))
        return next_middleware(app)

    app.use(middlewares=[authenticate])

    route("GET", OPENAPI_PATH, lambda: Response(status_code=200, content_type=content_types.APPLICATION_JSON,
                                                body=openapi_document_text()))
    route("GET", "/v1/subscriptions", lambda: answered(api.list_subscriptions(key(), query())))
    route("GET", "/v1/subscriptions/{subscription_id}",
          lambda subscription_id: answered(api.retrieve_subscription(key(), subscription_id, query())))
    route("GET", "/v1/subscriptions/{subscription_id}/events",
          lambda subscription_id: answered(api.list_subscription_events(key(), subscription_id, query())))
    route("GET", "/v1/subscriptions/{subscription_id}/operations",
          lambda subscription_id: answered(api.list_subscription_operations(key(), subscription_id, query())))

    def operation(operation_type: str) -> Callable[[str], Response]:
        def request(subscription_id: str) -> Response:
            no_query()
            return answered(api.request_operation(key(), operation_type, subscription_id, body(), headers()))

        return request

    for operation_type in OPERATION_TYPES:
        route("POST", f"/v1/subscriptions/{{subscription_id}}/{operation_type}", operation(operation_type))

    def create_upgrade_link(subscription_id: str) -> Response:
        no_query()
        return answered(api.create_upgrade_link(key(), subscription_id, body(), headers()))

    route("POST", "/v1/subscriptions/{subscription_id}/upgrade_link", create_upgrade_link)
    route("GET", "/v1/operations/{operation_id}",
          lambda operation_id: answered(api.retrieve_operation(key(), operation_id)))
    route("GET", "/v1/events", lambda: answered(api.list_events(key(), query())))
    route("GET", "/v1/reports/summary", lambda: answered(reports.summary(key(), query())))
    route("GET", "/v1/reports/daily", lambda: answered(reports.daily(key(), query())))

    patterns = [(method, re.compile("^" + re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(path)) + "$"))
                for method, path in routes]

    @app.not_found
    def not_found(_: Exception) -> Response:
        path = app.current_event.path
        allowed = sorted({method for method, pattern in patterns if pattern.match(path)})
        if allowed:
            error = failures.method_not_supported(app.current_event.http_method.upper(), allowed)
        else:
            error = failures.not_found("No such resource: see GET /v1/openapi.json for the routes of this API.")
        return error_response(error, failures.error_headers(error))

    @app.exception_handler(ApiError)
    def refused(error: ApiError) -> Response:
        if error.status >= 500:
            # Already logged where it happened; counted here so the alarm sees every 500, not only unexpected ones.
            logger.warning("request answered with an internal error", extra={"api_error_code": error.api_error_code})
            count("ApiInternalErrors")
        return error_response(error, failures.error_headers(error))

    return routes
