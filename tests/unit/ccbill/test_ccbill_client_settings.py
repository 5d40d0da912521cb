"""Client settings: the sandbox by default locally, CCBill over https elsewhere."""

from __future__ import annotations

import pytest
from billops.ccbill.client_settings import (
    PRODUCTION_BILLING_API_URL,
    PRODUCTION_SMS_URL,
    PRODUCTION_UPGRADE_URL,
    CCBillClientSettings,
)
from billops.ccbill.errors import CCBillConfigurationError


def test_local_defaults_to_the_sandbox():
    settings = CCBillClientSettings.from_env({"BILLOPS_ENV": "local", "BILLOPS_SANDBOX_PORT": "4100"})
    assert settings.sms_url == "http://127.0.0.1:4100/utils/subscriptionManagement.cgi"
    assert settings.billing_api_url == "http://127.0.0.1:4100/jpost/billingApi.cgi"
    assert settings.upgrade_url == "http://127.0.0.1:4100/jpost/upgradeSubscription.cgi"
    assert CCBillClientSettings.from_env({"BILLOPS_ENV": "local"}).sms_url.startswith("http://127.0.0.1:4000/")


def test_without_an_environment_nothing_local_applies():
    """Fail closed: BILLOPS_ENV unset is a deployment, so CCBill itself over https, never a sandbox on loopback."""
    assert CCBillClientSettings.from_env({}).sms_url == PRODUCTION_SMS_URL
    with pytest.raises(CCBillConfigurationError, match="BILLOPS_CCBILL_SMS_URL: must use https"):
        CCBillClientSettings.from_env({"BILLOPS_CCBILL_SMS_URL": "http://127.0.0.1:4000/x"})


def test_aws_defaults_to_ccbill():
    settings = CCBillClientSettings.from_env({"BILLOPS_ENV": "prod"})
    assert (settings.sms_url, settings.billing_api_url, settings.upgrade_url) == (
        PRODUCTION_SMS_URL, PRODUCTION_BILLING_API_URL, PRODUCTION_UPGRADE_URL)
    assert PRODUCTION_SMS_URL == "https://datalink.ccbill.com/utils/subscriptionManagement.cgi"
    assert PRODUCTION_BILLING_API_URL == "https://bill.ccbill.com/jpost/billingApi.cgi"


def test_settings_from_the_environment():
    settings = CCBillClientSettings.from_env({
        "BILLOPS_ENV": "staging",
        "BILLOPS_CCBILL_SMS_URL": "https://sms.example.com/utils/subscriptionManagement.cgi",
        "BILLOPS_CCBILL_CONNECT_TIMEOUT": "2.5",
        "BILLOPS_CCBILL_READ_TIMEOUT": "20",
        "BILLOPS_CCBILL_RESPONSE_FORMAT": "CSV",
        "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x",
        "BILLOPS_CCBILL_CREDENTIALS_MAX_AGE": "60",
        "BILLOPS_CCBILL_STATUS_RETRIES": "0",
    })
    assert settings.sms_url == "https://sms.example.com/utils/subscriptionManagement.cgi"
    assert (settings.connect_timeout, settings.read_timeout, settings.response_format) == (2.5, 20.0, "csv")
    assert settings.credentials_max_age == 60 and settings.status_retries == 0


@pytest.mark.parametrize("env,message", [
    ({"BILLOPS_ENV": "prod", "BILLOPS_CCBILL_SMS_URL": "http://datalink.ccbill.com/x"}, "https"),
    ({"BILLOPS_CCBILL_SMS_URL": "ftp://x/y"}, "http"),
    ({"BILLOPS_CCBILL_UPGRADE_URL": "https://u:p@bill.ccbill.com/x"}, "credentials"),
    ({"BILLOPS_CCBILL_READ_TIMEOUT": "soon"}, "number"),
    ({"BILLOPS_CCBILL_RESPONSE_FORMAT": "json"}, "'xml' or 'csv'"),
])
def test_bad_settings(env, message):
    with pytest.raises(CCBillConfigurationError, match=message):
        CCBillClientSettings.from_env(env)
