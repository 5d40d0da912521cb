"""Choosing the upgrade from the catalogue, describing plans, and CCBill's form through the client's own code."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from billops.api_errors import ApiError
from billops.ccbill.client import CCBillClient
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentials, StaticCredentials
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue, UpgradeOption
from billops.ccbill.upgrade_encryption import EncRecipe, UpgradeEncryptor, decrypt, derive_key
from billops.upgrade_page.upgrade_offers import (
    UpgradeConfiguration,
    choose_upgrade,
    current_plan,
    is_current_plan,
    money,
    offer_names,
    offer_summary,
    price_sentence,
    require_upgradable,
)
from upgrade_page_unit_fixtures import GOLD, PLATINUM, UPGRADE_KEY, subscription_record

ONE = UpgradeCatalogue([UpgradeOption.from_mapping(GOLD)])
TWO = UpgradeCatalogue([UpgradeOption.from_mapping(GOLD), UpgradeOption.from_mapping(PLATINUM)])


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_with_one_upgrade_configured_it_needs_no_name():
    assert choose_upgrade(ONE).key == "gold"
    assert choose_upgrade(ONE, upgrade_type_id="15").key == "gold"  # leading zeros do not matter
    assert choose_upgrade(ONE, upgrade_client_accnum="900100", upgrade_client_subacc="1",
                          upgrade_type_id="0015").key == "gold"


def test_with_several_upgrades_one_must_be_named():
    error = _error(lambda: choose_upgrade(TWO))
    assert (error.status, error.api_error_code, error.param) == (400, "param_wrong_value", "upgrade_type_id")
    assert choose_upgrade(TWO, upgrade_type_id="0016").key == "platinum"
    assert choose_upgrade(TWO, upgrade_client_subacc="0002").key == "platinum"
    error = _error(lambda: choose_upgrade(TWO, upgrade_client_accnum="900100"))
    assert (error.status, error.param) == (400, "upgrade_type_id")  # both match: name the type


@pytest.mark.parametrize("kwargs,param", [
    ({"upgrade_type_id": "0099"}, "upgrade_type_id"),
    ({"upgrade_client_subacc": "0009"}, "upgrade_client_subacc"),
    ({"upgrade_client_accnum": "900200"}, "upgrade_client_accnum"),
    ({"upgrade_client_accnum": "9001"}, "upgrade_client_accnum"),
    ({"upgrade_client_subacc": "00001"}, "upgrade_client_subacc"),
    ({"upgrade_type_id": "gold"}, "upgrade_type_id"),
])
def test_an_upgrade_that_is_not_configured_names_the_parameter(kwargs, param):
    error = _error(lambda: choose_upgrade(TWO, **kwargs))
    assert (error.status, error.api_error_code, error.param) == (400, "param_wrong_value", param)


def test_no_upgrades_configured():
    error = _error(lambda: choose_upgrade(UpgradeCatalogue()))
    assert (error.status, error.api_error_code) == (400, "invalid_request")


@pytest.mark.parametrize("status", ["expired", "cancelled"])
def test_only_active_subscriptions_may_be_upgraded(status):
    error = _error(lambda: require_upgradable(subscription_record(status=status)))
    assert (error.status, error.api_error_code, error.type) == (409, "invalid_state_for_request", "invalid_request")
    error = _error(lambda: require_upgradable(subscription_record(client_subacc=None)))
    assert error.status == 409
    require_upgradable(subscription_record())


def test_the_current_plan_is_not_offered_again():
    gold = UpgradeOption.from_mapping(GOLD)
    assert is_current_plan(subscription_record(client_subacc="0001", subscription_type_id="15"), gold)
    assert not is_current_plan(subscription_record(subscription_type_id="15"), gold)  # other subaccount
    assert not is_current_plan(subscription_record(), gold)  # type unknown


@pytest.mark.parametrize("args,expected", [
    (("19.95", 30, "19.95", 30, "840"), "$19.95 every 30 days"),
    (("2.95", 3, "29.95", 30, "978"), "€2.95 for the first 3 days, then €29.95 every 30 days"),
    (("19.95", 30, None, None, "826"), "£19.95 for 30 days, without renewal"),
    (("1995", 1, None, None, "392"), "¥1995 for 1 day, without renewal"),
    (("19.95", 30, "19.95", 30, None), "19.95 every 30 days"),
    ((None, None, None, None, "840"), None),
])
def test_price_sentences(args, expected):
    assert price_sentence(*args) == expected


def test_money():
    assert money("9.9", "USD") == "$9.90"
    assert money(Decimal(5), "036") == "A$5.00"
    assert money("x", "840") is None and money(None, "840") is None


def test_the_current_plan_shows_price_renewal_and_nothing_personal():
    plan = current_plan(subscription_record())
    assert plan.title == "Subscription ending in 0017"
    assert plan.price_text == "$9.95 every 30 days"
    assert plan.note == "Renews on 1 February 2026."
    assert "jane" not in repr(plan) and "@" not in repr(plan)
    discounted = current_plan(subscription_record(operation_facts={"recurring_price": "7.95"}))
    assert discounted.price_text == "$7.95 every 30 days"
    one_off = current_plan(subscription_record(recurring=False, recurring_price=None, recurring_period=None))
    assert one_off.price_text == "$9.95 for 30 days, without renewal" and one_off.note is None


def test_offer_names_come_from_the_catalogue():
    setting = json.dumps({"upgrades": [GOLD, PLATINUM]})
    names = offer_names(setting)
    assert names == {"gold": ("Gold membership", "HD videos & <b>extras</b>"), "platinum": ("Platinum", None)}
    offer = offer_summary(UpgradeOption.from_mapping(PLATINUM), names)
    assert (offer.title, offer.price_text) == ("Platinum", "€2.95 for the first 3 days, then €29.95 every 30 days")
    no_price = UpgradeOption.from_mapping({"key": "vip", "client_accnum": "900100", "client_subacc": "0003",
                                           "subscription_type_id": "0020"})
    assert "CCBill’s secure page" in offer_summary(no_price, {}).price_text


@pytest.mark.parametrize("catalogue", [[GOLD], [GOLD, PLATINUM]])
@pytest.mark.parametrize("method", ["enc", "backend_post"])
def test_the_form_is_exactly_the_ccbill_clients(catalogue, method):
    key = derive_key(UPGRADE_KEY)
    encryptor = UpgradeEncryptor(lambda: key)
    settings = CCBillClientSettings.from_env({"BILLOPS_ENV": "local",
                                              "BILLOPS_UPGRADE_CATALOGUE": json.dumps(catalogue)})
    configuration = UpgradeConfiguration(UpgradeCatalogue.from_config(settings.upgrade_catalogue),
                                         offer_names(settings.upgrade_catalogue), settings, encryptor)
    form = configuration.form("900100", "0", "0126001234000000017", "gold", method)
    client = CCBillClient(settings, StaticCredentials(CCBillCredentials("900100", "api", "secret-password")),
                          encryptor=encryptor)
    expected = client.upgrade_form("0000", subscription_id="0126001234000000017", upgrade="gold", method=method)
    assert form == expected
    several = len(catalogue) > 1
    upgrade_fields = {"upgradeClientAccnum", "upgradeClientSubacc", "upgradeTypeId"}
    assert (upgrade_fields <= set(form.fields)) is several
    assert "password" not in json.dumps(form.fields) and "secret-password" not in json.dumps(form.fields)
    if method == "enc":
        assert set(form.fields) - upgrade_fields == {"clientAccnum", "clientSubacc", "enc"}
        # The identity only, whatever the number of upgrades: the variables are the fields beside it.
        assert decrypt(key, form.fields["enc"], EncRecipe()) == "subscriptionId=0126001234000000017"
