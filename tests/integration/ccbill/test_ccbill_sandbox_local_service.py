"""The sandbox as a local-stack service: the client configured from the environment, against moto, end to end."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from billops.ccbill.client import CCBillClient
from billops_local.aws_environment import local_aws_environment
from billops_local.ccbill_sandbox.local_service import add_to_stack

UPGRADE_KEY = "0123456789abcdeffedcba987654321089abcdef01234567"


@dataclass
class StackSettings:
    host: str = "127.0.0.1"
    sandbox_port: int = 0


@dataclass
class FakeStack:
    """The part of billops_local.stack.LocalStack a service uses."""

    aws_endpoint: str
    webhook_url: str
    settings: StackSettings = field(default_factory=StackSettings)
    services: list[dict[str, Any]] = field(default_factory=list)

    def add_service(self, name, start, stop=None, *, port=None, description=None):
        self.services.append({"name": name, "start": start, "stop": stop, "port": port, "description": description})


@pytest.fixture
def local_env(moto_server, monkeypatch):
    for name, value in local_aws_environment(moto_server.endpoint_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BILLOPS_ENV", "local")
    monkeypatch.setenv("BILLOPS_UPGRADE_KEY", UPGRADE_KEY)
    monkeypatch.setenv("BILLOPS_SANDBOX_WEBHOOK_FORMAT", "urlencoded")
    for name in ("BILLOPS_CCBILL_SMS_URL", "BILLOPS_CCBILL_BILLING_API_URL", "BILLOPS_CCBILL_UPGRADE_URL",
                 "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN", "BILLOPS_UPGRADE_KEY_CIPHERTEXT",
                 "BILLOPS_UPGRADE_KEY_SECRET_ARN", "BILLOPS_CCBILL_SUBACCOUNTS", "BILLOPS_UPGRADE_CATALOGUE",
                 "BILLOPS_UPGRADE_SECURITY", "BILLOPS_FIXED_EGRESS_IP"):
        monkeypatch.delenv(name, raising=False)
    return moto_server


def test_the_local_stack_configures_the_client_as_production_does(local_env, receiver):
    stack = FakeStack(local_env.endpoint_url, receiver.url)
    service = add_to_stack(stack)
    [entry] = stack.services
    assert entry["name"] == "ccbill-sandbox"
    entry["start"](stack)
    try:
        assert entry["port"]() == service.handle.port
        assert "BILLOPS_UPGRADE_KEY" not in os.environ  # held only as KMS ciphertext from now on
        ciphertext = os.environ["BILLOPS_UPGRADE_KEY_CIPHERTEXT"]
        assert UPGRADE_KEY not in ciphertext
        assert os.environ["BILLOPS_CCBILL_SMS_URL"] == service.handle.sms_url
        assert os.environ["BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN"].startswith("arn:aws:secretsmanager:")

        client = CCBillClient.from_env()  # credentials from moto's Secrets Manager, the key through moto's KMS
        sub = service.handle.create_subscription(initial_price="19.95", initial_period=30,
                                                 recurring_price="19.95", recurring_period=30)
        assert client.view_subscription_status(sub).data["subscriptionStatus"] == "2"
        form = client.upgrade_form("0000", subscription_id=sub, upgrade="gold")
        page = requests.post(form.url, data=form.fields, timeout=5)
        assert "Upgrade Approved" in page.text
        assert service.handle.wait_for_webhooks()
        assert receiver.event_types() == ["NewSaleSuccess", "UpgradeSuccess"]
        assert receiver.deliveries[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert "sandbox" in entry["description"]()
    finally:
        entry["stop"]()
    assert os.environ["BILLOPS_UPGRADE_KEY"] == UPGRADE_KEY  # put back as it was
    assert "BILLOPS_UPGRADE_KEY_CIPHERTEXT" not in os.environ


def test_a_key_that_cannot_work_stops_the_start_with_the_reason(local_env, receiver, monkeypatch):
    from billops_local.ccbill_sandbox.local_service import SandboxConfigurationError

    for key, reason in (("not-hex", "letters and digits"), ("9" * 49, "at most 48 hex digits")):
        monkeypatch.setenv("BILLOPS_UPGRADE_KEY", key)
        stack = FakeStack(local_env.endpoint_url, receiver.url)
        add_to_stack(stack)
        with pytest.raises(SandboxConfigurationError, match=reason) as error:
            stack.services[0]["start"](stack)
        assert key not in str(error.value)
        assert key not in os.environ.get("BILLOPS_UPGRADE_KEY_CIPHERTEXT", "")


def test_the_key_as_merchant_support_hands_it_out_works_by_default(local_env, receiver, monkeypatch):
    from billops.ccbill.upgrade_encryption import EncRecipe, decrypt, derive_key

    monkeypatch.delenv("BILLOPS_UPGRADE_KEY")  # the local default: the guide's own 10-digit example key
    stack = FakeStack(local_env.endpoint_url, receiver.url)
    service = add_to_stack(stack)
    stack.services[0]["start"](stack)
    try:
        client = CCBillClient.from_env()
        sub = service.handle.create_subscription(initial_price="19.95", initial_period=30,
                                                 recurring_price="19.95", recurring_period=30)
        form = client.upgrade_form("0000", subscription_id=sub, upgrade="platinum")
        assert decrypt(derive_key("8745921457"), form.fields["enc"], EncRecipe()) == f"subscriptionId={sub}"
        assert "Upgrade Approved" in requests.post(form.url, data=form.fields, timeout=5).text
    finally:
        stack.services[0]["stop"]()


def test_the_sandbox_takes_the_stacks_upgrade_security_type(local_env, receiver, monkeypatch):
    monkeypatch.setenv("BILLOPS_FIXED_EGRESS_IP", "true")  # auto -> backend_post, as the template resolves it
    stack = FakeStack(local_env.endpoint_url, receiver.url)
    service = add_to_stack(stack)
    stack.services[0]["start"](stack)
    try:
        client = CCBillClient.from_env()
        sub = service.handle.create_subscription(initial_price="19.95", initial_period=30,
                                                 recurring_price="19.95", recurring_period=30)
        enc_form = client.upgrade_form("0000", subscription_id=sub, upgrade="gold")
        assert "Upgrade Denied" in requests.post(enc_form.url, data=enc_form.fields, timeout=5).text
        assert client.allow_upgrade("0000", subscription_id=sub, upgrade="gold").succeeded  # from 127.0.0.1
        step_two = client.upgrade_form("0000", subscription_id=sub, upgrade="gold", method="backend_post")
        assert "Upgrade Approved" in requests.post(step_two.url, data=step_two.fields, timeout=5).text
    finally:
        stack.services[0]["stop"]()
