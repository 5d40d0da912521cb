"""HTTP API payload-format-2.0 events as AWS builds them, the webhook samples, and the files in events/webhooks/."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from billops.webhooks.event_models import parse_event
from billops.webhooks.event_types import EventType
from billops_local.http_api_events import (
    SAMPLE_SOURCE_IP,
    SAMPLE_TOKEN,
    body_is_text,
    http_api_event,
    main,
    sample_webhook_event,
    write_sample_events,
)
from billops_local.webhook_samples import (
    EVENT_TYPES,
    encode_body,
    sample_fields,
    webhook_query,
)

ROOT = Path(__file__).resolve().parents[2]
FIXED_TIME = datetime(2026, 1, 15, 10, 30, 1, 250000, tzinfo=UTC)


def make_event(**overrides):
    arguments = {
        "method": "post",
        "raw_path": "/webhooks/ccbill",
        "raw_query": "token=t&eventType=Refund",
        "headers": {"Content-Type": "application/json", "User-Agent": "curl/8.5.0"},
        "body": b'{"a": "1"}',
        "source_ip": "64.38.212.10",
        "request_time": FIXED_TIME,
        "request_id": "abc",
    }
    arguments.update(overrides)
    return http_api_event(**arguments)


# --- event shape ----------------------------------------------------------------------------------------------------


def test_event_shape_follows_payload_format_2():
    event = make_event(route_key="POST /webhooks/ccbill")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/ccbill"
    assert event["rawPath"] == "/webhooks/ccbill"
    assert event["rawQueryString"] == "token=t&eventType=Refund"
    assert event["queryStringParameters"] == {"token": "t", "eventType": "Refund"}
    context = event["requestContext"]
    assert set(context) == {
        "accountId", "apiId", "domainName", "domainPrefix", "http", "requestId", "routeKey", "stage", "time",
        "timeEpoch",
    }
    assert context["http"] == {
        "method": "POST",
        "path": "/webhooks/ccbill",
        "protocol": "HTTP/1.1",
        "sourceIp": "64.38.212.10",
        "userAgent": "curl/8.5.0",
    }
    assert context["routeKey"] == "POST /webhooks/ccbill"
    assert context["stage"] == "$default"
    assert context["time"] == "15/Jan/2026:10:30:01 +0000"
    assert context["timeEpoch"] == 1768473001250
    assert context["domainPrefix"] == context["domainName"].split(".")[0]
    assert "pathParameters" not in event
    assert "cookies" not in event
    json.dumps(event)  # serialisable as Lambda receives it


def test_route_key_defaults_to_default_route():
    event = make_event()
    assert event["routeKey"] == "$default" == event["requestContext"]["routeKey"]


def test_header_names_are_lower_cased_and_repeats_comma_joined():
    event = make_event(headers=[("Accept", "text/html"), ("accept", "application/json"), ("X-Custom", "1")])
    assert event["headers"]["accept"] == "text/html,application/json"
    assert event["headers"]["x-custom"] == "1"
    assert all(name == name.lower() for name in event["headers"])
    mapping_with_list = make_event(headers={"X-Multi": ["a", "b"]})
    assert mapping_with_list["headers"]["x-multi"] == "a,b"


def test_aws_forwarding_headers_are_added_and_x_forwarded_for_ends_with_the_source_ip():
    event = make_event(headers={"X-Forwarded-For": "10.0.0.1", "content-type": "application/json"})
    headers = event["headers"]
    assert headers["x-forwarded-for"] == "10.0.0.1, 64.38.212.10"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-port"] == "443"
    assert headers["content-length"] == str(len(b'{"a": "1"}'))
    assert headers["host"] == event["requestContext"]["domainName"]
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    assert event["requestContext"]["http"]["sourceIp"] == "64.38.212.10"


def test_host_header_sets_the_domain_name():
    event = make_event(headers={"Host": "billing.example.com", "content-type": "application/json"})
    assert event["requestContext"]["domainName"] == "billing.example.com"
    assert event["requestContext"]["domainPrefix"] == "billing"


def test_repeated_query_keys_are_comma_joined_and_raw_query_kept():
    event = make_event(raw_query="a=1&a=2&b=&c=x%20y")
    assert event["rawQueryString"] == "a=1&a=2&b=&c=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "", "c": "x y"}


def test_query_string_parameters_are_absent_without_a_query():
    event = make_event(raw_query="")
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event


def test_cookies_move_out_of_the_headers():
    event = make_event(headers={"Cookie": "a=1; b=2", "content-type": "application/json"})
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]


def test_path_parameters_and_stage():
    event = make_event(path_parameters={"merchant": "m1"}, stage="prod")
    assert event["pathParameters"] == {"merchant": "m1"}
    assert event["requestContext"]["stage"] == "prod"


def test_events_are_reproducible_with_a_fixed_time_and_request_id_and_unique_without():
    assert make_event() == make_event()
    first = make_event(request_id=None, request_time=None)
    second = make_event(request_id=None, request_time=None)
    assert first["requestContext"]["requestId"] != second["requestContext"]["requestId"]
    assert len(first["requestContext"]["requestId"]) == 16


# --- bodies ---------------------------------------------------------------------------------------------------------


def test_form_bodies_are_base64_encoded():
    body = b"clientAccnum=900100&clientSubacc=0000&firstName=J%C3%B6rg"
    event = make_event(headers={"Content-Type": "application/x-www-form-urlencoded"}, body=body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_json_bodies_are_text():
    body = '{"firstName": "Jörg"}'.encode()
    event = make_event(headers={"Content-Type": "application/json; charset=utf-8"}, body=body)
    assert event["isBase64Encoded"] is False
    assert event["body"] == '{"firstName": "Jörg"}'


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("Application/JSON; charset=UTF-8", True),
        ("text/plain", True),
        ("text/html; charset=utf-8", True),
        ("application/xml", True),
        ("application/javascript", True),
        ("application/x-www-form-urlencoded", False),
        ("application/x-www-form-urlencoded; charset=UTF-8", False),
        ("multipart/form-data; boundary=x", False),
        ("application/octet-stream", False),
        (None, False),
        ("", False),
    ],
)
def test_which_content_types_http_api_passes_as_text(content_type, text):
    assert body_is_text(content_type) is text
    headers = {} if content_type is None else {"content-type": content_type}
    event = make_event(headers=headers, body=b"x=1")
    assert event["isBase64Encoded"] is (not text)


def test_no_body_means_no_body_key():
    for body in (None, b""):
        event = make_event(method="GET", body=body, headers={})
        assert "body" not in event
        assert event["isBase64Encoded"] is False
        assert "content-length" not in event["headers"]


# --- webhook samples ------------------------------------------------------------------------------------------------


def test_every_event_type_has_a_sample():
    assert sorted(EVENT_TYPES) == sorted(event_type.value for event_type in EventType)


def test_unknown_event_types_get_a_minimal_sample():
    fields = sample_fields("SomethingNew")
    assert set(fields) == {"clientAccnum", "clientSubacc", "subscriptionId", "timestamp"}


def test_sample_overrides_replace_add_and_remove():
    fields = sample_fields("Refund", amount="5.00", newField="x", reason=None)
    assert fields["amount"] == "5.00"
    assert fields["newField"] == "x"
    assert "reason" not in fields


def test_sample_values_are_plausible():
    fields = sample_fields("NewSaleSuccess")
    assert all(isinstance(value, str) for value in fields.values())
    assert len(fields["subscriptionId"]) == 19 and fields["subscriptionId"].startswith("0")
    assert fields["billedInitialPrice"] == "19.95"
    assert fields["billedCurrencyCode"] == "840"
    assert fields["timestamp"] == "2026-01-15 10:30:00"
    assert fields["ipAddress"].startswith("203.0.113.")
    assert fields["email"].endswith("@example.com")
    assert "password" in fields


def test_transaction_ids_differ_between_types():
    ids = [sample_fields(event_type)["transactionId"] for event_type in EVENT_TYPES if event_type != "ManualAdd"
           and "transactionId" in sample_fields(event_type)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("body_format", ["urlencoded", "json"])
def test_encoded_bodies_round_trip(body_format):
    fields = sample_fields("NewSaleSuccess", firstName="Zoë", priceDescription="$19.95(USD) & more")
    body, content_type = encode_body(fields, body_format)
    if body_format == "urlencoded":
        assert content_type == "application/x-www-form-urlencoded"
        assert dict(parse_qsl(body.decode("ascii"), keep_blank_values=True)) == fields
    else:
        assert content_type == "application/json"
        assert json.loads(body) == fields


def test_encode_body_refuses_unknown_formats():
    with pytest.raises(ValueError):
        encode_body({"a": "1"}, "xml")


def test_webhook_query():
    fields = sample_fields("Expiration")
    assert webhook_query("Expiration", fields, "secret") == {
        "token": "secret",
        "clientAccnum": "900100",
        "clientSubacc": "0000",
        "eventType": "Expiration",
        "eventGroupType": "Subscription",
    }
    assert "token" not in webhook_query("Expiration", fields, None)


# --- sample events --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@pytest.mark.parametrize("body_format", ["urlencoded", "json"])
def test_sample_events_carry_the_sample_payload(event_type, body_format):
    event = sample_webhook_event(event_type, body_format)
    assert event["routeKey"] == "POST /webhooks/ccbill"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == SAMPLE_SOURCE_IP == "64.38.212.10"
    query = event["queryStringParameters"]
    assert query["token"] == SAMPLE_TOKEN == "local-webhook-token"
    assert query["eventType"] == event_type
    assert query["eventGroupType"] == "Subscription"
    assert query["clientAccnum"] == "900100" and query["clientSubacc"] == "0000"
    if body_format == "urlencoded":
        assert event["isBase64Encoded"] is True
        fields = dict(parse_qsl(base64.b64decode(event["body"]).decode(), keep_blank_values=True))
    else:
        assert event["isBase64Encoded"] is False
        fields = json.loads(event["body"])
    assert fields == sample_fields(event_type)
    parse_event(EventType(event_type), fields)


def test_the_files_in_events_are_what_the_generator_writes_today(tmp_path):
    written = write_sample_events(tmp_path)
    generated = {path.name: path.read_bytes() for path in written}
    assert len(generated) == 41  # 20 types x 2 formats + README.md
    assert "NewSaleSuccess-json.json" in generated and "NewSaleSuccess-urlencoded.json" in generated
    assert all(path.parent == tmp_path / "webhooks" for path in written)
    committed_dir = ROOT / "events" / "webhooks"
    committed = {path.name: path.read_bytes() for path in committed_dir.iterdir() if path.is_file()}
    stale = sorted(name for name in set(generated) | set(committed) if generated.get(name) != committed.get(name))
    assert not stale, f"regenerate with: python -m billops_local.http_api_events --write events ({stale[:5]})"


def test_the_readme_explains_sam_local_invoke(tmp_path):
    write_sample_events(tmp_path)
    readme = (tmp_path / "webhooks" / "README.md").read_text()
    assert "sam local invoke WebhookReceiverFunction -e events/webhooks/NewSaleSuccess-json.json" in readme


def test_the_command_line_writes_the_files(tmp_path, capsys):
    assert main(["--write", str(tmp_path)]) == 0
    assert (tmp_path / "webhooks" / "Refund-urlencoded.json").is_file()
    assert "Refund-json.json" in capsys.readouterr().out
