"""The merchant API's reads against moto: authentication, scopes, subscriptions (masked and revealed personal
data), lists and their pages, recent deliveries, errors in ChargeBee's model, and the cost of a warm request."""

from __future__ import annotations

import base64
import os
from collections import Counter
from datetime import UTC, datetime

from billops_local.aws_environment import aws_client


def test_no_key_or_a_wrong_one_is_401_and_the_openapi_document_needs_none(merchant_api):
    assert merchant_api.call("GET", "/v1/openapi.json", key=None).body["openapi"].startswith("3.1")
    for number, authorization in enumerate((
        None,
        "Basic " + base64.b64encode(b"bo_test_wrong000000000000000000000000:").decode(),
        "Bearer nope",
        "Basic %%%",
    )):
        answer = merchant_api.call("GET", "/v1/subscriptions", key=None, authorization=authorization,
                                   source_ip=f"198.51.100.{100 + number}")
        assert answer.status == 401, authorization
        assert answer.body == {"message": answer.body["message"], "type": None,
                               "api_error_code": "api_authentication_failed", "param": None}
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_bearer_and_basic_keys_both_work(merchant_api):
    secret = merchant_api.secret("reader")
    assert merchant_api.call("GET", "/v1/subscriptions", key=None, authorization=f"Bearer {secret}").status == 200
    basic = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
    assert merchant_api.call("GET", "/v1/subscriptions", key=None, authorization=basic).status == 200


def test_repeated_failures_from_one_source_are_429_and_expire_by_ttl(merchant_api):
    source = "203.0.113.77"
    assert merchant_api.call("GET", "/v1/subscriptions", source_ip=source).status == 200  # the container knows it
    statuses = [merchant_api.call("GET", "/v1/subscriptions", key="bo_test_guess", source_ip=source).status
                for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]  # BILLOPS_API_AUTH_FAILURE_LIMIT=3 in the fixture
    throttled = merchant_api.call("GET", "/v1/subscriptions", key="bo_test_guess", source_ip=source)
    assert throttled.body["api_error_code"] == "api_request_limit_exceeded"
    assert throttled.body["type"] == "operation_failed"
    assert 1 <= int(throttled.headers["retry-after"]) <= 300
    # The same source with a valid key this container knows is served; a key it has not read yet is not looked
    # up while the source is blocked (no read per distinct key); another source with a bad key is not throttled.
    assert merchant_api.call("GET", "/v1/subscriptions", source_ip=source).status == 200
    assert merchant_api.call("GET", "/v1/subscriptions", key="operator", source_ip=source).status == 429
    assert merchant_api.call("GET", "/v1/subscriptions", key="bo_test_guess", source_ip="203.0.113.78").status == 401
    dynamodb = aws_client("dynamodb", merchant_api.ops.tables.endpoint_url)
    items = dynamodb.scan(TableName=merchant_api.keys_table)["Items"]
    counters = [item for item in items if item["key_hash"]["S"].startswith("throttle#203.0.113.77#")]
    assert len(counters) == 1 and int(counters[0]["failures"]["N"]) == 4  # the 5th and 6th cost no write
    assert int(counters[0]["expires_at"]["N"]) > datetime.now(UTC).timestamp()
    ttl = dynamodb.describe_time_to_live(TableName=merchant_api.keys_table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_a_revoked_key_is_refused_once_the_container_has_not_seen_it(merchant_api):
    from billops.merchant_api.api_keys import create_key, list_keys, revoke_key

    dynamodb = aws_client("dynamodb", merchant_api.ops.tables.endpoint_url)
    from billops.merchant_api.api_keys import ApiKeysTable

    table = ApiKeysTable(merchant_api.keys_table, dynamodb)
    key_id, secret = create_key(table, "to revoke", ["read"], environment="test")
    assert secret.startswith("bo_test_") and key_id.startswith("key_")
    listed = {key["key_id"]: key for key in list_keys(table)}
    assert listed[key_id]["status"] == "active" and listed[key_id]["hint"] == secret[-4:]
    assert all("key_hash" not in key and "secret" not in key for key in listed.values())
    assert not any(k.startswith("throttle#") for k in listed)
    revoke_key(table, key_id)
    assert {key["key_id"]: key for key in list_keys(table)}[key_id]["status"] == "revoked"
    assert merchant_api.call("GET", "/v1/subscriptions", key=secret).status == 401


def test_scopes_are_enforced(merchant_api):
    subscription_id = merchant_api.ops.new_subscription()
    assert merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}", key="writer").status == 403
    refused = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/cancel", key="reader")
    assert refused.status == 403 and refused.body["api_error_code"] == "api_authorization_failed"
    assert refused.body["type"] is None
    hidden = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}", key="operator",
                               query={"include": "customer"})
    assert hidden.status == 403


