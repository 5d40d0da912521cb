"""The OpenAPI document: a valid OpenAPI 3.1 document that describes exactly the routes the handler serves."""

from __future__ import annotations

import json
import re

import pytest
from billops.merchant_api.openapi import DOCUMENT_PATH, openapi_document, openapi_document_text

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@pytest.fixture
def handler(aws_credentials, handler_loader):
    return handler_loader("merchant_api")


def test_the_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    validate(document)
    assert json.loads(openapi_document_text()) == document
    assert DOCUMENT_PATH.parent.name == "merchant_api", "it ships in the layer, next to the code that serves it"


def test_every_route_of_the_handler_is_in_the_document_and_nothing_else(handler):
    routed = {(method.lower(), path) for method, path in handler.ROUTES}
    documented = {(method, path) for path, item in openapi_document()["paths"].items()
                  for method in item if method in METHODS}
    assert routed == documented
    assert len(handler.ROUTES) == len(routed), "a route registered twice"


def test_every_operation_documents_the_errors_it_can_answer():
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or path == "/v1/openapi.json":
                continue
            codes = set(operation["responses"])
            assert {"400", "401", "403", "429", "500"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method == "post":
                assert "409" in codes and "IdempotencyKey" in json.dumps(operation["parameters"]), path
            assert operation.get("operationId"), (method, path)
    assert document["paths"]["/v1/openapi.json"]["get"]["security"] == []
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {"type": "http", "scheme": "basic", "description": schemes["basicAuth"][
        "description"]}


def test_the_subscription_schema_has_the_fields_the_issue_asks_for():
    schema = openapi_document()["components"]["schemas"]["Subscription"]
    for name in ("id", "status", "client_accnum", "client_subacc", "initial_price", "recurring_price", "currency",
                 "initial_period", "recurring_period", "rebills", "times_rebilled", "next_renewal_date",
                 "cancelled_at", "expired_at", "original_subscription_id", "card", "created_at", "updated_at"):
        assert name in schema["properties"], name
    card = openapi_document()["components"]["schemas"]["Card"]["properties"]
    assert {"bin", "last4", "exp_date"} <= set(card)


def test_the_resources_match_their_schemas():
    """The resources built from records validate against the document (schemathesis checks the live answers)."""
    import jsonschema
    from billops.merchant_api.resources import operation_resource, subscription_resource

    document = openapi_document()
    registry_document = {"components": document["components"]}

    def check(name: str, value: dict) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", **registry_document}
        jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)

    check("Subscription", subscription_resource({"subscription_id": "1", "status": "active"}))
    check("Operation", operation_resource({"operation_id": "op_rej_x", "status": "rejected",
                                           "failure": {"reason": "message_invalid", "message": "m"}}))
    pattern = document["components"]["parameters"]["IdempotencyKey"]["schema"]["pattern"]
    assert re.fullmatch(pattern, "retention-7781") and not re.fullmatch(pattern, "has space")
