"""Request bodies (form or JSON), query strings, limits and offsets."""

from __future__ import annotations

import base64
import json

import pytest
from billops.merchant_api.api_failures import MerchantApiError
from billops.merchant_api.pagination import decode_offset, dynamodb_key, encode_offset, page, parse_limit
from billops.merchant_api.request_bodies import parse_body, parse_query, refuse_unknown


def test_form_bodies_arrive_base64_encoded_from_http_api():
    raw = base64.b64encode(b"discount_amount=2.00&run_at=2026-03-01T00%3A00%3A00Z").decode()
    assert parse_body(raw, True, "application/x-www-form-urlencoded") == {
        "discount_amount": "2.00", "run_at": "2026-03-01T00:00:00Z"}


def test_json_bodies_keep_their_types():
    assert parse_body('{"days": 30, "run_at": null}', False, "application/json; charset=utf-8") == {
        "days": 30, "run_at": None}
    assert parse_body('{"days": 30}', False, None) == {"days": 30}, "sniffed without a Content-Type"
    assert parse_body("", False, "application/json") == {}
    assert parse_body(None, False, None) == {}


@pytest.mark.parametrize(("body", "content_type", "param"), [
    ("[1, 2]", "application/json", None),
    ("{not json", "application/json", None),
    ("days=1&days=2", "application/x-www-form-urlencoded", "days"),
    ("<xml/>", "application/xml", None),
    ("a=" + "x" * 70000, "application/x-www-form-urlencoded", None),
])
def test_unreadable_bodies_are_400(body, content_type, param):
    with pytest.raises(MerchantApiError) as refused:
        parse_body(body, False, content_type)
    assert refused.value.status == 400 and refused.value.param == param


def test_unknown_query_and_body_parameters_are_named():
    assert parse_query("limit=5&status=active", ("limit", "status")) == {"limit": "5", "status": "active"}
    with pytest.raises(MerchantApiError) as refused:
        parse_query("limt=5", ("limit",))
    assert refused.value.param == "limt"
    with pytest.raises(MerchantApiError) as refused:
        refuse_unknown({"discont_amount": "2"}, ("discount_amount",))
    assert refused.value.param == "discont_amount" and "discount_amount" in refused.value.message


@pytest.mark.parametrize("text", ["0", "101", "-1", "ten", "1.5"])
def test_limit_is_1_to_100(text):
    with pytest.raises(MerchantApiError) as refused:
        parse_limit(text)
    assert refused.value.param == "limit"


def test_offsets_are_opaque_and_checked():
    assert parse_limit(None) == 10 and parse_limit("100") == 100
    position = {"s": 1, "key": {"subscription_id": {"S": "1"}, "status": {"S": "cancelled"}}}
    token = encode_offset(position)
    assert "=" not in token and decode_offset(token) == position
    assert dynamodb_key(decode_offset(token)) == position["key"]
    assert decode_offset(None) is None and decode_offset("") is None
    for bad in ("%%%", base64.urlsafe_b64encode(b"[1]").decode(), "A" * 3000):
        with pytest.raises(MerchantApiError) as refused:
            decode_offset(bad)
        assert refused.value.param == "offset"
    with pytest.raises(MerchantApiError):
        dynamodb_key({"key": {"subscription_id": {"N": "1"}}})
    assert page([], None) == {"list": []}
    assert json.loads(json.dumps(page([1], {"i": 1})))["next_offset"]
