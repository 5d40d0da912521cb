"""The ``sam_local`` fixture: the sample events of events/ run as ``sam local invoke -e`` runs them
(sam_local_invoke.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from billops_local.aws_environment import create_resources, function_environments
from billops_local.ccbill_sandbox import start_sandbox
from billops_local.ccbill_sandbox.accounts import DEFAULT_ACCOUNTS, with_upgrade_security, DEFAULT_DATALINK_PASSWORD, DEFAULT_DATALINK_USERNAME
from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY, client_environment
from billops_local.template_resources import load_template
from sam_local_invoke import (
    CREDENTIALS_VARIABLE,
    SAMPLE_DAY,
    SAMPLE_SIGNING_KEY,
    SAMPLE_WEBHOOK_TOKEN,
    SIGNING_SECRET_VARIABLE,
    WEBHOOK_TOKEN_VARIABLE,
    SamLocal,
    secrets_named_by,
)


@pytest.fixture
def sam_local(moto_server, aws_credentials, monkeypatch, handler_loader) -> Iterator[SamLocal]:
    requests.post(f"{moto_server.endpoint_url}/moto-api/reset", timeout=10)
    # As the local stack runs (and as deployed with WorkerFixedEgressIp=true): the allowUpgrade samples need the
    # fixed egress IP CCBill whitelists (billops.ccbill.upgrade_security).
    template = load_template(parameter_overrides={"WorkerFixedEgressIp": "true"})
    credentials = json.dumps({"client_accnum": DEFAULT_ACCOUNTS[0].client_accnum,
                              "username": DEFAULT_DATALINK_USERNAME, "password": DEFAULT_DATALINK_PASSWORD})
    secret_values = {
        **{logical_id: SAMPLE_WEBHOOK_TOKEN for logical_id in secrets_named_by(template, WEBHOOK_TOKEN_VARIABLE)},
        **{logical_id: credentials for logical_id in secrets_named_by(template, CREDENTIALS_VARIABLE)},
        **{logical_id: SAMPLE_SIGNING_KEY for logical_id in secrets_named_by(template, SIGNING_SECRET_VARIABLE)},
    }
    created = create_resources(template, moto_server.endpoint_url, secret_values=secret_values)
    # The sandbox's clock starts on the samples' day (its subscription IDs carry the date) and runs on from there.
    started = time.monotonic()
    # The accounts' Security Type as the local stack sets it for a fixed egress IP: Backend HTTPS Post from 127.0.0.1.
    accounts = with_upgrade_security(DEFAULT_ACCOUNTS, "backend_post", ("127.0.0.1/32",))
    sandbox = start_sandbox("127.0.0.1", 0, None, accounts=accounts, upgrade_key=LOCAL_UPGRADE_KEY,
                            clock=lambda: SAMPLE_DAY + timedelta(seconds=time.monotonic() - started))
    try:
        ccbill = client_environment(moto_server.endpoint_url, sandbox, LOCAL_UPGRADE_KEY, accounts)
        ccbill.pop(CREDENTIALS_VARIABLE)  # the template's secret holds the sandbox's login already
        yield SamLocal(template, created, sandbox, handler_loader, monkeypatch, {"BILLOPS_ENV": "local", **ccbill},
                       function_environments(template, created))
    finally:
        sandbox.stop()
