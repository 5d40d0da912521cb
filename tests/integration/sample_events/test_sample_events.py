"""Every sample event in events/ through its function's handler, as ``sam local invoke -e`` runs it
(sam_local_invoke.py), and what the function stored or answered."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sam_local_invoke import EVENTS, SAMPLE_SUBSCRIPTION, SAMPLE_UPGRADED_SUBSCRIPTION, sample
from support.waiting import eventually

from billops.storage.delivery_log_table import unpacked_log_entries


def test_the_files_are_the_readme_s_and_every_function_has_one():
    from billops_local.template_resources import load_template

    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    files = sorted(path.relative_to(EVENTS).as_posix()
                   for path in EVENTS.glob("*/*.json") if path.parent.name != "webhooks")
    for path in files:
        assert f"events/{path}" in readme, f"{path} is not in events/README.md"
    for logical_id in load_template().functions:
        assert f"sam local invoke {logical_id} -e events/" in readme, f"no sample for {logical_id}"


def test_a_webhook_delivery_is_stored_once(sam_local):
    answer = sam_local.invoke("WebhookReceiverFunction", "webhooks/NewSaleSuccess-json.json")
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["duplicate"] is False
    (stored,) = sam_local.scan("EventsTable")
    assert stored["pk"] == json.loads(answer["body"])["id"] and stored["event_type"] == "NewSaleSuccess"
    assert "password" not in json.dumps(stored, default=str)
    again = sam_local.invoke("WebhookReceiverFunction", "webhooks/NewSaleSuccess-urlencoded.json")
    assert json.loads(again["body"])["duplicate"] is True and len(sam_local.scan("EventsTable")) == 1


def test_the_stream_batch_makes_the_subscription_and_logs_every_delivery(sam_local):
    record = sam_local.subscription_known()
    assert (record["status"], record["times_rebilled"]) == ("active", 1)
    assert (record["recurring_price"], record["currency"]) == ("19.95", "USD")
    assert [entry["key"] for entry in record["history"]] == [
        f"NewSaleSuccess#txn#{SAMPLE_SUBSCRIPTION}", "RenewalSuccess#txn#0126045402000000002"]
    # The log packs a batch's deliveries per minute of arrival (delivery_log_table.py): three, in its items.
    entries = [entry for item in sam_local.scan("DeliveryLogTable") for entry in unpacked_log_entries(item)]
    logged = {entry["outcome"]: entry for entry in entries}
    assert set(logged) == {"stored", "quarantined"} and len(entries) == 3
    assert logged["quarantined"]["reason"] == "subscriptionId is required"
    again = sam_local.invoke("SubscriptionProjectorFunction", "subscription_projector/stream-batch.json")
    assert again == {"batchItemFailures": []} and sam_local.subscription(SAMPLE_SUBSCRIPTION)["history"] == \
        record["history"], "a stream batch delivered again changes nothing"


def test_the_sqs_batch_extends_then_discounts_at_ccbill(sam_local):
    sam_local.sale_at_ccbill()
    sam_local.subscription_known()
    answer = sam_local.invoke("OperationWorkerFunction", "operation_worker/sqs-batch.json")
    assert answer == {"batchItemFailures": []}
    extend, discount = sam_local.operation("sample-extend-0001"), sam_local.operation("sample-discount-0001")
    assert (extend["status"], extend["plan"]["action"]) == ("succeeded", "extendSubscription")
    assert (discount["status"], discount["plan"]["value"]) == ("succeeded", "17.95")
    at_ccbill = sam_local.sandbox.subscription(SAMPLE_SUBSCRIPTION)
    assert at_ccbill["recurring_price"] == "17.95"
    assert _changes_at_ccbill(sam_local) == ["extendSubscription", "discountSubscription"]
    again = sam_local.invoke("OperationWorkerFunction", "operation_worker/sqs-batch.json")
    assert again == {"batchItemFailures": []}
    assert _changes_at_ccbill(sam_local) == ["extendSubscription", "discountSubscription"], "delivered twice: done once"


def _changes_at_ccbill(sam_local) -> list[str]:
    """The calls that changed something at CCBill (status reads left out), in order."""
    return [call["action"] for call in sam_local.sandbox.calls() if call["action"] != "viewSubscriptionStatus"]


def test_the_scheduler_s_event_enqueues_an_operation_whose_time_has_come(sam_local):
    sam_local.sale_at_ccbill()
    sam_local.subscription_known()
    run_at = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = {"operation_type": "extend", "subscription_id": SAMPLE_SUBSCRIPTION, "idempotency_key": "sample-later",
             "parameters": {"days": 3}, "run_at": run_at}
    assert sam_local.invoke("OperationWorkerFunction", sam_local.sqs_event(later)) == {"batchItemFailures": []}
    assert sam_local.operation("sample-later")["status"] == "scheduled"

    def run_scheduler() -> dict:
        result = sam_local.invoke("OperationSchedulerFunction", "operation_scheduler/schedule.json")
        assert result["failed"] == 0, result
        return result

    eventually(lambda: run_scheduler()["enqueued"] == 1, 30,
               what="the scheduler to enqueue the operation once its run_at has passed")
    assert [body["idempotency_key"] for body in sam_local.queued()] == ["sample-later"]
    assert run_scheduler()["enqueued"] == 0, "enqueued once"


def test_the_reconciliation_event_queues_a_refresh_of_a_subscription_ccbill_was_never_asked_about(sam_local):
    sam_local.subscription_known()
    result = sam_local.invoke("ReconciliationFunction", "reconciliation/schedule.json")
    assert result["errors"] == 0 and result["refreshes_enqueued"] == 1, result
    (refresh,) = sam_local.queued()
    assert (refresh["operation_type"], refresh["subscription_id"]) == ("refresh", SAMPLE_SUBSCRIPTION)


def _upgrade_window_open(sam_local, key: str) -> dict:
    sam_local.sale_at_ccbill()
    sam_local.subscription_known()
    allow = {"operation_type": "upgrade", "subscription_id": SAMPLE_SUBSCRIPTION, "idempotency_key": key,
             "parameters": {"method": "allow_upgrade", "upgrade": "gold"}}
    assert sam_local.invoke("OperationWorkerFunction", sam_local.sqs_event(allow)) == {"batchItemFailures": []}
    record = sam_local.operation(key)
    assert record["status"] == "awaiting_consumer", json.dumps(record, default=str)
    return record


def test_the_approval_post_settles_the_upgrade_with_the_new_subscription(sam_local):
    record = _upgrade_window_open(sam_local, "sample-allow-upgrade")
    form = record["upgrade_form"]
    assert "Upgrade Approved" in requests.post(form["url"], data=form["fields"], timeout=10).text  # the consumer
    assert sam_local.sandbox.subscription(SAMPLE_SUBSCRIPTION)["upgraded_to"] == SAMPLE_UPGRADED_SUBSCRIPTION

    answer = sam_local.invoke("UpgradePostbackFunction", "upgrade_postback/approval.json")
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"received": True, "matched": True, "operation_id": record["operation_id"],
                                          "status": "succeeded"}
    settled = sam_local.operation("sample-allow-upgrade")
    assert settled["new_subscription_id"] == SAMPLE_UPGRADED_SUBSCRIPTION
    assert "jane.doe@example.com" not in json.dumps(settled, default=str), "the post's personal data is not kept"


def test_the_denial_post_fails_the_upgrade_with_ccbill_s_reason(sam_local):
    _upgrade_window_open(sam_local, "sample-allow-denied")
    answer = sam_local.invoke("UpgradePostbackFunction", "upgrade_postback/denial.json")
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "failed", answer
    failure = sam_local.operation("sample-allow-denied")["failure"]
    assert (failure["reason"], failure["code"]) == ("upgrade_denied", "24")


@pytest.fixture
def api_key(sam_local):
    """The key the merchant API samples authenticate with (``local-api-key:``), as the local stack seeds it."""
    from billops.merchant_api.api_keys import PII, READ, WRITE, ApiKeysTable, register_key
    from billops_local.aws_environment import aws_client

    event = sample("merchant_api/get-subscription.json")
    key = base64.b64decode(event["headers"]["authorization"].split()[1]).decode().rstrip(":")
    table = ApiKeysTable(sam_local.table("ApiKeysTable"), aws_client("dynamodb", sam_local.endpoint))
    register_key(table, key, "sample events", (READ, WRITE, PII), key_id="key_sample")
    return key


def test_the_merchant_api_get_answers_the_subscription(sam_local, api_key):
    sam_local.subscription_known()
    answer = sam_local.invoke("MerchantApiFunction", "merchant_api/get-subscription.json")
    assert answer["statusCode"] == 200, answer
    subscription = json.loads(answer["body"])["subscription"]
    assert (subscription["id"], subscription["status"], subscription["times_rebilled"]) == (
        SAMPLE_SUBSCRIPTION, "active", 1)


def test_the_merchant_api_post_records_and_queues_an_extension(sam_local, api_key):
    sam_local.subscription_known()
    answer = sam_local.invoke("MerchantApiFunction", "merchant_api/post-extend.json")
    assert answer["statusCode"] == 202, answer
    operation = json.loads(answer["body"])["operation"]
    assert (operation["type"], operation["status"]) == ("extend", "queued")
    recorded = sam_local.operation(operation_id=operation["id"])
    assert (recorded["operation_type"], recorded["subscription_id"]) == ("extend", SAMPLE_SUBSCRIPTION)
    (queued,) = sam_local.queued()
    assert (queued["subscription_id"], queued["parameters"]) == (SAMPLE_SUBSCRIPTION, {"days": 7})


def test_the_upgrade_page_shows_the_offer_for_the_sample_link(sam_local):
    sam_local.subscription_known()
    answer = sam_local.invoke("UpgradePageFunction", "upgrade_page/get-page.json")
    assert answer["statusCode"] == 200, answer
    page = answer["body"]
    assert "Upgrade to Gold" in page and f"Subscription ending in {SAMPLE_SUBSCRIPTION[-4:]}" in page
    assert f'action="{sam_local.sandbox.upgrade_url}"' in page
