"""What the page shows in each state (fakes for the tables; the HTML itself is tested in the rendering tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue
from billops.ccbill.upgrade_encryption import UpgradeEncryptor, derive_key
from billops.operations.operation_records import iso, operation_id_for
from billops.storage.errors import StorageUnavailable
from billops.upgrade_page.consumer_page import UpgradePage
from billops.upgrade_page.link_tokens import StaticSigningKeys, UpgradeLinkClaims, sign
from billops.upgrade_page.upgrade_offers import UpgradeConfiguration, offer_names
from upgrade_page_unit_fixtures import GOLD, UPGRADE_KEY, subscription_record

KEY = b"page-test-key-" * 3
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SUBSCRIPTION = "0126001234000000017"
NONCE = "bm9uY2Vub25jZQ"


class Table:
    def __init__(self, items: dict | None = None, fail: bool = False) -> None:
        self.items = items or {}
        self.reads: list[str] = []
        self.fail = fail

    def get(self, key: str):
        self.reads.append(key)
        if self.fail:
            raise StorageUnavailable("DynamoDB read failed: EndpointConnectionError")
        return self.items.get(key)


def configuration() -> UpgradeConfiguration:
    settings = CCBillClientSettings.from_env({"BILLOPS_ENV": "local",
                                              "BILLOPS_UPGRADE_CATALOGUE": json.dumps([GOLD])})
    key = derive_key(UPGRADE_KEY)
    return UpgradeConfiguration(UpgradeCatalogue.from_config(settings.upgrade_catalogue),
                                offer_names(settings.upgrade_catalogue), settings, UpgradeEncryptor(lambda: key))


def token(method: str = "enc", expires: timedelta = timedelta(hours=72), upgrade: str | None = "gold",
          key: bytes = KEY) -> str:
    return sign(UpgradeLinkClaims(SUBSCRIPTION, method, NOW + expires, NONCE, upgrade), key)


def page(record: dict | None = None, operation: dict | None = None, *, subscriptions: Table | None = None,
         now: datetime = NOW) -> tuple[UpgradePage, Table, Table]:
    subscriptions = subscriptions or Table({SUBSCRIPTION: record or subscription_record()})
    operations = Table({operation_id_for(f"upgrade-link:{NONCE}"): operation} if operation else {})
    return (UpgradePage(StaticSigningKeys(KEY), subscriptions, operations, configuration, clock=lambda: now),
            subscriptions, operations)


def awaiting(window: timedelta = timedelta(minutes=29), **overrides) -> dict:
    record = {"status": "awaiting_consumer", "window_expires_at": iso(NOW + window),
              "upgrade_form": {"url": "http://127.0.0.1:4000/jpost/upgradeSubscription.cgi", "method": "POST",
                               "fields": {"clientAccnum": "900100", "clientSubacc": "0000",
                                          "action": "upgradeSubscription", "subscriptionId": SUBSCRIPTION}}}
    record.update(overrides)
    return record


def test_an_enc_link_shows_the_offer_with_enc():
    upgrade_page, _, operations = page()
    result = upgrade_page.render(token())
    assert (result.status, result.outcome) == (200, "shown")
    assert 'name="enc"' in result.html and "Gold membership" in result.html and "$9.95 every 30 days" in result.html
    assert operations.reads == []
    assert "jane" not in result.html and "janedoe1" not in result.html  # the record's personal fields stay out


@pytest.mark.parametrize("bad", ["", "nonsense", token(key=b"another-key-entirely-but-long-enough"),
                                 token()[:-3] + "AAA", token().replace(".", "")])
def test_an_invalid_token_reads_nothing(bad):
    upgrade_page, subscriptions, operations = page()
    result = upgrade_page.render(bad)
    assert (result.status, result.outcome) == (404, "invalid")
    assert "This link doesn’t work" in result.html
    assert subscriptions.reads == [] and operations.reads == []


def test_an_expired_token_reads_nothing():
    upgrade_page, subscriptions, _ = page()
    result = upgrade_page.render(token(expires=-timedelta(seconds=1)))
    assert (result.status, result.outcome) == (410, "expired")
    assert "This upgrade link has expired" in result.html and subscriptions.reads == []


@pytest.mark.parametrize("record", [subscription_record(status="expired"), subscription_record(status="cancelled")])
def test_a_subscription_that_ended_cannot_be_upgraded(record):
    result = page(record)[0].render(token())
    assert (result.status, result.outcome) == (410, "unavailable")
    assert "can’t be upgraded" in result.html


def test_an_unknown_subscription_or_offer():
    assert page(subscriptions=Table({}))[0].render(token()).status == 410
    result = page()[0].render(token(upgrade="platinum"))
    assert (result.status, result.outcome) == (410, "unavailable") and "no longer available" in result.html
    already = page(subscription_record(client_subacc="0001", subscription_type_id="0015"))[0].render(token())
    assert already.status == 410


def test_storage_trouble_is_a_calm_503():
    result = page(subscriptions=Table(fail=True))[0].render(token())
    assert (result.status, result.outcome) == (503, "error")
    assert "temporarily unavailable" in result.html and "Traceback" not in result.html


@pytest.mark.parametrize("operation", [None, {"status": "queued"}, {"status": "scheduled"},
                                       {"status": "in_progress"}, {"status": "retry_wait"},
                                       {"status": "unknown", "escalated": False}])
def test_allow_upgrade_while_the_backend_post_is_on_its_way(operation):
    result = page(operation=operation)[0].render(token("allow_upgrade", timedelta(minutes=45)))
    assert (result.status, result.outcome) == (200, "preparing")
    assert '<meta http-equiv="refresh" content="5">' in result.html
    assert "<form" not in result.html


def test_allow_upgrade_shows_the_step_two_form_while_the_window_is_open():
    result = page(operation=awaiting())[0].render(token("allow_upgrade", timedelta(minutes=45)))
    assert (result.status, result.outcome) == (200, "shown")
    for field in ('name="action" value="upgradeSubscription"', f'name="subscriptionId" value="{SUBSCRIPTION}"'):
        assert field in result.html
    assert 'name="enc"' not in result.html
    assert "12:29 UTC" in result.html  # the window's end, earlier than the link's


@pytest.mark.parametrize("operation,status,outcome,text", [
    (awaiting(window=timedelta(seconds=30)), 410, "expired", "has expired"),
    (awaiting(window=-timedelta(minutes=1)), 410, "expired", "has expired"),
    ({"status": "failed", "failure_reason": "upgrade_window_expired"}, 410, "expired", "has expired"),
    ({"status": "succeeded"}, 410, "used", "already been upgraded"),
    ({"status": "failed", "failure_reason": "upgrade_denied"}, 410, "unavailable", "isn’t available"),
    ({"status": "rejected"}, 410, "unavailable", "isn’t available"),
    ({"status": "unknown", "escalated": True}, 503, "error", "couldn’t prepare"),
    (awaiting(upgrade_form={"url": "http://x.example/", "fields": {"subscriptionId": "999"}}), 503, "error",
     "temporarily unavailable"),
])
def test_allow_upgrade_after_the_window(operation, status, outcome, text):
    result = page(operation=operation)[0].render(token("allow_upgrade", timedelta(minutes=45)))
    assert (result.status, result.outcome, text in result.html) == (status, outcome, True)
    assert "<form" not in result.html


def test_a_sale_of_the_offer_from_this_subscription_spends_the_link():
    upgrade_page, _, _ = page()
    sales: list[dict] = []
    upgrade_page.sales_from = lambda subscription_id: sales
    assert upgrade_page.render(token()).status == 200
    sales.append({"subscription_id": "0126001234000000099", "client_accnum": "900100", "client_subacc": "0009"})
    assert upgrade_page.render(token()).status == 200  # an up-sale elsewhere is not this offer
    sales.append({"subscription_id": "0126001234000000100", "client_accnum": "900100", "client_subacc": "1"})
    result = upgrade_page.render(token())
    assert (result.status, result.outcome) == (410, "used")
    upgrade_page.sales_from = lambda subscription_id: None  # no index: nothing to tell
    assert upgrade_page.render(token()).status == 200
