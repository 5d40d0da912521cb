"""DataLink credentials from Secrets Manager (moto), cached with a time to live, never shown."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from billops.ccbill.credentials import (
    CCBillCredentials,
    CCBillCredentialsUnavailable,
    SecretsManagerCredentials,
    StaticCredentials,
)
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from moto import mock_aws

SECRET = {"client_accnum": "900100", "username": "dl-user", "password": "s3cret-pa55word"}


@pytest.fixture
def secrets(aws_credentials):
    parameters.clear_caches()
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        yield client
    parameters.clear_caches()


def test_credentials_are_read_and_cached(secrets):
    arn = secrets.create_secret(Name="billops/ccbill", SecretString=json.dumps(SECRET))["ARN"]
    provider = SecretsManagerCredentials(arn, max_age=300)
    first = provider.get()
    assert (first.client_accnum, first.username, first.password, first.client_subacc) == (
        "900100", "dl-user", "s3cret-pa55word", None)
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({**SECRET, "password": "rotated-password"}))
    assert provider.get().password == "s3cret-pa55word"  # cached within max_age
    assert provider.get(force_refresh=True).password == "rotated-password"


def test_rotation_is_picked_up_after_max_age(secrets):
    arn = secrets.create_secret(Name="billops/ccbill-ttl", SecretString=json.dumps(SECRET))["ARN"]
    provider = SecretsManagerCredentials(arn, max_age=0)
    assert provider.get().password == "s3cret-pa55word"
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({**SECRET, "password": "rotated-password"}))
    assert provider.get().password == "rotated-password"


def test_a_missing_or_malformed_secret_is_reported_without_its_content(secrets):
    with pytest.raises(CCBillCredentialsUnavailable, match="billops/missing"):
        SecretsManagerCredentials("billops/missing").get()
    secrets.create_secret(Name="billops/not-json", SecretString="password=hunter2")
    with pytest.raises(CCBillCredentialsUnavailable) as error:
        SecretsManagerCredentials("billops/not-json").get()
    assert "hunter2" not in str(error.value)
    secrets.create_secret(Name="billops/no-password", SecretString=json.dumps({"client_accnum": "900100",
                                                                              "username": "u"}))
    with pytest.raises(CCBillCredentialsUnavailable, match="username and a password"):
        SecretsManagerCredentials("billops/no-password").get()


def test_no_secret_configured():
    with pytest.raises(CCBillConfigurationError, match="BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN"):
        SecretsManagerCredentials("")


def test_credentials_never_show_the_username_or_password():
    credentials = CCBillCredentials.from_mapping({**SECRET, "clientSubacc": "1"})
    for text in (repr(credentials), str(credentials), repr(StaticCredentials(credentials)), f"{credentials}"):
        assert "s3cret" not in text and "dl-user" not in text
    assert credentials.client_subacc == "0001"


def test_subaccount_scope():
    main_level = CCBillCredentials.from_mapping(SECRET)
    assert main_level.auth_params(None) == {"clientAccnum": "900100", "username": "dl-user",
                                            "password": "s3cret-pa55word"}
    assert main_level.auth_params("0001")["usingSubacc"] == "0001"
    bound = CCBillCredentials.from_mapping({**SECRET, "client_subacc": "0001"})
    assert bound.auth_params(None)["clientSubacc"] == "0001"
    assert "usingSubacc" not in bound.auth_params("0001")
    with pytest.raises(CCBillRequestInvalid, match="bound to subaccount 0001") as error:
        bound.auth_params("0002")
    assert error.value.param == "clientSubacc"
