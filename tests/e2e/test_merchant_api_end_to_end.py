"""End to end: the merchant API (/v1) over HTTP against the running local stack, as a merchant's back end uses it.

Every route and every error of docs/merchant-api.md: authentication (401, 429 from one source, 403 by scope), the
subscription reads (personal data masked, revealed for a pii key), lists and their pages, the operations from the
POST to their end at the CCBill sandbox (202 -> GET /v1/operations/{id} until succeeded), CCBill's rules refusing
before anything is queued (400 naming the parameter with CCBill's code), 404 / 405 / 409, Idempotency-Key, run_at,
the event-actions header, upgrade links and the recent deliveries with quarantined ones.

The local stack seeds BILLOPS_API_KEY (default local-api-key) with every scope; other keys are made here with
billops.merchant_api.api_keys against the stack's moto, as the CLI makes them against AWS. Tests that expect
authentication failures send them from their own loopback address (127.0.0.x): the failures of one source are
counted, and the other tests must not inherit them.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from billops.merchant_api.openapi import openapi_document
from support.waiting import eventually

pytestmark = pytest.mark.e2e

API_KEY = os.environ.get("BILLOPS_API_KEY") or "local-api-key"
KEYS_TABLE = "billops-local-ApiKeysTable"
RUN = uuid.uuid4().hex[:8]
SUBSCRIPTION = {"client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95", "initial_period": 30,
                "recurring_price": "19.95", "recurring_period": 30, "rebills": 99, "currency_code": "840"}


def idempotency_key(name: str) -> str:
    return f"e2e-api-{RUN}-{name}"


_THE_STACKS_KEY = object()


class Api:
    def __init__(self, local_stack, api_key: str = API_KEY) -> None:
        self.stack = local_stack
        self.url = local_stack.api_url
        self.api_key = api_key
        self.session = requests.Session()

    def request(self, method: str, path: str, *, key: Any = _THE_STACKS_KEY, **kwargs: Any) -> requests.Response:
        key = self.api_key if key is _THE_STACKS_KEY else key
        if key is not None:
            kwargs.setdefault("auth", (key, ""))
        return self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def from_source(self, source_ip: str, path: str, authorization: str | None) -> tuple[int, dict, dict]:
        """A GET sent from ``source_ip`` (any 127.0.0.0/8 address reaches the loopback listener)."""
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30,
                                                source_address=(source_ip, 0))
        try:
            connection.request("GET", path, headers={"Authorization": authorization} if authorization else {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
        finally:
            connection.close()

    # --- the sandbox and waiting ----------------------------------------------------------------------------

    def new_subscription(self, **overrides: Any) -> str:
        created = requests.post(f"{self.stack.sandbox_url}/sandbox/subscriptions",
                                json={**SUBSCRIPTION, **overrides}, timeout=10)
        assert created.status_code == 201, created.text
        subscription_id = created.json()["subscription_id"]
        self.wait_for_subscription(subscription_id, lambda s: True)
        return subscription_id

    def sandbox(self, subscription_id: str, action: str) -> None:
        assert requests.post(f"{self.stack.sandbox_url}/sandbox/subscriptions/{subscription_id}/{action}",
                             timeout=10).ok

    def wait_for_subscription(self, subscription_id: str, condition, timeout: float = 30.0) -> dict:
        seen: list[requests.Response] = []

        def matching() -> dict | None:
            seen[:] = [answer := self.get(f"/v1/subscriptions/{subscription_id}")]
            return answer.json()["subscription"] if answer.status_code == 200 and condition(
                answer.json()["subscription"]) else None

        return eventually(matching, timeout, what=f"subscription {subscription_id} as expected",
                          show=lambda: f"{seen[0].status_code} {seen[0].text}")

    def wait_for_operation(self, operation_id: str, statuses: tuple[str, ...] = ("succeeded", "failed"),
                           timeout: float = 60.0) -> dict:
        def operation() -> dict:
            answer = self.get(f"/v1/operations/{operation_id}")
            assert answer.status_code == 200, answer.text
            return answer.json()["operation"]

        return eventually(lambda: (found := operation())["status"] in statuses and found, timeout,
                          what=f"operation {operation_id} {' or '.join(statuses)}",
                          show=lambda: operation()["status"])

    def keys_table(self):
        from billops.merchant_api.api_keys import ApiKeysTable

        return ApiKeysTable(KEYS_TABLE, self.stack.boto3_client("dynamodb"))


@pytest.fixture(scope="module")
def api(local_stack) -> Api:
    return Api(local_stack)


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


# --- authentication ---------------------------------------------------------------------------------------------


def test_the_local_key_works_and_everything_else_is_401(api):
    assert api.get("/v1/subscriptions").status_code == 200
    assert api.get("/v1/subscriptions", key=None, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    document = api.get("/v1/openapi.json", key=None)
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")
    assert document.json() == openapi_document(), "the API serves the document kept in the repository"
    for number, authorization in enumerate((None, basic("bo_local_not_a_key"), "Bearer nope", "Basic ###")):
        status, headers, body = api.from_source(f"127.0.0.{201 + number}", "/v1/subscriptions", authorization)
        assert status == 401, authorization
        assert body["api_error_code"] == "api_authentication_failed" and body["type"] is None
        assert headers["WWW-Authenticate"].startswith("Basic")


def test_repeated_failures_from_one_source_are_slowed_down_with_429(api):
    source = f"127.0.{int(RUN[:2], 16)}.{10 + int(RUN[2:4], 16) % 200}"
    statuses = []
    for _ in range(12):
        status, headers, body = api.from_source(source, "/v1/subscriptions", basic("bo_local_guess"))
        statuses.append(status)
    assert statuses[:10] == [401] * 10, "BILLOPS_API_AUTH_FAILURE_LIMIT: 10 failures per window by default"
    assert statuses[10:] == [429, 429]
    assert body["api_error_code"] == "api_request_limit_exceeded"
    assert 1 <= int(headers["Retry-After"]) <= 300
    status, _, _ = api.from_source(source, "/v1/subscriptions", basic(API_KEY))
    assert status == 200, "a valid key is never refused for its source's failures"


def test_scopes_and_revoked_keys(api):
    from billops.merchant_api.api_keys import create_key, revoke_key

    subscription_id = api.new_subscription()
    table = api.keys_table()
    _, reader = create_key(table, f"e2e reader {RUN}", ["read"], environment="local")
    _, operator = create_key(table, f"e2e operator {RUN}", ["read", "write"], environment="local")
    revoked_id, revoked = create_key(table, f"e2e revoked {RUN}", ["read"], environment="local")
    revoke_key(table, revoked_id)

    assert api.get(f"/v1/subscriptions/{subscription_id}", key=reader).status_code == 200
    refused = api.post(f"/v1/subscriptions/{subscription_id}/cancel", key=reader)
    assert refused.status_code == 403 and refused.json()["api_error_code"] == "api_authorization_failed"
    hidden = api.get(f"/v1/subscriptions/{subscription_id}", key=operator, params={"include": "customer"})
    assert hidden.status_code == 403
    status, _, body = api.from_source("127.0.0.199", "/v1/subscriptions", basic(revoked))
    assert status == 401 and body["api_error_code"] == "api_authentication_failed"


# --- reading ------------------------------------------------------------------------------------------------------


def test_a_subscription_its_personal_data_and_its_history(api):
    subscription_id = api.new_subscription(username=f"member{RUN}", email=f"{RUN}@example.com")
    api.sandbox(subscription_id, "renew")
    subscription = api.wait_for_subscription(subscription_id, lambda s: s["times_rebilled"] == 1)
    assert subscription["id"] == subscription_id and subscription["object"] == "subscription"
    assert subscription["status"] == "active"
    assert (subscription["client_accnum"], subscription["client_subacc"]) == ("900100", "0000")
    assert (subscription["initial_price"], subscription["recurring_price"], subscription["currency"]) == (
        "19.95", "19.95", "USD")
    assert (subscription["initial_period"], subscription["recurring_period"], subscription["rebills"]) == (30, 30, 99)
    # The sandbox runs varied (a seed per stack): the consumer may pay by bank or send card fields blank, and an
    # older version of a webhook may have no card fields, so the card shown has the last last4 the sale and the
    # renewal delivered (zero-filled, as the reference types it), or none.
    delivered = [record for record in requests.get(f"{api.stack.sandbox_url}/sandbox/webhooks", timeout=10).json()
                 if record["subscription_id"] == subscription_id
                 and record["event_type"] in ("NewSaleSuccess", "RenewalSuccess")]
    assert [record["event_type"] for record in delivered] == ["NewSaleSuccess", "RenewalSuccess"]
    sent = [str(record["fields"].get("last4") or "") for record in delivered]
    expected_last4 = next((last4.zfill(4) for last4 in reversed(sent) if last4), None)
    assert subscription["next_renewal_date"]
    assert (subscription["card"] or {}).get("last4") == expected_last4, delivered
    assert set(subscription) >= {
        "id", "status", "client_accnum", "client_subacc", "initial_price", "recurring_price", "currency",
        "initial_period", "recurring_period", "rebills", "times_rebilled", "next_renewal_date", "cancelled_at",
        "expired_at", "original_subscription_id", "card", "created_at", "updated_at"}, "the issue's fields"
    assert subscription["card"] is None or set(subscription["card"]) >= {"bin", "last4", "exp_date"}
    assert (subscription["cancelled_at"], subscription["expired_at"], subscription["original_subscription_id"]) == (
        None, None, None)
    assert subscription["created_at"] and subscription["updated_at"] >= subscription["created_at"]
    assert subscription["customer"]["email"] == "***" and f"{RUN}@example.com" not in json.dumps(subscription)

    revealed = api.get(f"/v1/subscriptions/{subscription_id}", params={"include": "customer"})
    assert revealed.status_code == 200
    assert revealed.json()["subscription"]["customer"]["email"] == f"{RUN}@example.com"
    assert revealed.json()["subscription"]["customer"]["username"] == f"member{RUN}"

    history = api.get(f"/v1/subscriptions/{subscription_id}/events", params={"limit": 1})
    assert history.status_code == 200
    assert [item["event"]["event_type"] for item in history.json()["list"]] == ["RenewalSuccess"]
    rest = api.get(f"/v1/subscriptions/{subscription_id}/events", params={"offset": history.json()["next_offset"]})
    assert [item["event"]["event_type"] for item in rest.json()["list"]] == ["NewSaleSuccess"]


def test_listing_subscriptions_page_by_page_with_filters(api):
    mine = {api.new_subscription(client_subacc="0001") for _ in range(3)}
    seen: set[str] = set()
    offset = None
    while True:
        params = {"client_subacc": "0001", "status": "active", "limit": 2, **({"offset": offset} if offset else {})}
        page = api.get("/v1/subscriptions", params=params)
        assert page.status_code == 200 and len(page.json()["list"]) <= 2
        for item in page.json()["list"]:
            assert item["subscription"]["client_subacc"] == "0001"
            assert item["subscription"]["status"] == "active"
            assert set(item["subscription"]["customer"].values()) <= {"***"}
            seen.add(item["subscription"]["id"])
        offset = page.json().get("next_offset")
        if not offset:
            break
    assert mine <= seen
    for params, param in (({"status": "paused"}, "status"), ({"limit": 101}, "limit"),
                          ({"offset": "not-ours"}, "offset"), ({"colour": "red"}, "colour")):
        refused = api.get("/v1/subscriptions", params=params)
        assert refused.status_code == 400, params
        assert refused.json()["api_error_code"] == "param_wrong_value" and refused.json()["param"] == param


def test_recent_deliveries_with_quarantined_ones(api):
    subscription_id = api.new_subscription()
    received = api.get("/v1/events", params={"subscription_id": subscription_id})
    assert received.status_code == 200
    assert [item["event"]["event_type"] for item in received.json()["list"]] == ["NewSaleSuccess"]
    assert received.json()["list"][0]["event"]["status"] == "received"
    # A webhook without its subscriptionId is quarantined by the receiver, with the reason.
    query = {"status": "quarantined", "event_type": "RenewalSuccess", "limit": 100}
    before = {item["event"]["id"] for item in api.get("/v1/events", params=query).json()["list"]}
    bad = requests.post(api.stack.webhook_url + "&eventType=RenewalSuccess&clientAccnum=900100&clientSubacc=0000",
                        json={"transactionId": f"9{RUN}", "clientAccnum": "900100", "clientSubacc": "0000"},
                        timeout=10)
    assert bad.status_code == 400
    # The delivery log is written by the projector from the events stream: the new entry shows up within seconds.
    def newly_quarantined() -> list[dict]:
        quarantined = api.get("/v1/events", params=query)
        assert quarantined.status_code == 200
        return [item["event"] for item in quarantined.json()["list"] if item["event"]["id"] not in before]

    new = eventually(newly_quarantined, 30, what="the quarantined delivery in the delivery log")
    assert len(new) == 1 and new[0]["quarantine"]["reason"] and new[0]["quarantine"]["param"] == "subscriptionId"
    assert api.get("/v1/events", params={"days": 99}).json()["param"] == "days"


def test_unknown_resources_and_methods(api):
    missing = api.get("/v1/subscriptions/0000000000000000404")
    assert missing.status_code == 404 and missing.json() == {
        "message": missing.json()["message"], "type": "invalid_request", "api_error_code": "resource_not_found",
        "param": None}
    assert api.get("/v1/operations/op_doesnotexist0000000000000").status_code == 404
    assert api.get("/v1/plans").status_code == 404
    wrong = api.request("PUT", "/v1/subscriptions/0000000000000000404")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert wrong.json()["api_error_code"] == "http_method_not_supported"
    assert api.get("/v1/subscriptions/1/discount").status_code == 405


def test_a_failure_of_ours_is_500_internal_error_without_detail(start_local_stack):
    """A second stack whose operations table refuses every write (moto answering InternalServerError), and whose
    API key is the one given in BILLOPS_API_KEY."""
    own_key = f"e2e-own-key-{RUN}"
    settings = {"BILLOPS_LOCAL_DYNAMODB_FAULTS": "error:1,table:OperationsTable,backoff_scale:0.01",
                "BILLOPS_API_KEY": own_key}
    with start_local_stack(settings) as stack:
        broken = Api(stack, own_key)
        assert broken.get("/v1/subscriptions").status_code == 200, "BILLOPS_API_KEY is the stack's key"
        if own_key != API_KEY:
            status, _, _ = broken.from_source("127.0.0.198", "/v1/subscriptions", basic(API_KEY))
            assert status == 401, "and the default is not"
        subscription_id = broken.new_subscription()
        answer = broken.post(f"/v1/subscriptions/{subscription_id}/extend", data={"days": "1"},
                             headers={"Idempotency-Key": idempotency_key("broken")})
        assert answer.status_code == 500, answer.text
        assert answer.json() == {"message": answer.json()["message"], "type": "operation_failed",
                                 "api_error_code": "internal_error", "param": None}
        for detail in ("DynamoDB", "InternalServerError", "OperationsTable", "Traceback", "botocore", "File "):
            assert detail not in answer.text
        assert broken.get(f"/v1/subscriptions/{subscription_id}").status_code == 200, "reads still work"


# --- operations ---------------------------------------------------------------------------------------------------


def test_a_discount_from_request_to_ccbill_and_idempotency(api):
    subscription_id = api.new_subscription()
    headers = {"Idempotency-Key": idempotency_key("discount")}
    answer = api.post(f"/v1/subscriptions/{subscription_id}/discount", data={"discount_amount": "2.00"},
                      headers=headers)
    assert answer.status_code == 202, answer.text
    operation = answer.json()["operation"]
    assert operation["status"] in ("queued", "in_progress", "succeeded") and operation["type"] == "discount"
    assert answer.headers["Location"] == f"/v1/operations/{operation['id']}"
    done = api.wait_for_operation(operation["id"])
    assert done["status"] == "succeeded", done
    assert done["ccbill_result"]["code"] == 1 and done["ccbill_result"]["action"] == "discountSubscription"
    assert api.wait_for_subscription(subscription_id, lambda s: s["recurring_price"] == "17.95")

    replay = api.post(f"/v1/subscriptions/{subscription_id}/discount", data={"discount_amount": "2.00"},
                      headers=headers)
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["operation"]["id"] == operation["id"]
    assert replay.json()["operation"]["status"] == "succeeded"
    conflict = api.post(f"/v1/subscriptions/{subscription_id}/discount", json={"discount_amount": "1.00"},
                        headers=headers)
    assert conflict.status_code == 409 and conflict.json()["param"] == "Idempotency-Key"
    calls = requests.get(f"{api.stack.sandbox_url}/sandbox/calls", timeout=10).json()
    assert len([c for c in calls if c["action"] == "discountSubscription"
                and c["params"].get("subscriptionId") == subscription_id]) == 1


def _requested_operations(api, subscription_id: str) -> list[dict]:
    """The subscription's operations but the reconciliation job's own `refresh` reads (it runs every 15 s locally
    and refreshes a new subscription whenever it likes): what the test's requests recorded."""
    operations = api.get(f"/v1/subscriptions/{subscription_id}/operations").json()["list"]
    return [item for item in operations if item["operation"]["type"] != "refresh"]


