"""bench.payloads: distinct deliveries, and the REST API (v1) events the baseline is fed."""

import json
from urllib.parse import parse_qsl

from bench.payloads import delivery_mix, http_api_v2_event, rest_api_v1_event, unique_fields


def test_deliveries_are_distinct_and_cycle_through_the_twenty_types():
    deliveries = list(delivery_mix(40, run=1))
    assert len({d.event_type for d in deliveries}) == 20
    keys = {(d.event_type, d.fields.get("transactionId"), d.fields.get("subscriptionId")) for d in deliveries}
    assert len(keys) == 40
    assert all(len(d.fields.get("subscriptionId", "0" * 19)) == 19 for d in deliveries)
    assert "subscriptionId" not in unique_fields("NewSaleFailure", 3)


def test_both_events_carry_the_same_body_bytes():
    delivery = next(delivery_mix(1, run=2, body_format="urlencoded"))
    v1 = rest_api_v1_event(delivery, "tok")
    v2 = http_api_v2_event(delivery, "tok")
    assert v1["httpMethod"] == "POST" and v1["resource"] == "/webhooks/ccbill" and v1["isBase64Encoded"] is False
    assert v1["requestContext"]["identity"]["sourceIp"] == v2["requestContext"]["http"]["sourceIp"]
    assert dict(parse_qsl(v1["body"], keep_blank_values=True)) == delivery.fields
    assert v2["isBase64Encoded"] is True  # HTTP API base64-encodes form bodies
    assert v1["queryStringParameters"]["token"] == "tok" == v2["queryStringParameters"]["token"]
    as_json = rest_api_v1_event(delivery.in_format("json"), "tok")
    assert json.loads(as_json["body"]) == delivery.fields
