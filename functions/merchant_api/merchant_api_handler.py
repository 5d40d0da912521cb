"""/v1/...: the merchant API (docs/merchant-api.md). One HTTP API route, ``ANY /v1/{proxy+}``, reaches this function.

Thin: authenticate (a middleware, for every route but the OpenAPI document), route, hand the parts of the request
to billops.merchant_api.api_service.MerchantApi, and turn its answer or error into JSON. Unknown paths are 404 and
known paths with another method 405 (with ``Allow``), in ChargeBee's error model. Neither the Authorization header
nor a body is ever logged.
"""

import re

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from billops.api_errors import ApiError
from billops.composition.http import error_response, json_resolver, json_response, lambda_entry, observability
from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_authentication import require_scope
from billops.merchant_api.api_keys import WRITE
from billops.merchant_api.api_service import MerchantApi
from billops.merchant_api.openapi import openapi_document_text
from billops.merchant_api.report_routes import ReportRoutes
from billops.merchant_api.request_bodies import parse_body, parse_query


logger, metrics, _count = observability()
app = json_resolver(logger, "the merchant API", on_unexpected=lambda: _count("ApiInternalErrors"))

api = MerchantApi.from_env(on_metric=_count)
reports = ReportRoutes.from_env()

OPENAPI_PATH = "/v1/openapi.json"
ROUTES: list[tuple[str, str]] = []
"""(method, path) of every route, in OpenAPI's path syntax; tests compare it with the OpenAPI document."""


def route(method: str, path: str):
    ROUTES.append((method, path))
    return app.route(re.sub(r"\{(\w+)\}", r"<\1>", path), method=method)


def _key():
    return app.context["api_key"]


def _query() -> str:
    return app.current_event.raw_event.get("rawQueryString") or ""


def _headers() -> dict:
    return {str(name).lower(): str(value) for name, value in (app.current_event.headers or {}).items()}


def _body() -> dict:
    # Only the write routes read a body: a key that may not write is refused before its body is even parsed
    # (a stranger's body costs nothing, and cannot turn a 403 into anything else).
    require_scope(_key(), WRITE)
    event = app.current_event.raw_event
    return parse_body(event.get("body"), bool(event.get("isBase64Encoded")), _headers().get("content-type"),
                      api.settings.max_body_bytes)


def _answer(answer) -> Response:
    return json_response(answer.status, answer.body, answer.headers)


def authenticate(app: APIGatewayHttpResolver, next_middleware):
    if app.current_event.path == OPENAPI_PATH and app.current_event.http_method.upper() == "GET":
        return next_middleware(app)
    source_ip = app.current_event.request_context.http.source_ip
    key = api.authenticate(_headers().get("authorization"), source_ip)
    app.append_context(api_key=key)
    return next_middleware(app)


app.use(middlewares=[authenticate])


# --- routes ---------------------------------------------------------------------------------------------------------


@route("GET", OPENAPI_PATH)
def openapi_document() -> Response:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document_text())


@route("GET", "/v1/subscriptions")
def list_subscriptions() -> Response:
    return _answer(api.list_subscriptions(_key(), _query()))


@route("GET", "/v1/subscriptions/{subscription_id}")
def retrieve_subscription(subscription_id: str) -> Response:
    return _answer(api.retrieve_subscription(_key(), subscription_id, _query()))


@route("GET", "/v1/subscriptions/{subscription_id}/events")
def list_subscription_events(subscription_id: str) -> Response:
    return _answer(api.list_subscription_events(_key(), subscription_id, _query()))


@route("GET", "/v1/subscriptions/{subscription_id}/operations")
def list_subscription_operations(subscription_id: str) -> Response:
    return _answer(api.list_subscription_operations(_key(), subscription_id, _query()))


def _no_query() -> None:
    """POST parameters travel in the body; a query string on a POST is a mistake worth telling."""
    parse_query(_query(), ())


def _operation(operation_type: str, subscription_id: str) -> Response:
    _no_query()
    return _answer(api.request_operation(_key(), operation_type, subscription_id, _body(), _headers()))


@route("POST", "/v1/subscriptions/{subscription_id}/discount")
def discount_subscription(subscription_id: str) -> Response:
    return _operation("discount", subscription_id)


@route("POST", "/v1/subscriptions/{subscription_id}/upgrade")
def upgrade_subscription(subscription_id: str) -> Response:
    return _operation("upgrade", subscription_id)


@route("POST", "/v1/subscriptions/{subscription_id}/cancel")
def cancel_subscription(subscription_id: str) -> Response:
    return _operation("cancel", subscription_id)


@route("POST", "/v1/subscriptions/{subscription_id}/extend")
def extend_subscription(subscription_id: str) -> Response:
    return _operation("extend", subscription_id)


@route("POST", "/v1/subscriptions/{subscription_id}/refund")
def refund_subscription(subscription_id: str) -> Response:
    return _operation("refund", subscription_id)


@route("POST", "/v1/subscriptions/{subscription_id}/void")
def void_subscription(subscription_id: str) -> Response:
    return _operation("void", subscription_id)


@route("POST", "/v1/subscriptions/{subscription_id}/upgrade_link")
def create_upgrade_link(subscription_id: str) -> Response:
    _no_query()
    return _answer(api.create_upgrade_link(_key(), subscription_id, _body(), _headers()))


@route("GET", "/v1/operations/{operation_id}")
def retrieve_operation(operation_id: str) -> Response:
    return _answer(api.retrieve_operation(_key(), operation_id))


@route("GET", "/v1/events")
def list_events() -> Response:
    return _answer(api.list_events(_key(), _query()))


@route("GET", "/v1/reports/summary")
def report_summary() -> Response:
    return _answer(reports.summary(_key(), _query()))


@route("GET", "/v1/reports/daily")
def report_daily() -> Response:
    return _answer(reports.daily(_key(), _query()))


# --- everything else ------------------------------------------------------------------------------------------------

_PATTERNS = [(method, re.compile("^" + re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(path)) + "$"))
             for method, path in ROUTES]


@app.not_found
def not_found(_: Exception) -> Response:
    path = app.current_event.path
    allowed = sorted({method for method, pattern in _PATTERNS if pattern.match(path)})
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
        _count("ApiInternalErrors")
    return error_response(error, failures.error_headers(error))


def _set_event(event: dict) -> None:
    app.current_event = app._to_proxy_event(event)


handler = lambda_entry(app, logger, metrics, before=_set_event)
