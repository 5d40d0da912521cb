"""The upgrade catalogue and the per-subaccount settings that keep cross-account upgrades from answering -7."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.subaccount_settings import SubaccountDirectory, SubaccountSettings
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue

GOLD = {"key": "gold", "client_accnum": "900100", "client_subacc": "1", "subscription_type_id": "0015",
        "initial_price": "19.95", "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30,
        "rebills": 99, "currency_code": "USD"}
PLATINUM = {"key": "platinum", "client_accnum": "948701", "client_subacc": "0001", "subscription_type_id": "0016",
            "initial_price": "29.95", "initial_period": 30}


def test_one_upgrade_leaves_the_three_variables_out():
    catalogue = UpgradeCatalogue.from_config(json.dumps({"upgrades": [GOLD]}))
    option = catalogue.get(None)
    assert option.client_subacc == "0001" and option.currency_code == "840"
    assert option.initial_price == Decimal("19.95")
    assert catalogue.upgrade_variables(option) == {}
    assert catalogue.upgrade_variables(option, always=True) == {
        "upgradeClientAccnum": "900100", "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}


def test_several_upgrades_need_a_name_and_send_the_variables():
    catalogue = UpgradeCatalogue.from_config(json.dumps([GOLD, PLATINUM]))
    with pytest.raises(CCBillRequestInvalid, match="gold, platinum") as error:
        catalogue.get(None)
    assert error.value.param == "upgrade"
    assert catalogue.upgrade_variables(catalogue.get("platinum")) == {
        "upgradeClientAccnum": "948701", "upgradeClientSubacc": "0001", "upgradeTypeId": "0016"}
    with pytest.raises(CCBillRequestInvalid, match="no upgrade 'silver'"):
        catalogue.get("silver")


def test_the_catalogue_may_be_a_file(tmp_path):
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({"upgrades": [GOLD]}))
    assert len(UpgradeCatalogue.from_config(str(path))) == 1
    assert len(UpgradeCatalogue.from_config(None)) == 0


@pytest.mark.parametrize("bad,message", [
    ({**GOLD, "initial_price": "$19.95"}, "initial_price"),
    ({**GOLD, "currency_code": "XXX"}, "currency_code"),
    ({**GOLD, "client_accnum": "9001"}, "client_accnum"),
    ({"key": "x", "client_accnum": "900100", "client_subacc": "0"}, "subscription_type_id or a price point"),
    ({**GOLD, "recurring_period": None}, "go together"),
    ({**GOLD, "key": ""}, "needs a key"),
])
def test_a_bad_catalogue_is_a_configuration_error(bad, message):
    with pytest.raises(CCBillConfigurationError, match=message):
        UpgradeCatalogue.from_config(json.dumps([bad]))


def test_bad_json_is_a_configuration_error():
    with pytest.raises(CCBillConfigurationError, match="not valid JSON"):
        UpgradeCatalogue.from_config("{nope")
    with pytest.raises(CCBillConfigurationError, match="cannot read"):
        UpgradeCatalogue.from_config("/nonexistent/catalogue.json")


DESTINATION = SubaccountSettings.from_mapping({
    "client_accnum": "948701", "client_subacc": "1", "min_price": "2.95", "max_price": "100.00",
    "min_initial_period": 2, "max_initial_period": 365, "recurring_periods": [30, 60, 90], "currencies": ["840"],
    "username_min_length": 10, "username_max_length": 16, "password_min_length": 8})
ORIGIN = SubaccountSettings.from_mapping({"client_accnum": "900100", "client_subacc": "0", "username_min_length": 6,
                                          "username_max_length": 16, "password_min_length": 8})


def pricing(**overrides):
    values = {"initial_price": Decimal("19.95"), "initial_period": 30, "recurring_price": Decimal("19.95"),
                  "recurring_period": 30, "currency": "840"}
    values.update(overrides)
    return values


def test_a_price_point_inside_the_destination_range():
    DESTINATION.check_pricing(**pricing())


@pytest.mark.parametrize("overrides,param", [
    ({"initial_price": Decimal("150.00")}, "initialPrice"),
    ({"initial_price": Decimal("1.00")}, "initialPrice"),
    ({"recurring_price": Decimal("101.00")}, "recurringPrice"),
    ({"initial_period": 1}, "initialPeriod"),
    ({"recurring_period": 45}, "recurringPeriod"),
    ({"currency": "978"}, "currencyCode"),
])
def test_a_price_point_outside_the_destination_range(overrides, param):
    with pytest.raises(CCBillRequestInvalid) as error:
        DESTINATION.check_pricing(**pricing(**overrides))
    assert error.value.param == param
    assert "948701/0001" in error.value.message


def test_the_consumers_username_too_short_for_the_destination():
    with pytest.raises(CCBillRequestInvalid, match="'Password too short'") as error:
        DESTINATION.check_carried_credentials(username="shorty", password_length=None, origin=ORIGIN)
    assert error.value.param == "username"
    with pytest.raises(CCBillRequestInvalid) as error:
        DESTINATION.check_carried_credentials(username="longenough1", password_length=6, origin=ORIGIN)
    assert error.value.param == "password"
    DESTINATION.check_carried_credentials(username="longenough1", password_length=12, origin=ORIGIN)


def test_unknown_consumer_credentials_with_mismatched_subaccount_settings():
    with pytest.raises(CCBillRequestInvalid, match="pass the consumer's username") as error:
        DESTINATION.check_carried_credentials(username=None, password_length=None, origin=ORIGIN)
    assert error.value.param == "username"
    # Without the origin's settings nothing can be said: left to CCBill.
    DESTINATION.check_carried_credentials(username=None, password_length=None, origin=None)


def test_the_subaccount_directory():
    directory = SubaccountDirectory.from_config(json.dumps([
        {"client_accnum": "948701", "client_subacc": "0001"}, {"client_accnum": "900100", "client_subacc": "0"}]))
    assert directory.get("948701", "1").client_subacc == "0001"
    assert directory.get("948701", "0002") is None
    with pytest.raises(CCBillConfigurationError, match="twice"):
        SubaccountDirectory.from_config(json.dumps([{"client_accnum": "948701", "client_subacc": "1"}] * 2))
    with pytest.raises(CCBillConfigurationError, match="min_price"):
        SubaccountDirectory.from_config(json.dumps([{"client_accnum": "948701", "client_subacc": "1",
                                                     "min_price": "cheap"}]))
