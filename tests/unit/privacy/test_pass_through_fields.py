"""Pass-through fields (the merchant's X-... variables CCBill echoes back, and referringUrl) are personal data unless
the merchant declares them clear; the customer-reference setting must name a clear one, or nothing starts."""

import pytest

from billops.privacy.subscriber_data import is_pass_through, is_personal, split_personal
from billops.settings import SettingsError, settings_from_env

FIELDS = {
    "subscriptionId": "0117240102000000049",
    "email": "jane@example.net",
    "X-email": "jane.doe@example.org",
    "X-customer_fname": "Jane",
    "x-lowercase": "somebody",
    "X-user_id": "1234",
    "referringUrl": "https://www.example.com/join?user=janedoe",
    "bin": "411111",
}


def test_every_pass_through_field_and_the_referring_url_are_personal_by_default():
    public, personal = split_personal(FIELDS)
    assert set(personal) == {"email", "X-email", "X-customer_fname", "x-lowercase", "X-user_id", "referringUrl"}
    assert public == {"subscriptionId": "0117240102000000049", "bin": "411111"}


def test_fields_declared_clear_stay_in_clear_matched_ignoring_case():
    public, personal = split_personal(FIELDS, ["x-USER_ID", "referringUrl"])
    assert public["X-user_id"] == "1234" and public["referringUrl"].startswith("https://")
    assert "X-email" in personal and "X-user_id" not in personal


def test_a_ccbill_personal_field_cannot_be_declared_clear():
    assert is_personal("email", frozenset({"email"}))
    assert is_pass_through("X-anything") and is_pass_through("referringUrl") and not is_pass_through("email")


def test_settings_read_the_clear_fields_and_the_customer_reference():
    settings = settings_from_env({"BILLOPS_PASSTHROUGH_CLEAR_FIELDS": " X-user_id , X-plan ",
                                  "BILLOPS_CUSTOMER_REFERENCE_FIELD": "X-user_id"})
    assert settings.passthrough_clear_fields == ("X-user_id", "X-plan")
    assert settings.customer_reference_field == "X-user_id"
    assert settings_from_env({}).customer_reference_field is None


def test_a_customer_reference_that_is_not_declared_clear_refuses_to_start():
    with pytest.raises(SettingsError) as refused:
        settings_from_env({"BILLOPS_CUSTOMER_REFERENCE_FIELD": "X-user_id"})
    assert "BILLOPS_CUSTOMER_REFERENCE_FIELD" in str(refused.value)
    assert "BILLOPS_PASSTHROUGH_CLEAR_FIELDS" in str(refused.value) and "X-user_id" in str(refused.value)
    with pytest.raises(SettingsError):
        settings_from_env({"BILLOPS_PASSTHROUGH_CLEAR_FIELDS": "X-plan",
                           "BILLOPS_CUSTOMER_REFERENCE_FIELD": "X-user_id"})


def test_only_pass_through_fields_can_be_declared_clear():
    with pytest.raises(SettingsError) as refused:
        settings_from_env({"BILLOPS_PASSTHROUGH_CLEAR_FIELDS": "X-user_id,email"})
    assert "'email'" in str(refused.value) and "BILLOPS_PASSTHROUGH_CLEAR_FIELDS" in str(refused.value)