def test_a_subscription_with_its_personal_data_masked_then_revealed(merchant_api, monkeypatch):
    """The stored personal fields are encrypted (field_encryption, KMS in moto); only a pii key sees them."""
    from billops.privacy.field_encryption import is_encrypted, reset_default_cipher
    from billops.storage.subscriptions_table import SubscriptionsTable

    endpoint = merchant_api.ops.tables.endpoint_url
    subscription_id = merchant_api.ops.new_subscription(username="member-with-pii", email="pii@example.com")
    table = SubscriptionsTable(merchant_api.ops.tables.subscriptions_table, aws_client("dynamodb", endpoint))
    record = table.get(subscription_id)  # the receiver stored the personal fields encrypted, the projector copied
    assert record["subscriber"] and all(is_encrypted(value) for value in record["subscriber"].values())

    masked = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}")
    assert masked.status == 200
    subscription = masked.body["subscription"]
    assert subscription["customer"]["email"] == "***" and subscription["customer"]["username"] == "***"
    assert "pii@example.com" not in str(masked.body)
    assert subscription["status"] == "active" and subscription["recurring_price"] == "19.95"
    assert subscription["currency"] == "USD" and subscription["card"]["last4"]

    reset_default_cipher()  # a container that never encrypted: the data key comes from KMS (kms:Decrypt)
    revealed = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}", query={"include": "customer"})
    assert revealed.status == 200
    assert revealed.body["subscription"]["customer"]["email"] == "pii@example.com"
    assert revealed.body["subscription"]["customer"]["username"] == "member-with-pii"
    reset_default_cipher()

    bad = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}", query={"include": "everything"})
    assert bad.status == 400 and bad.body["param"] == "include"


def test_unknown_subscriptions_routes_and_methods(merchant_api):
    for path in ("/v1/subscriptions/0000000000000000404", "/v1/subscriptions/not-an-id",
                 "/v1/subscriptions/0000000000000000404/events", "/v1/operations/op_nothinghere",
                 "/v1/operations/nope"):
        answer = merchant_api.call("GET", path)
        assert answer.status == 404 and answer.body["api_error_code"] == "resource_not_found", path
        assert answer.body["param"] is None
    unknown = merchant_api.call("GET", "/v1/customers")
    assert unknown.status == 404
    wrong = merchant_api.call("DELETE", "/v1/subscriptions/0000000000000000404")
    assert wrong.status == 405 and wrong.body["api_error_code"] == "http_method_not_supported"
    assert wrong.headers["allow"] == "GET"
    post_only = merchant_api.call("GET", "/v1/subscriptions/1/cancel")
    assert post_only.status == 405 and post_only.headers["allow"] == "POST"


def test_listing_subscriptions_by_status_and_subaccount_page_by_page(merchant_api):
    sandbox = merchant_api.ops.sandbox
    active_main = [merchant_api.ops.new_subscription() for _ in range(3)]
    active_sub = [merchant_api.ops.new_subscription(client_subacc="0001") for _ in range(2)]
    cancelled = merchant_api.ops.new_subscription()
    import requests

    requests.post(f"{sandbox.url}/sandbox/subscriptions/{cancelled}/cancel", timeout=10)
    merchant_api.ops.deliver_webhooks()

    seen: list[str] = []
    offset = None
    pages = 0
    while True:
        query = {"limit": "2", **({"offset": offset} if offset else {})}
        answer = merchant_api.call("GET", "/v1/subscriptions", query=query)
        assert answer.status == 200
        assert len(answer.body["list"]) <= 2
        seen += [item["subscription"]["id"] for item in answer.body["list"]]
        pages += 1
        offset = answer.body.get("next_offset")
        if not offset:
            break
    assert sorted(seen) == sorted(active_main + active_sub + [cancelled]) and len(seen) == len(set(seen))
    assert pages >= 3

    active = merchant_api.call("GET", "/v1/subscriptions", query={"status": "active", "limit": "100"})
    assert {item["subscription"]["id"] for item in active.body["list"]} == set(active_main + active_sub)
    assert all(item["subscription"]["customer"].get("email") in ("***", None) for item in active.body["list"])
    only_cancelled = merchant_api.call("GET", "/v1/subscriptions", query={"status": "cancelled"})
    assert [item["subscription"]["id"] for item in only_cancelled.body["list"]] == [cancelled]
    assert only_cancelled.body["list"][0]["subscription"]["cancelled_at"]
    subaccount = merchant_api.call("GET", "/v1/subscriptions", query={"client_subacc": "1", "limit": "1"})
    ids = [item["subscription"]["id"] for item in subaccount.body["list"]]
    second = merchant_api.call("GET", "/v1/subscriptions", query={"client_subacc": "1", "limit": "1",
                                                                   "offset": subaccount.body["next_offset"]})
    ids += [item["subscription"]["id"] for item in second.body["list"]]
    assert sorted(ids) == sorted(active_sub)

    for query, param in (({"status": "paused"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                         ({"offset": "garbage!"}, "offset"), ({"client_subacc": "12345"}, "client_subacc"),
                         ({"sort": "asc"}, "sort")):
        refused = merchant_api.call("GET", "/v1/subscriptions", query=query)
        assert refused.status == 400 and refused.body["param"] == param, query
        assert refused.body["api_error_code"] == "param_wrong_value"


def test_a_subscriptions_history_newest_first(merchant_api):
    import requests

    subscription_id = merchant_api.ops.new_subscription()
    sandbox = merchant_api.ops.sandbox
    requests.post(f"{sandbox.url}/sandbox/subscriptions/{subscription_id}/renew", timeout=10)
    requests.post(f"{sandbox.url}/sandbox/subscriptions/{subscription_id}/cancel", timeout=10)
    merchant_api.ops.deliver_webhooks()
    first = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}/events", query={"limit": "2"})
    assert first.status == 200
    types = [item["event"]["event_type"] for item in first.body["list"]]
    assert types == ["Cancellation", "RenewalSuccess"]
    rest = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}/events",
                             query={"offset": first.body["next_offset"]})
    assert [item["event"]["event_type"] for item in rest.body["list"]] == ["NewSaleSuccess"]
    assert "next_offset" not in rest.body
    sale = rest.body["list"][0]["event"]
    assert sale["fields"]["subscription_id"] == subscription_id and "email" not in sale["fields"]


