import pytest

from billops.api_errors import ApiError
from billops.settings import SettingsError, settings_from_env
from billops.webhooks.source_authentication import check_account, check_source

AWS_ENV = {"BILLOPS_ENV": "prod"}


def _rejected(call) -> dict:
    with pytest.raises(ApiError) as raised:
        call()
    assert raised.value.status == 403
    return raised.value.body()


@pytest.mark.parametrize("ip", ["64.38.212.1", "64.38.215.200", "64.38.240.9", "64.38.241.254"])
def test_ccbill_ranges_with_the_right_token_pass(ip):
    check_source(ip, "s3cret", "s3cret", settings_from_env(AWS_ENV))


@pytest.mark.parametrize("ip", ["64.38.213.1", "10.0.0.1", "127.0.0.1", "::1", "", None, "not-an-ip"])
def test_other_sources_are_refused_in_aws(ip):
    body = _rejected(lambda: check_source(ip, "s3cret", "s3cret", settings_from_env(AWS_ENV)))
    assert body["api_error_code"] == "api_authorization_failed"
    assert "source address" in body["message"]


def test_loopback_is_allowed_only_in_local_mode():
    check_source("127.0.0.1", "t", "t", settings_from_env({"BILLOPS_ENV": "local"}))
    _rejected(lambda: check_source("127.0.0.1", "t", "t", settings_from_env({"BILLOPS_ENV": "dev"})))


@pytest.mark.parametrize("token", [None, "", "s3cre", "s3cret ", "S3CRET"])
def test_wrong_or_missing_token_is_refused(token):
    body = _rejected(lambda: check_source("64.38.212.1", token, "s3cret", settings_from_env(AWS_ENV)))
    assert "token" in body["message"]


def test_missing_configuration_rejects_everything():
    _rejected(lambda: check_source("64.38.212.1", "anything", None, settings_from_env(AWS_ENV)))
    no_ranges = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_ALLOWED_CIDRS": ""})
    _rejected(lambda: check_source("64.38.212.1", "t", "t", no_ranges))


def test_a_typo_in_the_ranges_refuses_to_start():
    """Neither widened nor silently narrowed: the function refuses to start, naming the variable and the entry."""
    with pytest.raises(SettingsError, match=r"BILLOPS_ALLOWED_CIDRS: not address ranges: 'banana'"):
        settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_ALLOWED_CIDRS": "64.38.212.0/24,banana"})


def test_configured_account_and_subaccounts_are_enforced():
    settings = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_CLIENT_ACCNUM": "900100",
                                  "BILLOPS_CLIENT_SUBACCS": "0000,1"})
    check_account("900100", "0000", settings)
    check_account("900100", "0001", settings)
    _rejected(lambda: check_account("900101", "0000", settings))
    _rejected(lambda: check_account("900100", "0002", settings))
    check_account("123", "9999", settings_from_env(AWS_ENV))  # not configured: not checked


def test_upgrades_into_another_account_pass_on_their_original_account_or_the_catalogue():
    from billops.webhooks.source_authentication import check_delivery_account

    catalogue = '{"upgrades": [{"key": "gold", "client_accnum": "900300", "client_subacc": "5", ' \
                '"subscription_type_id": "0015"}]}'
    settings = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_CLIENT_ACCNUM": "900100",
                                  "BILLOPS_CLIENT_SUBACCS": "0000,1", "BILLOPS_UPGRADE_CATALOGUE": catalogue})

    def fields(accnum, subacc, original_accnum=None, original_subacc=None):
        values = {"clientAccnum": accnum, "clientSubacc": subacc, "originalClientAccnum": original_accnum,
                  "originalClientSubacc": original_subacc}
        return {name: value for name, value in values.items() if value is not None}

    check_delivery_account("UpSaleSuccess", fields("900200", "0007", "900100", "0001"), settings)
    check_delivery_account("CrossSaleFailure", fields("900200", "0007", "900100", "1"), settings)
    check_delivery_account("UpgradeSuccess", fields("900300", "0005"), settings)  # in the catalogue
    check_delivery_account("RenewalSuccess", fields("900100", "0000"), settings)  # the merchant's own
    _rejected(lambda: check_delivery_account("UpSaleSuccess", fields("900200", "0007", "900100"), settings))
    _rejected(lambda: check_delivery_account("UpSaleSuccess", fields("900200", "0007", "900999", "0000"), settings))
    _rejected(lambda: check_delivery_account("RenewalSuccess", fields("900300", "0005", "900100", "0000"), settings))
    broken = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_CLIENT_ACCNUM": "900100",
                                "BILLOPS_UPGRADE_CATALOGUE": "{not json"})
    _rejected(lambda: check_delivery_account("UpSaleSuccess", fields("900300", "0005"), broken))
