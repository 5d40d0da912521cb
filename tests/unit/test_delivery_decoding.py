import base64

import pytest

from billops.webhooks.delivery_decoding import (
    FORM,
    JSON,
    MalformedDelivery,
    canonical_payload,
    decode_body,
    raw_body_bytes,
)


def test_form_body_base64_wrapped_by_http_api_decodes_to_text_fields():
    raw = raw_body_bytes(base64.b64encode(b"subscriptionId=0117240102000000049&billedInitialPrice=19.90").decode(), True)
    decoded = decode_body(raw, "application/x-www-form-urlencoded")
    assert decoded.body_format == FORM
    assert decoded.fields == {"subscriptionId": "0117240102000000049", "billedInitialPrice": "19.90"}


def test_json_keeps_numbers_exactly_as_sent():
    decoded = decode_body(b'{"billedInitialPrice": 19.90, "rebills": 99, "x": null, "flag": true}', "application/json")
    assert decoded.body_format == JSON
    assert decoded.fields == {"billedInitialPrice": "19.90", "rebills": "99", "flag": "1"}


def test_json_and_form_of_the_same_event_have_one_canonical_payload():
    form = decode_body(b"a=1&b=0042", "application/x-www-form-urlencoded")
    json_body = decode_body(b'{"b": "0042", "a": "1"}', "application/json; charset=utf-8")
    assert canonical_payload(form.fields) == canonical_payload(json_body.fields)


def test_ccbill_misspelt_form_media_type_is_accepted():
    assert decode_body(b"a=1", "application/x-www-form-encoded").fields == {"a": "1"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b'{"a": "1"}', None), (b"a=1&b=2", None), (b'{"a": "1"}', "text/plain"), (b"a=1", "application/octet-stream")],
)
def test_missing_or_generic_content_type_is_sniffed(body, content_type):
    assert decode_body(body, content_type).fields["a"] == "1"


def test_latin1_body_is_read_not_refused():
    assert decode_body("firstName=Jos\xe9".encode("latin-1"), "application/x-www-form-urlencoded").fields == {
        "firstName": "José"
    }


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "application/json", "empty"),
        (b"   ", "application/json", "empty"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "object"),
        (b"<html>", "text/html", "Unsupported content type"),
        (b"subscriptionId=1&subscriptionId=2", "application/x-www-form-urlencoded", "twice"),
        (b"eventType=Refund&eventType=Void", "application/x-www-form-urlencoded", "twice"),
        (b"&&&", "application/x-www-form-urlencoded", "no fields"),
        (b"{}", "application/json", "no fields"),
    ],
)
def test_malformed_bodies_are_named(body, content_type, message):
    with pytest.raises(MalformedDelivery) as raised:
        decode_body(body, content_type)
    assert message in raised.value.message


def test_broken_base64_is_malformed():
    with pytest.raises(MalformedDelivery, match="base64"):
        raw_body_bytes("!!!not base64!!!", True)


def test_deeply_nested_json_is_refused_without_crashing():
    with pytest.raises(MalformedDelivery):
        decode_body(b"[" * 100000 + b"]" * 100000, "application/json")


# --- liberal in what is read (issue 11) -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"a=1&b=2&", b"a=1&&b=2", b"&a=1&b=2", b"a=1&b=2&&\r\n"])
def test_trailing_or_doubled_ampersands_are_empty_pairs_not_errors(body):
    decoded = decode_body(body, "application/x-www-form-urlencoded")
    assert decoded.fields == {"a": "1", "b": "2"} and decoded.warnings == {}


def test_latin1_percent_escapes_are_decoded_not_replaced():
    decoded = decode_body(b"firstName=Jos%E9&lastName=M%FCller&city=K%C3%B6ln", "application/x-www-form-urlencoded")
    assert decoded.fields == {"firstName": "José", "lastName": "Müller", "city": "Köln"}  # UTF-8 stays UTF-8
    assert "\ufffd" not in "".join(decoded.fields.values())


def test_a_declared_charset_is_followed():
    body = "firstName=Jos%E9&city=Sch%F6ne".encode()
    decoded = decode_body(body, "application/x-www-form-urlencoded; charset=ISO-8859-1")
    assert decoded.fields == {"firstName": "José", "city": "Schöne"}
    assert decode_body(b"a=%C3%A9", "application/x-www-form-urlencoded; charset=no-such").fields == {"a": "é"}


def test_a_repeated_field_keeps_the_last_value_and_is_flagged():
    decoded = decode_body(b"X-note=a&X-note=b&reason=r&reason=r", "application/x-www-form-urlencoded")
    assert decoded.fields == {"X-note": "b", "reason": "r"}
    assert set(decoded.warnings) == {"X-note"} and "a" not in decoded.warnings["X-note"].split()


def test_a_value_without_a_name_is_left_out_and_flagged():
    decoded = decode_body(b"=orphan&a=1", "application/x-www-form-urlencoded")
    assert decoded.fields == {"a": "1"} and "(unnamed)" in decoded.warnings


def test_json_numbers_are_remembered():
    decoded = decode_body(b'{"expDate": 317, "last4": "1111", "price": 23.0}', "application/json")
    assert decoded.fields == {"expDate": "317", "last4": "1111", "price": "23.0"}
    assert decoded.json_numbers == {"expDate", "price"}
