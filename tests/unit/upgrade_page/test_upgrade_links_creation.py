"""create_upgrade_link: the link, CCBill's form fields (enc included) and, for allow_upgrade, the queued operation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from billops.api_errors import ApiError
from billops.ccbill.upgrade_encryption import EncRecipe, decrypt, derive_key
from billops.operations.operation_records import operation_id_for
from billops.upgrade_page.link_tokens import StaticSigningKeys, nonce_for_request, verify
from billops.upgrade_page.page_settings import UpgradePageConfigurationError
from billops.upgrade_page.upgrade_links import create_upgrade_link
from upgrade_page_unit_fixtures import (
    BASE_URL,
    GOLD,
    PLATINUM,
    SIGNING_SECRET,
    UPGRADE_KEY,
    subscription_record,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
SUBSCRIPTION = "0126001234000000017"


def _token(link: dict) -> str:
    prefix = f"{BASE_URL}/upgrade/"
    assert link["url"].startswith(prefix)
    return link["url"][len(prefix):]


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_an_enc_link_carries_exactly_ccbills_fields(upgrade_env):
    link = create_upgrade_link(subscription_record(), now=NOW)
    assert set(link) == {"url", "action_url", "form_fields", "expires_at", "method", "credential_warning",
                         "identify_by"}
    assert link["method"] == "enc"  # the deployment's Security Type is encryption (no fixed egress IP)
    assert "permanent credential" in link["credential_warning"] and "recombined" in link["credential_warning"]
    assert link["action_url"] == "http://127.0.0.1:4000/jpost/upgradeSubscription.cgi"  # local: the sandbox
    # One upgrade configured: the three upgrade variables are left out, as CCBill's guide allows.
    assert set(link["form_fields"]) == {"clientAccnum", "clientSubacc", "enc"}
    assert link["form_fields"]["clientAccnum"] == "900100" and link["form_fields"]["clientSubacc"] == "0000"
    assert decrypt(derive_key(UPGRADE_KEY), link["form_fields"]["enc"], EncRecipe()) == f"subscriptionId={SUBSCRIPTION}"
    assert link["expires_at"] == "2026-03-04T12:00:00Z"  # 72 hours, whole seconds
    claims = verify(_token(link), [SIGNING_SECRET.encode()], now=NOW)
    assert (claims.subscription_id, claims.method, claims.upgrade) == (SUBSCRIPTION, "enc", "gold")
    assert claims.expires_at == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert upgrade_env.messages() == []  # enc needs no backend post
    assert "jane" not in str(link) and "janedoe1" not in str(link)
    offers = upgrade_env.subscription()["operation_facts"]["upgrade_offers"]
    assert offers == {"gold": {"method": "enc", "first_offered_at": "2026-03-01T12:00:00Z",
                               "last_offered_at": "2026-03-01T12:00:00Z"}}, "noted before the enc leaves"


def test_every_link_is_distinct(upgrade_env):
    first, second = (create_upgrade_link(subscription_record(), now=NOW) for _ in range(2))
    assert first["url"] != second["url"]
    assert first["form_fields"] == second["form_fields"]


def test_with_several_upgrades_the_upgrade_variables_are_fields_beside_an_enc_of_the_identity(upgrade_env):
    upgrade_env.catalogue(GOLD, PLATINUM)
    link = create_upgrade_link(subscription_record(), upgrade_type_id="0016", now=NOW)
    fields = link["form_fields"]
    assert fields == {"clientAccnum": "900100", "clientSubacc": "0000", "enc": fields["enc"],
                      "upgradeClientAccnum": "900100", "upgradeClientSubacc": "0002", "upgradeTypeId": "0016"}
    # The guide: enc "Will be inclusive of either the subscriptionId or username"; the variables are form fields.
    assert decrypt(derive_key(UPGRADE_KEY), fields["enc"], EncRecipe()) == f"subscriptionId={SUBSCRIPTION}"
    gold = create_upgrade_link(subscription_record(), upgrade_type_id="0015", now=NOW)["form_fields"]
    assert gold["enc"] == fields["enc"], "one enc per subscription, whatever the upgrade"
    assert verify(_token(link), [SIGNING_SECRET.encode()], now=NOW).upgrade == "platinum"
    error = _error(lambda: create_upgrade_link(subscription_record(), now=NOW))
    assert (error.status, error.api_error_code, error.param) == (400, "param_wrong_value", "upgrade_type_id")


def test_the_default_method_is_the_deployments_security_type_and_the_other_is_refused(upgrade_env):
    assert create_upgrade_link(subscription_record(), now=NOW)["method"] == "enc"
    error = _error(lambda: create_upgrade_link(subscription_record(), method="allow_upgrade", now=NOW))
    assert (error.status, error.param) == (400, "method") and "fixed egress IP" in error.message
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "auto")
    upgrade_env.set("BILLOPS_FIXED_EGRESS_IP", "true")  # the stack can make the backend post: it is the default
    link = create_upgrade_link(subscription_record(), now=NOW)
    assert (link["method"], link["credential_warning"]) == ("allow_upgrade", None)
    assert "enc" not in link["form_fields"]
    error = _error(lambda: create_upgrade_link(subscription_record(), method="enc", now=NOW))
    assert (error.status, error.param) == (400, "method") and "accepts no enc" in error.message
    assert len(upgrade_env.messages()) == 1, "the refused enc link queued nothing"


def test_an_allow_upgrade_link_records_and_queues_the_backend_post_as_an_operation(upgrade_env):
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "backend_post")
    link = create_upgrade_link(subscription_record(), method="allow_upgrade", now=NOW)
    claims = verify(_token(link), [SIGNING_SECRET.encode()], now=NOW)
    assert claims.method == "allow_upgrade"
    assert link["form_fields"] == {"clientAccnum": "900100", "clientSubacc": "0000",
                                   "action": "upgradeSubscription", "subscriptionId": SUBSCRIPTION}
    # As long as an enc link: a consumer who comes after CCBill's 30 minutes gets the backend post sent again.
    assert link["expires_at"] == "2026-03-04T12:00:00Z"
    key = f"upgrade-link:{claims.nonce}"
    assert link["operation_id"] == operation_id_for(key)
    record = upgrade_env.operation(link["operation_id"])
    assert record is not None, "recorded before the answer names it"
    assert (record["status"], record["operation_type"], record["idempotency_key"]) == ("queued", "upgrade", key)
    assert record["parameters"] == {"method": "allow_upgrade", "upgrade": "gold"}
    (message,) = upgrade_env.messages()
    assert message["body"] == {"operation_type": "upgrade", "subscription_id": SUBSCRIPTION, "idempotency_key": key,
                               "client_subacc": "0000", "parameters": {"method": "allow_upgrade", "upgrade": "gold"},
                               "suppress_domain_events": False}
    assert message["attributes"]["MessageGroupId"] == SUBSCRIPTION
    assert message["attributes"]["MessageDeduplicationId"] == key


def test_links_made_for_one_idempotency_key_name_one_operation(upgrade_env):
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "backend_post")
    upgrade_env.catalogue(GOLD, PLATINUM)
    first = create_upgrade_link(subscription_record(), method="allow_upgrade", upgrade_type_id="0016",
                                idempotency_key="link-42", now=NOW)
    again = create_upgrade_link(subscription_record(), method="allow_upgrade", upgrade_type_id="0016",
                                idempotency_key="link-42", now=NOW + timedelta(seconds=5))
    assert again["operation_id"] == first["operation_id"]
    assert verify(_token(again), [SIGNING_SECRET.encode()], now=NOW).nonce == nonce_for_request("link-42")
    assert len(upgrade_env.messages()) == 1, "SQS drops the repeat within its deduplication window"
    other = create_upgrade_link(subscription_record(), method="allow_upgrade", upgrade_type_id="0016",
                                idempotency_key="link-43", now=NOW)
    assert other["operation_id"] != first["operation_id"]
    error = _error(lambda: create_upgrade_link(subscription_record(), method="allow_upgrade", upgrade_type_id="15",
                                               idempotency_key="link-42", now=NOW))
    assert (error.status, error.api_error_code, error.param) == (409, "idempotency_key_reused", "Idempotency-Key")
    assert upgrade_env.operation(first["operation_id"])["parameters"]["upgrade"] == "platinum", "the first is kept"


def test_an_allow_upgrade_link_whose_operation_cannot_be_queued_is_500_without_detail(upgrade_env):
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "backend_post")
    upgrade_env.set("BILLOPS_OPERATIONS_QUEUE_URL", upgrade_env.queue_url.replace("operations.fifo", "gone.fifo"))
    error = _error(lambda: create_upgrade_link(subscription_record(), method="allow_upgrade", now=NOW))
    assert (error.status, error.api_error_code, error.param) == (500, "internal_error", None)
    assert "gone" not in error.message and "queue" not in error.message.lower()
    assert upgrade_env.messages() == []


def test_an_allow_upgrade_link_does_not_need_the_upgrade_key(upgrade_env):
    upgrade_env.set("BILLOPS_UPGRADE_KEY_CIPHERTEXT", None)
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "backend_post")
    assert create_upgrade_link(subscription_record(), now=NOW)["method"] == "allow_upgrade"
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "encryption")
    error = _error(lambda: create_upgrade_link(subscription_record(), now=NOW))
    assert (error.status, error.api_error_code, error.param) == (400, "param_wrong_value", "method")
    assert "upgrade key" in error.message


@pytest.mark.parametrize("record,status,code", [
    (subscription_record(status="expired"), 409, "invalid_state_for_request"),
    (subscription_record(status="cancelled"), 409, "invalid_state_for_request"),
    (subscription_record(client_subacc="0001", subscription_type_id="0015"), 409, "invalid_state_for_request"),
])
def test_refusals_for_the_subscriptions_state(upgrade_env, record, status, code):
    upgrade_env.set("BILLOPS_UPGRADE_SECURITY", "backend_post")
    error = _error(lambda: create_upgrade_link(record, method="allow_upgrade", now=NOW))
    assert (error.status, error.api_error_code) == (status, code)
    assert upgrade_env.messages() == []  # a refused link queues nothing


def test_refusals_for_bad_parameters(upgrade_env):
    error = _error(lambda: create_upgrade_link(subscription_record(), method="charge", now=NOW))
    assert (error.status, error.api_error_code, error.param) == (400, "param_wrong_value", "method")
    error = _error(lambda: create_upgrade_link(subscription_record(), upgrade_client_subacc="0007", now=NOW))
    assert (error.status, error.param) == (400, "upgrade_client_subacc")
    upgrade_env.catalogue()
    error = _error(lambda: create_upgrade_link(subscription_record(), now=NOW))
    assert (error.status, error.api_error_code) == (400, "invalid_request")
    with pytest.raises(ValueError):
        create_upgrade_link(None, now=NOW)  # type: ignore[arg-type]


def test_ttl_and_base_url_settings(upgrade_env):
    upgrade_env.set("BILLOPS_UPGRADE_LINK_TTL_SECONDS", "3600")
    assert create_upgrade_link(subscription_record(), now=NOW)["expires_at"] == "2026-03-01T13:00:00Z"
    upgrade_env.set("BILLOPS_UPGRADE_LINK_TTL_SECONDS", "10")
    with pytest.raises(UpgradePageConfigurationError):
        create_upgrade_link(subscription_record(), now=NOW)
    upgrade_env.set("BILLOPS_UPGRADE_LINK_TTL_SECONDS", None)
    upgrade_env.set("BILLOPS_PUBLIC_BASE_URL", None)
    upgrade_env.set("BILLOPS_API_PORT", "3456")
    assert create_upgrade_link(subscription_record(), now=NOW)["url"].startswith("http://127.0.0.1:3456/upgrade/")


def test_outside_the_local_stack_the_base_url_comes_from_ssm_and_must_be_https(upgrade_env):
    boto3.client("ssm").put_parameter(Name="/billops-dev/public-base-url", Type="String",
                                      Value="https://abc123.execute-api.us-east-1.amazonaws.com")
    upgrade_env.set("BILLOPS_ENV", "dev")
    upgrade_env.set("BILLOPS_CCBILL_UPGRADE_URL", None)
    upgrade_env.set("BILLOPS_PUBLIC_BASE_URL", None)
    upgrade_env.set("BILLOPS_PUBLIC_BASE_URL_PARAMETER", "/billops-dev/public-base-url")
    link = create_upgrade_link(subscription_record(), now=NOW)
    assert link["url"].startswith("https://abc123.execute-api.us-east-1.amazonaws.com/upgrade/")
    assert link["action_url"] == "https://bill.ccbill.com/jpost/upgradeSubscription.cgi"
    upgrade_env.set("BILLOPS_PUBLIC_BASE_URL", "http://billing.example.test")
    with pytest.raises(UpgradePageConfigurationError):
        create_upgrade_link(subscription_record(), now=NOW)


def test_a_naive_now_is_refused(upgrade_env):
    with pytest.raises(ValueError):
        create_upgrade_link(subscription_record(), now=datetime(2026, 3, 1))
    assert create_upgrade_link(subscription_record())["expires_at"] > (
        datetime.now(UTC) + timedelta(hours=71)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_static_keys_verify_what_the_secret_signed(upgrade_env):
    link = create_upgrade_link(subscription_record(), now=NOW)
    assert verify(_token(link), StaticSigningKeys(SIGNING_SECRET.encode()).verification_keys(), now=NOW)
