"""POST /sandbox/config: the version per event type, the format, the variation and the seed of the webhooks the
sandbox posts, as a merchant sets them in CCBill's Admin Portal; what the receiver then gets."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import requests


def _body_fields(delivery) -> dict[str, str]:
    if delivery.headers["Content-Type"] == "application/json":
        return {name: str(value) for name, value in json.loads(delivery.body).items()}
    return dict(parse_qsl(delivery.body.decode("ascii"), keep_blank_values=True, encoding="iso-8859-1"))


def test_config_is_read_and_changed_over_http(sandbox):
    config = requests.get(f"{sandbox.url}/sandbox/config", timeout=5).json()
    assert (config["format"], config["variation"], config["versions"]["NewSaleSuccess"]) == ("json", "off", "newest")
    assert config["available_versions"]["NewSaleSuccess"] == list(range(1, 9))
    changed = requests.post(f"{sandbox.url}/sandbox/config", json={
        "format": "urlencoded", "versions": {"NewSaleSuccess": 2, "RenewalSuccess": "any"}, "seed": 99}, timeout=5)
    assert changed.status_code == 200
    body = changed.json()
    assert (body["format"], body["seed"], body["versions"]["NewSaleSuccess"]) == ("urlencoded", 99, 2)
    assert requests.get(f"{sandbox.url}/sandbox/config", timeout=5).json() == body


def test_a_bad_config_is_refused_and_names_the_parameter(sandbox):
    for change, param in (({"format": "xml"}, "format"), ({"versions": {"NewSaleSuccess": 12}},
                                                           "versions.NewSaleSuccess"),
                          ({"versions": {"UpSaleSuccess": 1}}, "versions.UpSaleSuccess"), ({"nope": 1}, "nope")):
        answer = requests.post(f"{sandbox.url}/sandbox/config", json=change, timeout=5)
        assert answer.status_code == 400, change
        assert answer.json()["param"] == param
    assert requests.get(f"{sandbox.url}/sandbox/config", timeout=5).json()["format"] == "json"  # unchanged


def test_the_configured_version_and_format_are_what_the_receiver_gets(sandbox, receiver, new_subscription):
    sandbox.configure_webhooks(format="urlencoded", versions={"NewSaleSuccess": 1, "RenewalSuccess": 2})
    sub = new_subscription(email="v1@example.com")
    sandbox.sandbox.subscription_operation(sub, "renew", {})
    assert sandbox.wait_for_webhooks()
    sale, renewal = receiver.deliveries
    assert sale.headers["Content-Type"] == renewal.headers["Content-Type"] == "application/x-www-form-urlencoded"
    sale_fields = _body_fields(sale)
    assert sale_fields["subscriptionId"] == sub and sale_fields["email"] == "v1@example.com"
    # NewSaleSuccess v1: no paymentAccount (v2), expDate/last4 (v4), bin (v5), threeDSecure (v6), cardSubType (v8)
    assert not {"paymentAccount", "expDate", "last4", "bin", "threeDSecure", "cardSubType"} & set(sale_fields)
    renewal_fields = _body_fields(renewal)
    assert "renewalDate" in renewal_fields and "expDate" not in renewal_fields  # v2 has renewalDate, v3 expDate
    records = sandbox.webhooks()
    assert [(r["version"], r["body_format"]) for r in records] == [(1, "urlencoded"), (2, "urlencoded")]


def test_varied_deliveries_replay_from_their_seed(sandbox_factory, receiver, new_subscription):
    from datetime import UTC, datetime

    from billops_local.ccbill_sandbox.webhook_config import WebhookConfig

    bodies = []
    for _ in range(2):
        handle = sandbox_factory(webhook_config=WebhookConfig(seed=31337, format="any", variation="varied",
                                                              versions={"*": "any"}),
                                 clock=lambda: datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
        for n in range(8):
            new_subscription(handle, username=f"replay{n}", email=f"replay{n}@example.com")
        assert handle.wait_for_webhooks()
        records = handle.webhooks()
        assert {r["state"] for r in records} == {"delivered"}
        bodies.append([(r["version"], r["body_format"], r["variations"]) for r in records])
        handle.stop()
    assert bodies[0] == bodies[1]  # same seed, same calls: the same deliveries
    assert {fmt for _, fmt, _ in bodies[0]} == {"json", "urlencoded"}
    assert any(variations for _, _, variations in bodies[0])
    first_run = [d.body for d in receiver.deliveries[:8]]
    assert first_run == [d.body for d in receiver.deliveries[8:]]


def test_pass_through_fields_of_the_form_come_back_on_the_sale(sandbox, receiver):
    created = requests.post(f"{sandbox.url}/sandbox/subscriptions", json={
        "initial_price": "9.95", "initial_period": 30, "passthrough": {"X-user_id": "1234", "X-plan": "gold"}},
        timeout=5)
    assert created.status_code == 201, created.text
    sandbox.sandbox.subscription_operation(created.json()["subscription_id"], "expire", {})
    assert sandbox.wait_for_webhooks()
    sale, expiration = receiver.deliveries
    assert {k: v for k, v in _body_fields(sale).items() if k.startswith("X-")} == {"X-user_id": "1234",
                                                                                  "X-plan": "gold"}
    assert not any(name.startswith("X-") for name in _body_fields(expiration))
    refused = requests.post(f"{sandbox.url}/sandbox/subscriptions", json={
        "initial_price": "9.95", "initial_period": 30, "passthrough": {"user_id": "1"}}, timeout=5)
    assert refused.status_code == 400 and refused.json()["param"] == "passthrough"
