"""The merchant API fails closed: in AWS, without BILLOPS_API_KEYS_TABLE no key is valid, even one that sits in a
table carrying the default name (moto, in process)."""

from __future__ import annotations

import base64

import boto3
import pytest
from billops.merchant_api.api_authentication import Authenticator
from billops.merchant_api.api_failures import MerchantApiError
from billops.merchant_api.api_keys import ApiKeysTable, KeyStore, generate_secret, register_key
from billops.merchant_api.api_settings import DEFAULT_KEYS_TABLE, api_settings_from_env
from billops.merchant_api.failed_auth_limits import FailedAuthLimits
from billops_local.template_resources import load_template
from moto import mock_aws


@pytest.fixture
def dynamodb(aws_credentials):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        kwargs = load_template().tables["ApiKeysTable"].create_table_kwargs()
        client.create_table(**{**kwargs, "TableName": DEFAULT_KEYS_TABLE})
        yield client


def _authenticator(env: dict[str, str], dynamodb) -> Authenticator:
    settings = api_settings_from_env(env)
    table = ApiKeysTable(settings.keys_table, dynamodb)
    return Authenticator(KeyStore(table, settings.key_cache_seconds),
                         FailedAuthLimits(table, settings.failure_limit, settings.failure_window_seconds))


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()


def test_without_a_keys_table_in_aws_every_key_is_refused(dynamodb) -> None:
    secret = generate_secret("prod")
    register_key(ApiKeysTable(DEFAULT_KEYS_TABLE, dynamodb), secret, "ops", key_id="key_ops")
    assert api_settings_from_env({"BILLOPS_ENV": "prod"}).keys_table == ""
    with pytest.raises(MerchantApiError) as refused:
        _authenticator({"BILLOPS_ENV": "prod"}, dynamodb).authenticate(_basic(secret), "203.0.113.9")
    assert refused.value.status == 500  # "something went wrong" to the caller; the cause is logged
    # The same key in the same table is accepted once the table is configured: the refusal was the configuration's.
    configured = {"BILLOPS_ENV": "prod", "BILLOPS_API_KEYS_TABLE": DEFAULT_KEYS_TABLE}
    assert _authenticator(configured, dynamodb).authenticate(_basic(secret), "203.0.113.9").key_id == "key_ops"


def test_the_local_stack_keeps_its_default_table() -> None:
    assert api_settings_from_env({"BILLOPS_ENV": "local"}).keys_table == DEFAULT_KEYS_TABLE
