"""The sandbox's webhook configuration: settings, POST /sandbox/config changes, and what is refused."""

from __future__ import annotations

import pytest
from billops_local.ccbill_sandbox.webhook_config import WebhookConfig, WebhookConfigError, parse_versions_setting


def test_defaults_are_the_newest_versions_in_json_without_variation_and_a_random_seed():
    first = WebhookConfig.from_env({})
    assert (first.format, first.variation, first.version_choice("RenewalSuccess")) == ("json", "off", "newest")
    assert len({WebhookConfig.from_env({}).seed for _ in range(20)}) > 1  # drawn, not fixed
    assert f"BILLOPS_SANDBOX_SEED={first.seed}" in first.describe()


def test_settings_choose_format_versions_variation_and_seed():
    config = WebhookConfig.from_env({
        "BILLOPS_SANDBOX_WEBHOOK_FORMAT": "any", "BILLOPS_SANDBOX_WEBHOOK_VARIATION": "varied",
        "BILLOPS_SANDBOX_WEBHOOK_VERSIONS": "NewSaleSuccess=3, RenewalSuccess=newest, *=any",
        "BILLOPS_SANDBOX_SEED": "4242"})
    assert (config.format, config.variation, config.seed) == ("any", "varied", 4242)
    assert config.version_choice("NewSaleSuccess") == 3
    assert config.version_choice("RenewalSuccess") == "newest"
    assert config.version_choice("Expiration") == "any"
    assert config.as_dict()["versions"]["Expiration"] == "any"
    assert config.as_dict()["url_encoded_only"] == {"UpSaleSuccess": [1, 2]}


@pytest.mark.parametrize("env,setting", [
    ({"BILLOPS_SANDBOX_WEBHOOK_FORMAT": "xml"}, "BILLOPS_SANDBOX_WEBHOOK_FORMAT"),
    ({"BILLOPS_SANDBOX_WEBHOOK_VARIATION": "wild"}, "BILLOPS_SANDBOX_WEBHOOK_VARIATION"),
    ({"BILLOPS_SANDBOX_WEBHOOK_VERSIONS": "NewSaleSuccess=9"}, "BILLOPS_SANDBOX_WEBHOOK_VERSIONS"),
    ({"BILLOPS_SANDBOX_WEBHOOK_VERSIONS": "NoSuchEvent=1"}, "BILLOPS_SANDBOX_WEBHOOK_VERSIONS"),
    ({"BILLOPS_SANDBOX_WEBHOOK_VERSIONS": "*=2"}, "BILLOPS_SANDBOX_WEBHOOK_VERSIONS"),
    ({"BILLOPS_SANDBOX_SEED": "-1"}, "BILLOPS_SANDBOX_SEED"),
    ({"BILLOPS_SANDBOX_FAILURE_ORIGINALS": "maybe"}, "BILLOPS_SANDBOX_FAILURE_ORIGINALS"),
])
def test_a_bad_setting_is_named(env, setting):
    with pytest.raises(WebhookConfigError) as raised:
        WebhookConfig.from_env(env)
    assert raised.value.param == setting


def test_a_url_encoded_only_version_cannot_be_fixed_with_json():
    """UpSaleSuccess v1 and v2: "Supported Formats: URL Encoded" (the UpSaleSuccess page)."""
    config = WebhookConfig(seed=1)
    with pytest.raises(WebhookConfigError) as raised:
        config.updated({"versions": {"UpSaleSuccess": 2}})
    assert raised.value.param == "versions.UpSaleSuccess"
    assert config.updated({"format": "urlencoded", "versions": {"UpSaleSuccess": 2}}).version_choice(
        "UpSaleSuccess") == 2
    assert config.updated({"format": "any", "versions": {"UpSaleSuccess": 1}}).format == "any"


def test_changes_merge_and_a_new_default_replaces_the_old_choices():
    config = WebhookConfig(seed=1).updated({"versions": {"NewSaleSuccess": 2}})
    config = config.updated({"versions": {"Refund": 3}})
    assert (config.version_choice("NewSaleSuccess"), config.version_choice("Refund")) == (2, 3)
    config = config.updated({"versions": {"*": "any", "Void": 1}})
    assert (config.version_choice("NewSaleSuccess"), config.version_choice("Void")) == ("any", 1)
    assert config.updated({"versions": "newest"}).versions == {"*": "newest"}
    assert config.updated({"seed": 77}).seed == 77


@pytest.mark.parametrize("changes,param", [
    ({"colour": "red"}, "colour"),
    ({"format": 3}, "format"),
    ({"versions": ["NewSaleSuccess"]}, "versions"),
    ({"versions": {"NewSaleSuccess": "latest"}}, "versions.NewSaleSuccess"),
    ({"versions": {"NewSaleSuccess": True}}, "versions.NewSaleSuccess"),
    ({"seed": "twelve"}, "seed"),
    ({"seed": True}, "seed"),
    ({"failure_originals": "never"}, "failure_originals"),
])
def test_a_bad_change_is_refused_with_its_parameter(changes, param):
    with pytest.raises(WebhookConfigError) as raised:
        WebhookConfig(seed=1).updated(changes)
    assert raised.value.param == param


def test_versions_setting_forms():
    assert parse_versions_setting("any") == {"*": "any"}
    assert parse_versions_setting("Refund=2,*=newest") == {"Refund": "2", "*": "newest"}
    with pytest.raises(WebhookConfigError):
        parse_versions_setting("Refund=2,,")


def test_failure_originals_are_sent_unless_omitted():
    assert WebhookConfig.from_env({}).as_dict()["failure_originals"] == "sent"
    omitted = WebhookConfig.from_env({"BILLOPS_SANDBOX_FAILURE_ORIGINALS": "omitted"})
    assert omitted.omits("UpSaleFailure", "originalSubscriptionId")
    assert not omitted.omits("UpSaleSuccess", "originalSubscriptionId"), "documented on the success events"
    assert not omitted.updated({"failure_originals": "sent"}).omits("UpgradeFailure", "originalClientAccnum")
