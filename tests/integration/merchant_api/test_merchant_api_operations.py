"""Operations through the merchant API against moto and the CCBill sandbox: validated with the worker's rules before
anything is queued, recorded, queued on the FIFO queue exactly as the operations contract says, carried out by the
real worker; Idempotency-Key; the event-actions header; upgrade links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import requests
from billops.operations.operation_records import operation_id_for


def _nothing_queued(merchant_api) -> None:
    assert merchant_api.ops.queue_depth() == 0
    assert merchant_api.ops.operations() == []


def test_a_discount_is_checked_recorded_queued_and_carried_out(merchant_api):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    answer = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/discount",
                               body={"discount_amount": "2.00"}, content_type="application/x-www-form-urlencoded",
                               headers={"idempotency-key": "retention-7781"})
    assert answer.status == 202, answer.body
    operation = answer.body["operation"]
    assert operation["id"] == operation_id_for("api:retention-7781")
    assert (operation["status"], operation["type"], operation["subscription_id"]) == ("queued", "discount",
                                                                                       subscription_id)
    assert operation["idempotency_key"] == "retention-7781"
    assert operation["parameters"] == {"discount_amount": "2.00"}
    assert answer.headers["location"] == f"/v1/operations/{operation['id']}"

    (message,) = ops.receive()
    assert json.loads(message["Body"]) == {
        "operation_type": "discount", "subscription_id": subscription_id, "idempotency_key": "api:retention-7781",
        "parameters": {"discount_amount": "2.00"}, "suppress_domain_events": False}
    assert message["Attributes"]["MessageGroupId"] == subscription_id
    assert message["Attributes"]["MessageDeduplicationId"] == "api:retention-7781"
    ops.invoke_worker([message])

    done = merchant_api.call("GET", f"/v1/operations/{operation['id']}")
    assert done.status == 200
    assert done.body["operation"]["status"] == "succeeded"
    assert done.body["operation"]["ccbill_result"]["code"] == 1
    assert done.body["operation"]["attempts"] == 1
    assert ops.sandbox.subscription(subscription_id)["recurring_price"] == "17.95"
    shown = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}").body["subscription"]
    assert shown["recurring_price"] == "17.95"

    again = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/discount",
                              body={"discount_amount": "2.00"}, headers={"idempotency-key": "retention-7781"})
    assert again.status == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.body["operation"]["id"] == operation["id"] and again.body["operation"]["status"] == "succeeded"
    assert ops.queue_depth() == 0, "a finished operation is not sent again"
    other = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/discount",
                              body={"discount_amount": "3.00"}, headers={"idempotency-key": "retention-7781"})
    assert other.status == 409
    assert other.body["api_error_code"] == "idempotency_key_reused" and other.body["param"] == "Idempotency-Key"
    assert len(ops.operations()) == 1
    listed = merchant_api.call("GET", f"/v1/subscriptions/{subscription_id}/operations")
    assert [item["operation"]["id"] for item in listed.body["list"]] == [operation["id"]]


DISCOUNT_REFUSALS = [
    ({"discount_amount": "15.00"}, "discount_amount", -18),       # 19.95 - 15.00 < 5.00
    ({"new_recurring_price": "25.00"}, "new_recurring_price", -20),  # above the current price
    ({"new_recurring_price": "4.99"}, "new_recurring_price", -18),
    ({"discount_amount": "0.00"}, "discount_amount", -19),
    ({"discount_amount": "1.00", "new_recurring_price": "9.00"}, "discount_amount", None),
    ({}, "discount_amount", None),
    ({"discount_amount": "1,00"}, "discount_amount", None),
    ({"discount_amount": 2.5}, "discount_amount", None),          # a JSON number: prices travel as strings
    ({"discount_amount": "1.00", "run_at": "tomorrow"}, "run_at", None),
    ({"discount_amount": "1.00", "run_at": "2026-03-01T00:00:00"}, "run_at", None),  # no zone
    ({"discount": "1.00"}, "discount", None),
]


def test_discounts_ccbill_would_refuse_are_refused_before_anything_is_queued(merchant_api):
    subscription_id = merchant_api.ops.new_subscription()
    for body, param, code in DISCOUNT_REFUSALS:
        answer = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/discount", body=body)
        assert answer.status == 400, (body, answer.body)
        assert answer.body["api_error_code"] == "param_wrong_value" and answer.body["param"] == param, body
        assert answer.body["type"] == "invalid_request"
        if code is None:
            assert "ccbill_code" not in answer.body, body
        else:
            assert answer.body["ccbill_code"] == code and answer.body["ccbill_meaning"], body
    _nothing_queued(merchant_api)


def test_the_subscriptions_state_decides_409_and_404(merchant_api):
    ops = merchant_api.ops
    sandbox = ops.sandbox.url
    cancelled = ops.new_subscription()
    requests.post(f"{sandbox}/sandbox/subscriptions/{cancelled}/cancel", timeout=10)
    expired = ops.new_subscription()
    requests.post(f"{sandbox}/sandbox/subscriptions/{expired}/expire", timeout=10)
    ops.deliver_webhooks()

    discount = merchant_api.call("POST", f"/v1/subscriptions/{cancelled}/discount", body={"discount_amount": "1.00"})
    assert discount.status == 409 and discount.body["api_error_code"] == "invalid_state_for_request"
    assert discount.body["ccbill_code"] == -22
    again = merchant_api.call("POST", f"/v1/subscriptions/{cancelled}/cancel")
    assert again.status == 409 and "already cancelled" in again.body["message"]
    for route, body in (("discount", {"discount_amount": "1.00"}), ("cancel", {}), ("extend", {"days": 5}),
                        ("upgrade", {"method": "api", "upgrade_type_id": "15"})):
        answer = merchant_api.call("POST", f"/v1/subscriptions/{expired}/{route}", body=body)
        assert answer.status == 409 and answer.body["api_error_code"] == "invalid_state_for_request", route
        unknown = merchant_api.call("POST", f"/v1/subscriptions/0000000000000000404/{route}", body=body)
        assert unknown.status == 404 and unknown.body["api_error_code"] == "resource_not_found", route
    _nothing_queued(merchant_api)
    extended = merchant_api.call("POST", f"/v1/subscriptions/{cancelled}/extend", body={"days": 5})
    assert extended.status == 202, "a cancelled subscription can still be extended (its end moves)"


def test_upgrades_by_catalogue_by_price_point_and_by_the_upgrade_system(merchant_api):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    by_type = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade",
                                body={"method": "api", "upgrade_type_id": "15"}, headers={"idempotency-key": "u-1"})
    assert by_type.status == 202, by_type.body
    assert by_type.body["operation"]["parameters"] == {"method": "api", "upgrade": "gold"}
    ops.work()
    ops.deliver_webhooks()
    done = merchant_api.call("GET", f"/v1/operations/{by_type.body['operation']['id']}").body["operation"]
    assert done["status"] == "succeeded" and done["new_subscription_id"]
    assert len(ops.charges()) == 2  # the sale, the upgrade

    price_point = {"method": "api", "client_subacc": "1", "initial_price": "24.95", "initial_period": "30",
                   "recurring_price": "24.95", "recurring_period": "30", "rebills": "99", "currency_code": "USD"}
    # The same destination (900100/0001) as the upgrade that just succeeded: refused, naming it, unless forced.
    repeat = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade", body=price_point,
                               content_type="application/x-www-form-urlencoded")
    assert repeat.status == 409 and repeat.body["param"] == "force", repeat.body
    assert repeat.body["operation_id"] == by_type.body["operation"]["id"]
    assert by_type.body["operation"]["id"] in repeat.body["message"]
    explicit = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade",
                                 body={**price_point, "force": "true"},
                                 content_type="application/x-www-form-urlencoded")
    assert explicit.status == 202, explicit.body
    assert explicit.body["operation"]["parameters"] == {
        "method": "api", "client_accnum": "900100", "client_subacc": "1", "initial_price": "24.95",
        "initial_period": 30, "recurring_price": "24.95", "recurring_period": 30, "rebills": 99,
        "currency_code": "USD", "force": True}
    assert explicit.body["operation"]["idempotency_key"].startswith("auto-")
    original = explicit.body["operation"]["original_subscription"]
    assert original["keeps_billing"] is True and "keeps billing" in original["note"]

    for body, param in (
        ({**price_point, "initial_price": "150.00"}, "initial_price"),       # above the subaccount's maximum: -7
        ({**price_point, "recurring_period": "45"}, "recurring_period"),     # not a period of the subaccount
        ({**price_point, "client_subacc": "0009"}, "client_subacc"),         # no settings for it
        ({**price_point, "recurring_price": None, "recurring_period": None}, "rebills"),
        ({"method": "api", "initial_price": "24.95"}, "client_subacc"),
        ({"method": "api", "upgrade_type_id": "15", "initial_price": "24.95"}, "initial_price"),
        ({"method": "api", "upgrade_type_id": "77"}, "upgrade_type_id"),
        ({"method": "upgrade_system", "initial_price": "24.95"}, "initial_price"),
        ({"method": "paypal"}, "method"),
        ({}, "method"),
    ):
        body = {k: v for k, v in body.items() if v is not None}
        refused = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade", body=body)
        assert refused.status == 400 and refused.body["param"] == param, (body, refused.body)

    system = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade",
                               body={"method": "upgrade_system", "upgrade_type_id": "20"})
    assert system.status == 202, system.body
    assert system.body["operation"]["parameters"] == {"method": "upgrade_system", "upgrade": "platinum"}
    assert system.body["operation"]["original_subscription"] is None  # the consumer's form replaces it
    ops.work()
    waiting = merchant_api.call("GET", f"/v1/operations/{system.body['operation']['id']}").body["operation"]
    assert waiting["status"] == "in_progress"
    assert waiting["upgrade_form"]["fields"]["subscriptionId"] == subscription_id
    assert waiting["upgrade_form"]["expires_at"]


def test_cancel_later_and_extend_now(merchant_api):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cancel = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/cancel", body={"run_at": later})
    assert cancel.status == 202
    assert cancel.body["operation"]["status"] == "queued"
    assert cancel.body["operation"]["run_at"].startswith(later[:19])
    assert ops.record(cancel.body["operation"]["id"])["status"] == "scheduled"
    assert ops.queue_depth() == 0, "a deferred operation waits in the table; the scheduler sends it when due"

    extend = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": "10"},
                               content_type="application/x-www-form-urlencoded")
    assert extend.status == 202
    ops.work()
    assert merchant_api.call("GET", f"/v1/operations/{extend.body['operation']['id']}").body[
        "operation"]["status"] == "succeeded"
    for days in ("0", "366", "ten"):
        refused = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": days},
                                    content_type="application/x-www-form-urlencoded")
        assert refused.status == 400 and refused.body["param"] == "days"
    query = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": 5},
                              query={"days": "5"})
    assert query.status == 400 and query.body["param"] == "days"


def test_the_event_actions_header_switches_off_the_domain_events_of_one_request(merchant_api):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    ops.events()
    quiet = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": 1},
                              headers={"billops-event-actions": "all-disabled"})
    loud = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": 2},
                             headers={"chargebee-event-actions": "all-disabled", "idempotency-key": "x-1"})
    normal = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": 3})
    assert quiet.body["operation"]["suppress_domain_events"] is True
    assert loud.body["operation"]["suppress_domain_events"] is True
    assert normal.body["operation"]["suppress_domain_events"] is False
    ops.work()
    succeeded = {event["detail"]["operation_id"] for event in ops.events_of("OperationSucceeded")}
    assert normal.body["operation"]["id"] in succeeded
    assert quiet.body["operation"]["id"] not in succeeded and loud.body["operation"]["id"] not in succeeded
    refused = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/extend", body={"days": 1},
                                headers={"billops-event-actions": "some"})
    assert refused.status == 400 and refused.body["param"] == "billops-event-actions"


def test_a_failed_send_is_500_and_the_same_request_sends_it(merchant_api, monkeypatch, capsys):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    queue_url = ops.names["queue_url"]
    monkeypatch.setenv("BILLOPS_OPERATIONS_QUEUE_URL", queue_url + "-missing.fifo")
    merchant_api.reload()
    capsys.readouterr()
    failed = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/cancel",
                               headers={"idempotency-key": "cancel-7783"})
    assert failed.status == 500
    assert failed.body["api_error_code"] == "internal_error" and "missing" not in failed.body["message"]
    assert '"ApiInternalErrors":[1.0]' in capsys.readouterr().out.replace(" ", ""), "the alarm's metric"
    assert ops.operation("api:cancel-7783")["status"] == "queued"
    monkeypatch.setenv("BILLOPS_OPERATIONS_QUEUE_URL", queue_url)
    merchant_api.reload()
    repeated = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/cancel",
                                 headers={"idempotency-key": "cancel-7783"})
    assert repeated.status == 202 and repeated.headers["idempotent-replayed"] == "true"
    assert ops.queue_depth() == 1
    ops.work()
    assert ops.operation("api:cancel-7783")["status"] == "succeeded"
    assert len(ops.calls("cancelSubscription")) == 1


def test_an_allow_upgrade_link_repeated_after_a_failed_send_names_the_same_operation(merchant_api, monkeypatch):
    from billops.upgrade_page.link_tokens import nonce_for_request

    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    queue_url = ops.names["queue_url"]
    monkeypatch.setenv("BILLOPS_OPERATIONS_QUEUE_URL", queue_url + "-missing.fifo")
    merchant_api.reload()
    path, body = f"/v1/subscriptions/{subscription_id}/upgrade_link", {"method": "allow_upgrade",
                                                                       "upgrade_type_id": "15"}
    failed = merchant_api.call("POST", path, body=body, headers={"idempotency-key": "allow-link-9"})
    assert failed.status == 500 and failed.body["api_error_code"] == "internal_error"
    key = "upgrade-link:" + nonce_for_request("allow-link-9")
    assert ops.operation(key)["status"] == "queued", "recorded; its message could not be sent"
    assert ops.queue_depth() == 0

    monkeypatch.setenv("BILLOPS_OPERATIONS_QUEUE_URL", queue_url)
    merchant_api.reload()
    repeated = merchant_api.call("POST", path, body=body, headers={"idempotency-key": "allow-link-9"})
    assert repeated.status == 200, repeated.body
    assert repeated.body["upgrade_link"]["operation_id"] == operation_id_for(key)
    assert ops.queue_depth() == 1, "the repeat sent the recorded operation's message"
    assert [record["operation_id"] for record in ops.operations()] == [operation_id_for(key)], "one operation"
    ops.work()
    assert ops.operation(key)["status"] == "awaiting_consumer"
    assert len(ops.calls("allowUpgrade")) == 1


def test_idempotency_keys_are_checked(merchant_api):
    subscription_id = merchant_api.ops.new_subscription()
    for key in ("has space", "x" * 121, "tab\tkey"):
        refused = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/cancel",
                                    headers={"idempotency-key": key})
        assert refused.status == 400 and refused.body["param"] == "Idempotency-Key", key
    _nothing_queued(merchant_api)


def test_upgrade_links(merchant_api, monkeypatch):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    # This deployment has the fixed egress IP (Security Type backend_post): allow_upgrade is the default.
    link = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                             body={"upgrade_type_id": "15"}, headers={"idempotency-key": "link-1"})
    assert link.status == 200, link.body
    body = link.body["upgrade_link"]
    assert body["url"].startswith("https://billing.example.test/upgrade/")
    assert body["action_url"].endswith("/jpost/upgradeSubscription.cgi")
    assert body["method"] == "allow_upgrade" and body["credential_warning"] is None
    assert body["form_fields"] == {"clientAccnum": "900100", "clientSubacc": "0000", "action": "upgradeSubscription",
                                   "subscriptionId": subscription_id, "upgradeClientAccnum": "900100",
                                   "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}
    again = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                              body={"upgrade_type_id": "15"}, headers={"idempotency-key": "link-1"})
    assert again.body == link.body and again.headers["idempotent-replayed"] == "true"
    other = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                              body={"upgrade_type_id": "20"}, headers={"idempotency-key": "link-1"})
    assert other.status == 409 and other.body["api_error_code"] == "idempotency_key_reused"
    named = merchant_api.call("GET", f"/v1/operations/{body['operation_id']}")
    assert named.status == 200, "the link's operation is recorded before the answer names it"
    assert (named.body["operation"]["status"], named.body["operation"]["type"]) == ("queued", "upgrade")
    assert named.body["operation"]["parameters"]["method"] == "upgrade_system"
    assert ops.queue_depth() == 1
    enc = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                            body={"method": "enc", "upgrade_type_id": "15"})
    assert enc.status == 400 and enc.body["param"] == "method" and "accepts no enc" in enc.body["message"]

    for body, status, param in (({"method": "paypal"}, 400, "method"), ({"upgrade_type_id": "77"}, 400,
                                                                         "upgrade_type_id"),
                                ({}, 400, "upgrade_type_id"),  # two upgrades are configured: which one?
                                ({"colour": "red"}, 400, "colour")):
        refused = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link", body=body)
        assert (refused.status, refused.body["param"]) == (status, param), refused.body
    missing = merchant_api.call("POST", "/v1/subscriptions/0000000000000000404/upgrade_link")
    assert missing.status == 404

    # Without a fixed egress IP (Security Type encryption): enc, with its warning, and the offer noted.
    monkeypatch.setenv("BILLOPS_UPGRADE_SECURITY", "encryption")
    ops.sandbox.set_upgrade_security("encryption")
    enc = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                            body={"upgrade_type_id": "20"})
    assert enc.status == 200, enc.body
    enc_link = enc.body["upgrade_link"]
    assert enc_link["method"] == "enc" and enc_link["operation_id"] is None
    assert "permanent credential" in enc_link["credential_warning"]
    assert set(enc_link["form_fields"]) == {"clientAccnum", "clientSubacc", "enc", "upgradeClientAccnum",
                                            "upgradeClientSubacc", "upgradeTypeId"}
    assert enc_link["form_fields"]["upgradeClientAccnum"] == "900300"
    offers = ops.subscription(subscription_id)["operation_facts"]["upgrade_offers"]
    assert offers["platinum"]["method"] == "enc"
    allow = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                              body={"method": "allow_upgrade", "upgrade_type_id": "20"})
    assert allow.status == 400 and allow.body["param"] == "method" and "fixed egress IP" in allow.body["message"]

    requests.post(f"{ops.sandbox.url}/sandbox/subscriptions/{subscription_id}/expire", timeout=10)
    ops.deliver_webhooks()
    expired = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/upgrade_link",
                                body={"upgrade_type_id": "15"})
    assert expired.status == 409 and expired.body["api_error_code"] == "invalid_state_for_request"


def test_record_and_queue_makes_an_operation_that_can_be_looked_up_at_once(merchant_api):
    """For callers outside the API's routes (an allowUpgrade link's operation): recorded before it is queued; the same
    message again is the same operation, another one under its key a conflict."""
    import pytest
    from billops.operations.operation_submission import RequestConflict, record_and_queue

    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    message = {"operation_type": "upgrade", "subscription_id": subscription_id,
               "idempotency_key": "upgrade-link:nonce-1", "client_subacc": "0000",
               "parameters": {"method": "allow_upgrade", "upgrade": "gold"}}
    submitted = record_and_queue(message, sqs=ops.sqs)
    record = submitted.record
    assert not submitted.replayed
    assert record["operation_id"] == operation_id_for("upgrade-link:nonce-1") and record["status"] == "queued"
    found = merchant_api.call("GET", f"/v1/operations/{record['operation_id']}")
    assert found.status == 200 and found.body["operation"]["status"] == "queued"
    again = record_and_queue(message, sqs=ops.sqs)
    assert again.replayed and again.record["operation_id"] == record["operation_id"]
    assert ops.queue_depth() == 1, "the repeat is dropped by SQS's deduplication"
    with pytest.raises(RequestConflict):
        record_and_queue({**message, "parameters": {"method": "allow_upgrade", "upgrade": "platinum"}}, sqs=ops.sqs)
    assert len(ops.operations()) == 1 and ops.queue_depth() == 1
    ops.work()
    assert merchant_api.call("GET", f"/v1/operations/{record['operation_id']}").body["operation"][
        "status"] == "in_progress"


def test_refunds_and_voids_through_the_api(merchant_api):
    ops = merchant_api.ops
    subscription_id = ops.new_subscription()
    answer = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/refund", body={"amount": "5.00"},
                               content_type="application/x-www-form-urlencoded",
                               headers={"idempotency-key": "goodwill-1"})
    assert answer.status == 202, answer.body
    operation = answer.body["operation"]
    assert (operation["type"], operation["status"], operation["parameters"]) == ("refund", "queued",
                                                                                 {"amount": "5.00"})
    (message,) = ops.receive()
    assert json.loads(message["Body"]) == {
        "operation_type": "refund", "subscription_id": subscription_id, "idempotency_key": "api:goodwill-1",
        "parameters": {"amount": "5.00"}, "suppress_domain_events": False}
    ops.invoke_worker([message])
    done = merchant_api.call("GET", f"/v1/operations/{operation['id']}").body["operation"]
    assert done["status"] == "succeeded" and done["ccbill_result"]["action"] == "refundTransaction"
    assert [e["amount"] for e in ops.sandbox.ledger() if e["kind"] == "refund"] == ["-5.00"]

    replay = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/refund", body={"amount": "5.00"},
                               headers={"idempotency-key": "goodwill-1"})
    assert replay.status == 202 and replay.headers["idempotent-replayed"] == "true"
    other = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/refund", body={"amount": "6.00"},
                              headers={"idempotency-key": "goodwill-1"})
    assert other.status == 409 and other.body["param"] == "Idempotency-Key"
    assert ops.queue_depth() == 0

    # A refund or void of an expired subscription is allowed: the money is on a charge, whatever became of it.
    voided = ops.new_subscription()
    requests.post(f"{ops.sandbox.url}/sandbox/subscriptions/{voided}/expire", timeout=10)
    ops.deliver_webhooks()
    void = merchant_api.call("POST", f"/v1/subscriptions/{voided}/void", headers={"idempotency-key": "void-1"})
    assert void.status == 202 and void.body["operation"]["type"] == "void", void.body
    ops.work()
    assert merchant_api.call("GET", f"/v1/operations/{void.body['operation']['id']}").body["operation"][
        "status"] == "succeeded"


REFUND_REFUSALS = [
    ("refund", {"amount": 5}, "amount"),                # a JSON number: prices travel as strings
    ("refund", {"amount": "5.001"}, "amount"),
    ("refund", {"amount": "-5.00"}, "amount"),
    ("refund", {"amount": "0.00"}, "amount"),
    ("refund", {"transaction_id": "01x"}, "transaction_id"),
    ("refund", {"reason": "goodwill"}, "reason"),
    ("void", {"amount": "5.00"}, "amount"),             # a void covers the whole transaction
]


def test_refund_and_void_requests_ccbill_would_refuse_are_refused_before_anything_is_queued(merchant_api):
    subscription_id = merchant_api.ops.new_subscription()
    for route, body, param in REFUND_REFUSALS:
        answer = merchant_api.call("POST", f"/v1/subscriptions/{subscription_id}/{route}", body=body)
        assert answer.status == 400, (body, answer.body)
        assert answer.body["api_error_code"] == "param_wrong_value" and answer.body["param"] == param, body
    unknown = merchant_api.call("POST", "/v1/subscriptions/0000000000000000404/refund")
    assert unknown.status == 404
    _nothing_queued(merchant_api)


def test_a_deeply_nested_body_is_a_400_and_a_read_only_key_is_refused_before_its_body_is_read(merchant_api):
    """Security review: a read-only key POSTing JSON nested past the parser's limit got a 500 (RecursionError), the
    body being parsed before the scope was checked."""
    deep = "[" * 10_000 + "]" * 10_000  # past the JSON parser's recursion limit, under the body size limit
    nested = '{"amount": ' + deep + "}"
    for path in ("/v1/subscriptions/0126015401000000001/discount", "/v1/subscriptions/0126015401000000001/upgrade_link"):
        refused = merchant_api.call("POST", path, body=nested, content_type="application/json", key="reader")
        assert refused.status == 403, refused.body
        assert refused.body["api_error_code"] == "api_authorization_failed"
        unparsable = merchant_api.call("POST", path, body=nested, content_type="application/json")
        assert unparsable.status == 400, unparsable.body
        assert unparsable.body["api_error_code"] == "invalid_request" and "not valid JSON" in unparsable.body["message"]
    # Within the parser's limit but deeper than any parameter: 400 too, naming the limit.
    deeper = merchant_api.call("POST", "/v1/subscriptions/0126015401000000001/discount",
                               body='{"amount": ' + "[" * 50 + "]" * 50 + "}", content_type="application/json")
    assert deeper.status == 400 and "nested deeper" in deeper.body["message"]
    # Without a Content-Type, a body starting with "{" is JSON too.
    sniffed = merchant_api.call("POST", "/v1/subscriptions/0126015401000000001/discount", body=nested)
    assert sniffed.status == 400