def test_recent_deliveries_with_quarantined_ones_and_their_reasons(merchant_api):
    from billops.storage.events_table import EventsTable

    subscription_id = merchant_api.ops.new_subscription()
    now = datetime.now(UTC)
    events = EventsTable(merchant_api.ops.tables.events_table, aws_client("dynamodb",
                                                                          merchant_api.ops.tables.endpoint_url))
    events.put_once({"pk": "quarantine#abc", "record_type": "quarantine", "event_type": "RenewalSuccess",
                     "reason": "subscriptionId is missing.", "param": "subscriptionId",
                     "received_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "raw_body": "{}"})
    merchant_api.ops.project()  # the projector logs the batch's deliveries (the quarantined one too)
    everything = merchant_api.call("GET", "/v1/events")
    assert everything.status == 200
    kinds = {item["event"]["status"] for item in everything.body["list"]}
    assert kinds == {"received", "quarantined"}
    quarantined = merchant_api.call("GET", "/v1/events", query={"status": "quarantined"})
    (item,) = quarantined.body["list"]
    assert item["event"]["quarantine"] == {"reason": "subscriptionId is missing.", "param": "subscriptionId"}
    assert "raw_body" not in str(item)
    ours = merchant_api.call("GET", "/v1/events", query={"subscription_id": subscription_id,
                                                          "event_type": "NewSaleSuccess", "days": "1"})
    assert [i["event"]["subscription_id"] for i in ours.body["list"]] == [subscription_id]
    for query, param in (({"days": "0"}, "days"), ({"days": "40"}, "days"), ({"status": "ok"}, "status"),
                         ({"event_type": "a b"}, "event_type"), ({"subscription_id": "x"}, "subscription_id")):
        refused = merchant_api.call("GET", "/v1/events", query=query)
        assert refused.status == 400 and refused.body["param"] == param


def test_a_warm_request_with_a_valid_key_makes_no_call_for_the_key(merchant_api):
    subscription_id = merchant_api.ops.new_subscription()
    assert merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}").status == 200  # cold: reads the key
    from billops.storage.dynamodb_client import dynamodb_client

    calls: Counter[str] = Counter()
    dynamodb_client().meta.events.register("before-parameter-build", lambda model=None, params=None, **_: calls.update(
        [f"{model.name}:{params.get('TableName')}"]))
    for _ in range(10):
        assert merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}").status == 200
    # The record's state item, then its history and personal data (one Query of the history table, issue 14).
    history_table = os.environ["BILLOPS_SUBSCRIPTION_HISTORY_TABLE"]
    assert dict(calls) == {f"GetItem:{merchant_api.ops.tables.subscriptions_table}": 10, f"Query:{history_table}": 10}


def test_an_unreadable_table_is_500_without_detail(merchant_api, monkeypatch):
    monkeypatch.setenv("BILLOPS_SUBSCRIPTIONS_TABLE", "no-such-table")
    merchant_api.reload()
    answer = merchant_api.call("GET", "/v1/subscriptions/0126326702000000001")
    assert answer.status == 500
    assert answer.body == {"message": answer.body["message"], "type": "operation_failed",
                           "api_error_code": "internal_error", "param": None}
    assert "no-such-table" not in answer.body["message"] and "ResourceNotFound" not in answer.body["message"]
