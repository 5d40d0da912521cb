"""The consumer upgrade page in a real browser: headless Chromium (Debian's ``chromium`` package) driven by Playwright.

A subscription is sold at the CCBill sandbox, its NewSaleSuccess reaches our table, the merchant API makes an upgrade
link - by default the backend allowUpgrade post, the local stack having a "fixed egress IP" the sandbox whitelists -
and Chromium - with JavaScript switched off, as the page must work without it - opens the link, waits (meta refresh)
for the worker's post, sees the current plan and the offer, ticks the consent box, submits the form (its button named
``submit``, as in CCBill's example) and lands on the sandbox's upgradeSubscription.cgi answer. The sandbox must have
charged exactly once for the upgrade. A tampered and an expired link must each get a plain page. Screenshots go to
test-artifacts/ (git-ignored) for the CI run's record.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the ``playwright`` package; Playwright's own
browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("BILLOPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
API_KEY = "local-api-key"
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
SIGNING_SECRET = "billops-local-UpgradeLinkSigningSecret"


def _record(local_stack, subscription_id: str) -> dict | None:
    from billops.storage.subscriptions_table import SubscriptionsTable

    return SubscriptionsTable(SUBSCRIPTIONS_TABLE, local_stack.boto3_client("dynamodb")).get(subscription_id)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A persistent Chromium context on a fresh profile directory, JavaScript off."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing (uv pip install playwright; never `playwright install`)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            java_script_enabled=False, viewport={"width": 800, "height": 900}, locale="en-GB")
        try:
            yield context
        finally:
            context.close()


def _sold_subscription(local_stack) -> dict:
    answer = requests.post(f"{local_stack.sandbox_url}/sandbox/subscriptions", json={
        "client_accnum": "900100", "client_subacc": "0000", "initial_price": "9.95", "initial_period": 30,
        "recurring_price": "9.95", "recurring_period": 30, "rebills": 99, "currency_code": "840",
        "username": "browser1", "email": "browser@example.com"}, timeout=10)
    assert answer.status_code == 201, answer.text
    subscription_id = answer.json()["subscription_id"]
    return eventually(lambda: _record(local_stack, subscription_id), what="NewSaleSuccess to reach our table")


def _upgrade_link(local_stack, subscription_id: str, **body: str) -> dict:
    """Through the merchant API (HTTP Basic with the local key)."""
    answer = requests.post(f"{local_stack.api_url}/v1/subscriptions/{subscription_id}/upgrade_link",
                           auth=(API_KEY, ""), json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["upgrade_link"]


def _open_offer(page, url: str, screenshot: str | None = None):
    """Open the link; while the allowUpgrade post is being made the page reloads itself until the form shows."""
    response = page.goto(url)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    if page.locator("form").count() == 0:  # the worker may be quicker than the browser
        assert page.get_by_role("heading", level=1).inner_text() == "We’re preparing your upgrade"
        assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "5"
        if screenshot:
            _screenshot(page, screenshot)
        page.wait_for_selector("form", timeout=30_000)
    assert page.url == url
    return response


def _screenshot(page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def test_the_consumer_upgrades_in_chromium_and_the_sandbox_charges_once(local_stack, browser_context):
    sandbox = local_stack.sandbox_url
    record = _sold_subscription(local_stack)
    original = record["subscription_id"]
    link = _upgrade_link(local_stack, original, upgrade_type_id="15")  # two upgrades are configured
    assert link["method"] == "allow_upgrade" and link["credential_warning"] is None  # the safe default
    assert link["url"].startswith(f"{local_stack.api_url}/upgrade/")
    assert link["action_url"] == f"{sandbox}/jpost/upgradeSubscription.cgi"
    assert link["form_fields"] == {"clientAccnum": "900100", "clientSubacc": "0000", "action": "upgradeSubscription",
                                   "subscriptionId": original, "upgradeClientAccnum": "900100",
                                   "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}
    calls_before = [c for c in requests.get(f"{sandbox}/sandbox/calls", timeout=10).json()
                    if c["action"] == "upgradeSubscription"]

    page = browser_context.new_page()
    _open_offer(page, link["url"], "upgrade-page-preparing.png")
    assert page.title() == "Upgrade to Gold"
    assert page.get_by_role("heading", level=1).inner_text() == "Upgrade your subscription"
    current = page.get_by_role("region", name="Your current plan").inner_text()
    assert f"Subscription ending in {original[-4:]}" in current and "$9.95 every 30 days" in current
    offer = page.get_by_role("region", name="Upgrade to Gold").inner_text()
    assert "$19.95 every 30 days" in offer
    hidden = {name: page.locator(f'form input[name="{name}"]').get_attribute("value") for name in link["form_fields"]}
    assert hidden == link["form_fields"]
    _screenshot(page, "upgrade-page-offer.png")

    button = page.get_by_role("button", name="Upgrade to Gold")
    assert (button.get_attribute("name"), button.get_attribute("value")) == ("submit", "Upgrade Subscription")
    button.click()  # not ticked yet: the browser's own validation keeps the consumer here, nothing is sent
    page.wait_for_timeout(300)
    assert page.url == link["url"]
    page.get_by_label("I want to upgrade to Gold at $19.95 every 30 days").check()
    with page.expect_navigation():
        button.click()
    assert page.url == link["action_url"]
    assert "Upgrade Approved" in page.content()
    _screenshot(page, "upgrade-page-result.png")

    state = requests.get(f"{sandbox}/sandbox/subscriptions/{original}", timeout=10).json()
    upgraded_to = state["upgraded_to"]
    assert upgraded_to
    ledger = requests.get(f"{sandbox}/sandbox/ledger", timeout=10).json()
    upgrade_charges = [entry for entry in ledger if entry["subscription_id"] == upgraded_to]
    assert len(upgrade_charges) == 1 and upgrade_charges[0]["amount"] == "19.95"
    calls = [c for c in requests.get(f"{sandbox}/sandbox/calls", timeout=10).json()
             if c["action"] == "upgradeSubscription"]
    assert len(calls) == len(calls_before) + 1
    # What CCBill received: the hidden fields and the button, as from the guide's example form.
    assert calls[-1]["params"] == {**link["form_fields"], "submit": "Upgrade Subscription"}

    # Once the UpgradeSuccess webhook is in, the link is spent: opening it again offers nothing.
    eventually(lambda: _record(local_stack, upgraded_to), what="UpgradeSuccess to reach our table")
    again = page.goto(link["url"])
    assert again.status == 410
    assert "already been upgraded" in page.get_by_role("heading", level=1).inner_text()
    assert page.locator("form").count() == 0
    page.close()


def test_tampered_and_expired_links_get_a_clear_page(local_stack, browser_context):
    from billops.upgrade_page.link_tokens import UpgradeLinkClaims, new_nonce, sign

    record = _sold_subscription(local_stack)
    link = _upgrade_link(local_stack, record["subscription_id"], upgrade_type_id="15")
    base, token = link["url"].rsplit("/", 1)
    payload, signature = token.split(".")
    swapped = "A" if payload[5] != "A" else "B"
    page = browser_context.new_page()

    response = page.goto(f"{base}/{payload[:5]}{swapped}{payload[6:]}.{signature}")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "This link doesn’t work"
    assert "Traceback" not in page.content() and page.locator("form").count() == 0
    _screenshot(page, "upgrade-page-tampered.png")

    key = local_stack.boto3_client("secretsmanager").get_secret_value(SecretId=SIGNING_SECRET)["SecretString"]
    expired = sign(UpgradeLinkClaims(record["subscription_id"], "enc", datetime.now(UTC) - timedelta(minutes=5),
                                     new_nonce(), "gold"), key.encode())
    response = page.goto(f"{base}/{expired}")
    assert response.status == 410
    assert page.get_by_role("heading", level=1).inner_text() == "This upgrade link has expired"
    assert "ask for a new upgrade link" in page.inner_text("main")
    _screenshot(page, "upgrade-page-expired.png")
    page.close()


def test_an_upgrade_into_another_account_in_chromium(local_stack, browser_context):
    """The second configured upgrade leads into another account (900300): the same page, the same single charge,
    and the destination's UpgradeSuccess settles the link's operation."""
    record = _sold_subscription(local_stack)
    original = record["subscription_id"]
    link = _upgrade_link(local_stack, original, upgrade_type_id="20")
    assert link["operation_id"] and link["form_fields"]["upgradeClientAccnum"] == "900300"

    page = browser_context.new_page()
    _open_offer(page, link["url"])
    hidden = {name: page.locator(f'form input[name="{name}"]').get_attribute("value") for name in link["form_fields"]}
    assert hidden == link["form_fields"]
    _screenshot(page, "upgrade-page-cross-account-offer.png")
    page.get_by_label("I want to upgrade to Platinum at $29.95 every 30 days").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Upgrade to Platinum").click()
    assert "Upgrade Approved" in page.content()
    upgraded_to = requests.get(f"{local_stack.sandbox_url}/sandbox/subscriptions/{original}", timeout=10).json()[
        "upgraded_to"]
    ledger = requests.get(f"{local_stack.sandbox_url}/sandbox/ledger", timeout=10).json()
    charges = [entry for entry in ledger if entry["subscription_id"] == upgraded_to]
    assert len(charges) == 1 and charges[0]["client_accnum"] == "900300"
    new = eventually(lambda: _record(local_stack, upgraded_to), what="the destination's UpgradeSuccess")
    assert (new["client_accnum"], new["original_subscription_id"]) == ("900300", original)
    operation = eventually(lambda: (lambda o: o if o["status"] == "succeeded" else None)(requests.get(
        f"{local_stack.api_url}/v1/operations/{link['operation_id']}", auth=(API_KEY, ""), timeout=10).json()[
        "operation"]), what="the link's operation to be settled by the UpgradeSuccess")
    assert operation["new_subscription_id"] == upgraded_to
    page.close()
