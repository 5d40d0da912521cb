"""The merchant API (issue 5): a REST API under ``/v1`` on the HTTP API, in ChargeBee's conventions.

The handler (functions/merchant_api/merchant_api_handler.py) only builds its resolver; everything else is here:

* http_routes           the routes on the resolver: authentication middleware, 404 / 405, errors as JSON
* api_settings          BILLOPS_API_* settings
* api_keys              API keys: format, hashing, the keys table, create / list / revoke (the CLI uses these)
* failed_auth_limits    repeated authentication failures from one source answered 429
* api_authentication    HTTP Basic (and Bearer) authentication, scopes
* api_failures          the API's error answers beyond billops.api_errors (401, 409, 429, CCBill codes)
* request_bodies        form-encoded or JSON request bodies, query parameters
* pagination            limit / offset / next_offset
* resources             records -> snake_case resources (subscriptions, operations, events); personal data masked
* report_routes         GET /v1/reports/summary and /daily (the daily figures of billops.reports)
* queries               the reads behind the list routes (subscriptions, a subscription's events and operations,
                        recent webhook deliveries)
* operation_requests    a POST -> an operation message, validated with the worker's rules, recorded, queued;
                        Idempotency-Key handling
* openapi.json          the OpenAPI 3.1 document of the whole API (served at GET /v1/openapi.json)

docs/merchant-api.md is the user's guide.
"""