def test_ccbills_discount_rules_refuse_before_anything_is_queued(api):
    subscription_id = api.new_subscription()
    for body, param, code in (({"discount_amount": "15.00"}, "discount_amount", -18),
                              ({"new_recurring_price": "25.00"}, "new_recurring_price", -20),
                              ({"discount_amount": "0.00"}, "discount_amount", -19),
                              ({"discount_amount": "2.00", "new_recurring_price": "9.00"}, "discount_amount", None)):
        refused = api.post(f"/v1/subscriptions/{subscription_id}/discount", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["api_error_code"] == "param_wrong_value" and refused.json()["param"] == param
        if code is not None:
            assert refused.json()["ccbill_code"] == code and refused.json()["ccbill_meaning"]
    assert _requested_operations(api, subscription_id) == [], "nothing recorded"
    # Nothing queued either: the queue is FIFO per subscription, so once a later extension is done, anything queued
    # before it would have been taken (and recorded) by the worker.
    later = api.post(f"/v1/subscriptions/{subscription_id}/extend", data={"days": "1"})
    assert api.wait_for_operation(later.json()["operation"]["id"])["status"] == "succeeded"
    operations = _requested_operations(api, subscription_id)
    assert [item["operation"]["id"] for item in operations] == [later.json()["operation"]["id"]]
    calls = requests.get(f"{api.stack.sandbox_url}/sandbox/calls", timeout=10).json()
    assert not [c for c in calls if c["action"] == "discountSubscription"
                and c["params"].get("subscriptionId") == subscription_id], "CCBill heard nothing of them"


def test_extend_cancel_and_what_a_cancelled_or_expired_subscription_refuses(api):
    subscription_id = api.new_subscription()
    extend = api.post(f"/v1/subscriptions/{subscription_id}/extend", data={"days": "7"})
    assert extend.status_code == 202
    assert api.wait_for_operation(extend.json()["operation"]["id"])["status"] == "succeeded"
    cancel = api.post(f"/v1/subscriptions/{subscription_id}/cancel", headers={"Idempotency-Key": idempotency_key(
        "cancel")})
    assert cancel.status_code == 202
    assert api.wait_for_operation(cancel.json()["operation"]["id"])["status"] == "succeeded"
    api.wait_for_subscription(subscription_id, lambda s: s["status"] == "cancelled" and s["cancelled_at"])
    again = api.post(f"/v1/subscriptions/{subscription_id}/cancel")
    assert again.status_code == 409 and again.json()["api_error_code"] == "invalid_state_for_request"
    discount = api.post(f"/v1/subscriptions/{subscription_id}/discount", json={"discount_amount": "1.00"})
    assert discount.status_code == 409 and discount.json()["ccbill_code"] == -22
    replay = api.post(f"/v1/subscriptions/{subscription_id}/cancel", headers={"Idempotency-Key": idempotency_key(
        "cancel")})
    assert replay.status_code == 202, "a repeated request is answered with its operation, whatever came since"
    api.sandbox(subscription_id, "expire")
    api.wait_for_subscription(subscription_id, lambda s: s["status"] == "expired" and s["expired_at"])
    for route, body in (("extend", {"days": 1}), ("upgrade", {"method": "api", "upgrade_type_id": "15"}),
                        ("upgrade_link", {})):
        refused = api.post(f"/v1/subscriptions/{subscription_id}/{route}", json=body)
        assert refused.status_code == 409, (route, refused.text)
    assert api.post("/v1/subscriptions/0000000000000000404/cancel").status_code == 404


def test_upgrades_by_api_and_by_the_upgrade_system(api):
    subscription_id = api.new_subscription()
    upgrade = api.post(f"/v1/subscriptions/{subscription_id}/upgrade",
                       json={"method": "api", "upgrade_type_id": "15"},
                       headers={"Idempotency-Key": idempotency_key("upgrade")})
    assert upgrade.status_code == 202, upgrade.text
    done = api.wait_for_operation(upgrade.json()["operation"]["id"])
    assert done["status"] == "succeeded" and done["new_subscription_id"], done
    upgraded = api.wait_for_subscription(done["new_subscription_id"], lambda s: True)
    assert upgraded["original_subscription_id"] == subscription_id and upgraded["client_subacc"] == "0001"

    refused = api.post(f"/v1/subscriptions/{subscription_id}/upgrade",
                       json={"method": "api", "client_subacc": "0001", "initial_price": "150.00",
                             "initial_period": 30})
    assert refused.status_code == 400 and refused.json()["param"] == "initial_price"

    # The same destination again (gold succeeded just now): refused, naming the upgrade; another one is fine.
    again = api.post(f"/v1/subscriptions/{subscription_id}/upgrade", data={"method": "upgrade_system",
                                                                           "upgrade_type_id": "15"})
    assert again.status_code == 409 and again.json()["operation_id"] == upgrade.json()["operation"]["id"]
    system = api.post(f"/v1/subscriptions/{subscription_id}/upgrade", data={"method": "upgrade_system",
                                                                            "upgrade_type_id": "20"})
    assert system.status_code == 202, system.text
    waiting = api.wait_for_operation(system.json()["operation"]["id"], ("in_progress", "failed"))
    waiting = eventually(lambda: (found := api.get(f"/v1/operations/{waiting['id']}").json()["operation"])[
        "upgrade_form"] is not None and found, 30, what="the upgrade form recorded on the operation")
    assert waiting["status"] == "in_progress" and waiting["upgrade_form"]["fields"]["subscriptionId"] == \
        subscription_id


def test_a_failure_at_ccbill_is_given_with_ccbills_code_and_its_meaning(api):
    subscription_id = api.new_subscription()
    faults = requests.post(f"{api.stack.sandbox_url}/sandbox/faults",
                           json={"action": "extendSubscription", "mode": "code:-3", "count": 1}, timeout=10)
    assert faults.ok, faults.text
    answer = api.post(f"/v1/subscriptions/{subscription_id}/extend", json={"days": 2})
    assert answer.status_code == 202, answer.text
    failed = api.wait_for_operation(answer.json()["operation"]["id"])
    assert failed["status"] == "failed", failed
    assert failed["failure"]["ccbill_code"] == -3
    assert failed["failure"]["ccbill_meaning"] == "No record was found for the given subscription."
    assert (failed["ccbill_result"]["code"], failed["ccbill_result"]["action"]) == (-3, "extendSubscription")
    assert failed["ccbill_result"]["meaning"]


def test_an_operation_for_later(api):
    subscription_id = api.new_subscription()
    run_at = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = api.post(f"/v1/subscriptions/{subscription_id}/extend", json={"days": 3, "run_at": run_at})
    assert answer.status_code == 202
    assert answer.json()["operation"]["status"] == "queued" and answer.json()["operation"]["run_at"]
    done = api.wait_for_operation(answer.json()["operation"]["id"])
    assert done["status"] == "succeeded"
    assert done["completed_at"] >= run_at.replace("Z", "")


def test_the_event_actions_header_switches_off_one_requests_domain_events(api, local_stack):
    subscription_id = api.new_subscription()
    quiet = api.post(f"/v1/subscriptions/{subscription_id}/extend", json={"days": 1},
                     headers={"chargebee-event-actions": "all-disabled"})
    loud = api.post(f"/v1/subscriptions/{subscription_id}/extend", json={"days": 2})
    quiet_id, loud_id = quiet.json()["operation"]["id"], loud.json()["operation"]["id"]
    assert quiet.json()["operation"]["suppress_domain_events"] is True
    for operation_id in (quiet_id, loud_id):
        assert api.wait_for_operation(operation_id)["status"] == "succeeded"
    seen: set[str] = set()

    def loud_published() -> bool:
        seen.update(event["detail"].get("operation_id") for event in local_stack.domain_events(wait_seconds=1)
                    if event.get("detail-type", "").startswith("Operation"))
        return loud_id in seen

    eventually(loud_published, 15, what="the loud operation's domain event", show=lambda: seen)
    assert quiet_id not in seen
    refused = api.post(f"/v1/subscriptions/{subscription_id}/extend", json={"days": 1},
                       headers={"billops-event-actions": "some"})
    assert refused.status_code == 400 and refused.json()["param"] == "billops-event-actions"


def test_upgrade_links_follow_the_stacks_security_type(api):
    """The local stack has a fixed egress address the sandbox whitelists: the backend allowUpgrade post is the
    default, and an enc (a permanent credential of the subscription) is refused, as CCBill would refuse it."""
    subscription_id = api.new_subscription()
    headers = {"Idempotency-Key": idempotency_key("link")}
    link = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link", headers=headers,
                    data={"upgrade_type_id": "15"})
    assert link.status_code == 200, link.text
    body = link.json()["upgrade_link"]
    assert set(body) >= {"url", "action_url", "form_fields", "expires_at", "operation_id", "credential_warning"}
    assert body["method"] == "allow_upgrade" and body["credential_warning"] is None
    assert body["url"].startswith(f"{api.url}/upgrade/")
    assert body["action_url"] == f"{api.stack.sandbox_url}/jpost/upgradeSubscription.cgi"
    assert "enc" not in body["form_fields"] and body["form_fields"]["upgradeTypeId"] == "0015"
    page = requests.get(body["url"], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    replay = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link", headers=headers,
                      data={"upgrade_type_id": "15"})
    assert replay.json() == link.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link", headers=headers,
                    data={"upgrade_type_id": "20"}).status_code == 409
    enc = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link", data={"method": "enc",
                                                                              "upgrade_type_id": "15"})
    assert enc.status_code == 400 and enc.json()["param"] == "method", enc.text
    several = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link")
    assert several.status_code == 400 and several.json()["param"] == "upgrade_type_id"
    refused = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link", data={"method": "paypal"})
    assert refused.status_code == 400 and refused.json()["param"] == "method"


