"""/v1/...: the merchant API (docs/merchant-api.md). One HTTP API route, ``ANY /v1/{proxy+}``, reaches this function.

Thin: the routes (authentication, the 404 / 405 answers, ChargeBee's error model) are
billops.merchant_api.http_routes, wired by billops.composition. Neither the Authorization header nor a body is ever
logged.
"""

from billops.composition.functions import merchant_api_routes_from_env
from billops.composition.http import json_resolver, lambda_entry, observability

logger, metrics, count = observability()
app = json_resolver(logger, "the merchant API", on_unexpected=lambda: count("ApiInternalErrors"))

ROUTES = merchant_api_routes_from_env(app, logger, count)
"""(method, path) of every route, in OpenAPI's path syntax; tests compare it with the OpenAPI document."""


def _set_event(event: dict) -> None:
    app.current_event = app._to_proxy_event(event)


handler = lambda_entry(app, logger, metrics, before=_set_event)
