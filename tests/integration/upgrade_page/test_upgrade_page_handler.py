"""GET /upgrade/{token} through the real handler: moto for AWS, the CCBill sandbox for CCBill, the real worker."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import requests
from billops.operations.operation_records import iso
from billops.upgrade_page.link_tokens import UpgradeLinkClaims, new_nonce, sign
from billops.upgrade_page.upgrade_links import create_upgrade_link


class Form(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.action = attributes["action"]
        if tag == "input" and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""


def _token(link: dict) -> str:
    return link["url"].rsplit("/upgrade/", 1)[1]


def _text(page: dict) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page["html"])).split())


def test_an_enc_link_shows_the_plan_and_the_offer_and_its_form_upgrades_at_the_sandbox(upgrade_page, capsys):
    ops = upgrade_page.ops
    original = ops.new_subscription(initial_price="9.95", recurring_price="9.95")
    record = ops.subscription(original)
    link = create_upgrade_link(record, upgrade_type_id="0015")  # two upgrades are configured: name one
    assert link["url"].startswith("https://billing.example.test/upgrade/")

    page = upgrade_page.get(_token(link))
    assert page["status"] == 200
    assert page["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert page["headers"]["Referrer-Policy"] == "no-referrer"
    assert page["headers"]["Cache-Control"] == "no-store"
    text = _text(page)
    assert f"Subscription ending in {original[-4:]}" in text and "$9.95 every 30 days" in text
    assert "Upgrade to Gold" in text and "$19.95 every 30 days" in text
    form = Form(page["html"])
    assert form.action == ops.sandbox.upgrade_url
    assert form.fields == link["form_fields"]  # the page posts exactly what the API answered
    assert set(form.fields) == {"clientAccnum", "clientSubacc", "enc", "upgradeClientAccnum", "upgradeClientSubacc",
                                "upgradeTypeId"}
    assert re.search(r'<button type="submit" name="submit" value="Upgrade Subscription">', page["html"])

    charges_before = len(ops.charges())
    answer = requests.post(form.action, data={**form.fields, "submit": "Upgrade Subscription"}, timeout=5)
    assert "Upgrade Approved" in answer.text, answer.text
    charges = ops.charges()[charges_before:]
    assert len(charges) == 1 and charges[0]["amount"] == "19.95"
    assert _token(link) not in capsys.readouterr().out  # the token is never logged

    # CCBill sends UpgradeSuccess for the new subscription and no Expiration for the original: the new sale, found
    # through the by_original_subscription index, is what spends the link.
    ops.deliver_webhooks()
    assert ops.subscription(original)["status"] == "active"
    spent = upgrade_page.get(_token(link))
    assert spent["status"] == 410 and "already been upgraded" in _text(spent) and "<form" not in spent["html"]


def test_tampered_and_expired_tokens_get_a_clear_page(upgrade_page):
    ops = upgrade_page.ops
    original = ops.new_subscription()
    token = _token(create_upgrade_link(ops.subscription(original), upgrade_type_id="0015"))
    payload, signature = token.split(".")
    tampered = upgrade_page.get(f"{payload[:-2]}{'AB' if payload[-2:] != 'AB' else 'CD'}.{signature}")
    assert tampered["status"] == 404
    assert "This link doesn’t work" in _text(tampered)
    assert "Traceback" not in tampered["html"] and "Error" not in tampered["html"]
    assert upgrade_page.get("not-a-token")["status"] == 404

    import boto3

    key = boto3.client("secretsmanager", endpoint_url=ops.tables.endpoint_url).get_secret_value(
        SecretId=upgrade_page.secret_arn)["SecretString"].encode()
    old = sign(UpgradeLinkClaims(original, "enc", datetime.now(UTC) - timedelta(minutes=1), new_nonce(), "gold"), key)
    expired = upgrade_page.get(old)
    assert expired["status"] == 410 and "This upgrade link has expired" in _text(expired)
    assert "<form" not in expired["html"]


def test_an_allow_upgrade_link_waits_for_the_worker_then_shows_ccbills_form(upgrade_page):
    upgrade_page.use_backend_post()
    ops = upgrade_page.ops
    original = ops.new_subscription()
    link = create_upgrade_link(ops.subscription(original), upgrade_type_id="0015")
    assert link["method"] == "allow_upgrade"  # the deployment's Security Type: the default method
    token = _token(link)

    waiting = upgrade_page.get(token)
    assert waiting["status"] == 200 and "We’re preparing your upgrade" in _text(waiting)
    assert '<meta http-equiv="refresh" content="5">' in waiting["html"]

    ops.work()  # the worker posts allowUpgrade to the sandbox
    operation = ops.record(link["operation_id"])
    assert operation["status"] == "awaiting_consumer"
    [call] = ops.calls("allowUpgrade")
    assert call["params"]["subscriptionId"] == original

    page = upgrade_page.get(token)
    assert page["status"] == 200
    form = Form(page["html"])
    assert form.action == ops.sandbox.upgrade_url
    assert form.fields == link["form_fields"] == operation["upgrade_form"]["fields"]
    charges_before = len(ops.charges())
    answer = requests.post(form.action, data=form.fields, timeout=5)
    assert "Upgrade Approved" in answer.text
    assert len(ops.charges()) == charges_before + 1

    ops.deliver_webhooks()  # UpgradeSuccess settles the operation
    assert ops.record(link["operation_id"])["status"] == "succeeded"
    used = upgrade_page.get(token)
    assert used["status"] == 410


def _close_window(ops, operation_id: str) -> None:
    ops.dynamodb.update_item(TableName=ops.names["operations_table"], Key={"operation_id": {"S": operation_id}},
                             UpdateExpression="SET window_expires_at = :t",
                             ExpressionAttributeValues={":t": {"S": iso(datetime.now(UTC) - timedelta(seconds=1))}})


def test_a_consumer_after_the_window_gets_the_backend_post_sent_again_once(upgrade_page):
    upgrade_page.use_backend_post()
    ops = upgrade_page.ops
    original = ops.new_subscription()
    link = create_upgrade_link(ops.subscription(original), method="allow_upgrade", upgrade_type_id="0015")
    ops.work()
    _close_window(ops, link["operation_id"])
    # "If the consumer is not sent within 30 minutes, the Backend HTTPS Post must be sent again."
    late = upgrade_page.get(_token(link))
    assert late["status"] == 200 and "We’re preparing your upgrade" in _text(late)
    operations = [op for op in ops.operations() if op["subscription_id"] == original]
    assert len(operations) == 2, "the second backend post is an operation like the first"
    second = next(op for op in operations if op["operation_id"] != link["operation_id"])
    assert second["idempotency_key"].endswith(":again") and second["parameters"] == {"method": "allow_upgrade",
                                                                                     "upgrade": "gold"}
    assert upgrade_page.get(_token(link))["status"] == 200
    assert len([op for op in ops.operations() if op["subscription_id"] == original]) == 2, "reloads add nothing"
    ops.work()
    assert len(ops.calls("allowUpgrade")) == 2
    page = upgrade_page.get(_token(link))
    assert page["status"] == 200 and "<form" in page["html"]
    form = Form(page["html"])
    assert "Upgrade Approved" in requests.post(form.action, data=form.fields, timeout=5).text
    # Once per link: after the second window too, the link is spent.
    _close_window(ops, second["operation_id"])
    expired = upgrade_page.get(_token(link))
    assert expired["status"] == 410
    assert len(ops.calls("allowUpgrade")) == 2


def test_the_link_s_own_expiry_still_applies_after_the_window(upgrade_page):
    upgrade_page.use_backend_post()
    ops = upgrade_page.ops
    original = ops.new_subscription()
    import boto3

    key = boto3.client("secretsmanager", endpoint_url=ops.tables.endpoint_url).get_secret_value(
        SecretId=upgrade_page.secret_arn)["SecretString"].encode()
    nonce = new_nonce()
    from billops.operations.operation_submission import record_and_queue
    from billops.upgrade_page.upgrade_links import idempotency_key_for

    record_and_queue({"operation_type": "upgrade", "subscription_id": original, "client_subacc": "0000",
                      "idempotency_key": idempotency_key_for(nonce),
                      "parameters": {"method": "allow_upgrade", "upgrade": "gold"}})
    ops.work()
    old = sign(UpgradeLinkClaims(original, "allow_upgrade", datetime.now(UTC) - timedelta(seconds=1), nonce, "gold"),
               key)
    page = upgrade_page.get(old)
    assert page["status"] == 410 and "has expired" in _text(page)
    assert len(ops.calls("allowUpgrade")) == 1, "an expired link sends nothing"


def test_storage_trouble_is_a_503_page_without_a_trace(upgrade_page, monkeypatch, handler_loader):
    ops = upgrade_page.ops
    token = _token(create_upgrade_link(ops.subscription(ops.new_subscription()), upgrade_type_id="0015"))
    monkeypatch.setenv("BILLOPS_SUBSCRIPTIONS_TABLE", "no-such-table")
    upgrade_page.handler = handler_loader("upgrade_page")
    page = upgrade_page.get(token)
    assert page["status"] == 503
    assert "temporarily unavailable" in _text(page) and "Traceback" not in page["html"]


def test_an_enc_link_for_a_subscriber_known_by_username(upgrade_page):
    from billops.ccbill.upgrade_encryption import EncRecipe, decrypt, derive_key
    from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY

    ops = upgrade_page.ops
    original = ops.new_subscription(username="janedoe42")
    link = create_upgrade_link(ops.subscription(original), upgrade_type_id="0015", identify_by="username")
    assert link["identify_by"] == "username"
    assert decrypt(derive_key(LOCAL_UPGRADE_KEY), link["form_fields"]["enc"], EncRecipe()) == "username=janedoe42"
    page = upgrade_page.get(_token(link))
    assert page["status"] == 200
    form = Form(page["html"])
    assert form.fields == link["form_fields"] and "janedoe42" not in page["html"]
    assert "Upgrade Approved" in requests.post(form.action, data=form.fields, timeout=5).text
    assert ops.sandbox.subscription(original)["upgraded_to"]
    ops.deliver_webhooks()
    assert upgrade_page.get(_token(link))["status"] == 410


def test_an_allow_upgrade_operation_for_a_subscriber_known_by_username(upgrade_page):
    upgrade_page.use_backend_post()
    ops = upgrade_page.ops
    original = ops.new_subscription(username="janedoe43")
    link = create_upgrade_link(ops.subscription(original), upgrade_type_id="0015", identify_by="username")
    assert "subscriptionId" not in link["form_fields"] and "username" not in link["form_fields"]
    record = ops.record(link["operation_id"])
    assert record["parameters"]["username_ciphertext"] and "janedoe43" not in str(record), "sealed, never in clear"
    ops.work()
    [call] = ops.calls("allowUpgrade")
    assert call["params"]["username"] == "janedoe43" and "subscriptionId" not in call["params"]
    record = ops.record(link["operation_id"])
    assert record["status"] == "awaiting_consumer" and "janedoe43" not in str(record)
    assert record["upgrade_form"]["identity"] == "username"
    assert not [event for event in ops.events() if "janedoe43" in str(event)], "no username in a domain event"
    page = upgrade_page.get(_token(link))
    assert page["status"] == 200
    form = Form(page["html"])
    assert form.fields["username"] == "janedoe43" and form.fields["action"] == "upgradeSubscription"
    assert "Upgrade Approved" in requests.post(form.action, data=form.fields, timeout=5).text
    ops.deliver_webhooks()  # UpgradeSuccess names the original subscription: it settles the operation
    assert ops.record(link["operation_id"])["status"] == "succeeded"