def test_an_allow_upgrade_links_operation_can_be_followed_at_once(api):
    """The link's operation is recorded before the answer names it: found at once even while its message waits on
    the FIFO queue behind an earlier operation of the same subscription (held 4 s by a slow CCBill answer)."""
    subscription_id = api.new_subscription()
    faults = requests.post(f"{api.stack.sandbox_url}/sandbox/faults",
                           json={"action": "extendSubscription", "mode": "slow", "seconds": 4, "count": 1}, timeout=10)
    assert faults.ok, faults.text
    extend = api.post(f"/v1/subscriptions/{subscription_id}/extend", data={"days": "1"})
    assert extend.status_code == 202, extend.text
    api.wait_for_operation(extend.json()["operation"]["id"], ("in_progress",), timeout=10)

    allow = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link",
                     data={"method": "allow_upgrade", "upgrade_type_id": "15"},
                     headers={"Idempotency-Key": idempotency_key("allow-link")})
    assert allow.status_code == 200, allow.text
    operation_id = allow.json()["upgrade_link"]["operation_id"]
    named = api.get(f"/v1/operations/{operation_id}")
    assert named.status_code == 200, "the operation exists when it is named"
    assert named.json()["operation"]["status"] == "queued", "it waits behind the slow extension"
    assert named.json()["operation"]["type"] == "upgrade"
    again = api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link",
                     data={"method": "allow_upgrade", "upgrade_type_id": "15"},
                     headers={"Idempotency-Key": idempotency_key("allow-link")})
    assert again.json() == allow.json() and again.headers["Idempotent-Replayed"] == "true"
    assert api.post(f"/v1/subscriptions/{subscription_id}/upgrade_link", data={"method": "enc"},
                    headers={"Idempotency-Key": idempotency_key("allow-link")}).status_code == 409

    assert api.wait_for_operation(extend.json()["operation"]["id"])["status"] == "succeeded"
    assert api.wait_for_operation(operation_id, ("in_progress", "failed"))["status"] == "in_progress"
    operations = _requested_operations(api, subscription_id)
    assert sorted(item["operation"]["type"] for item in operations) == ["extend", "upgrade"], \
        "one operation for the link, however often it was asked for"
