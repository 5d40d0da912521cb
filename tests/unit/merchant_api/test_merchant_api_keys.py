"""API keys: their format and hash, reading the Authorization header, the per-container key cache, scopes."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_authentication import Authenticator, presented_key, require_scope
from billops.merchant_api.api_keys import (
    BASE62,
    ApiKey,
    ApiKeyError,
    KeyStore,
    check_scopes,
    describe,
    generate_secret,
    hash_secret,
)
from billops.merchant_api.failed_auth_limits import FailureVerdict


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_key_names_its_environment_and_carries_190_random_bits():
    secret = generate_secret("prod")
    assert re.fullmatch(r"bo_prod_[0-9A-Za-z]{32}", secret)
    assert len(BASE62) == 62
    assert len({generate_secret("dev") for _ in range(50)}) == 50
    with pytest.raises(ApiKeyError):
        generate_secret("Prod Env")


def test_keys_are_stored_as_their_sha256_only():
    secret = "bo_dev_abc"
    assert hash_secret(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert hash_secret(secret) == hash_secret(secret) != hash_secret(secret + "x")
    shown = describe({"key_hash": hash_secret(secret), "key_id": "key_1", "name": "n", "scopes": ["read"],
                      "hint": "_abc", "created_at": "2026-01-01T00:00:00Z"})
    assert "key_hash" not in shown and secret not in str(shown)
    assert shown["status"] == "active"


@pytest.mark.parametrize(("header", "expected"), [
    (basic("bo_dev_key"), "bo_dev_key"),                      # ChargeBee: the key as user name, empty password
    (basic("bo_dev_key", "ignored"), "bo_dev_key"),
    (basic("", "bo_dev_key"), "bo_dev_key"),                  # a client that put it in the password field
    ("Bearer bo_dev_key", "bo_dev_key"),                      # Stripe's style
    ("bearer   bo_dev_key  ", "bo_dev_key"),
    ("Basic !!!not-base64", None),
    ("Basic " + base64.b64encode(b":").decode(), None),
    ("Digest abc", None),
    ("", None),
    (None, None),
    ("Basic " + "A" * 2000, None),
])
def test_the_key_is_read_from_basic_or_bearer_authorization(header, expected):
    assert presented_key(header) == expected


def test_scopes_are_checked_and_ordered():
    assert check_scopes(["pii", "read", "read"]) == ["read", "pii"]
    with pytest.raises(ApiKeyError):
        check_scopes([])
    with pytest.raises(ApiKeyError):
        check_scopes(["admin"])
    key = ApiKey("key_1", "n", frozenset({"read"}))
    require_scope(key, "read")
    with pytest.raises(failures.MerchantApiError) as refused:
        require_scope(key, "write")
    assert refused.value.status == 403 and refused.value.api_error_code == "api_authorization_failed"


class FakeTable:
    def __init__(self, items: dict[str, dict]) -> None:
        self.items = items
        self.reads = 0

    def get(self, key_hash: str):
        self.reads += 1
        return self.items.get(key_hash)


def test_a_warm_key_costs_no_read_and_a_revoked_key_is_refused():
    now = [0.0]
    table = FakeTable({
        hash_secret("good"): {"key_hash": hash_secret("good"), "key_id": "key_good", "name": "g",
                              "scopes": ["read", "write"]},
        hash_secret("gone"): {"key_hash": hash_secret("gone"), "key_id": "key_gone", "name": "r",
                              "scopes": ["read"], "revoked_at": "2026-01-01T00:00:00Z"},
    })
    store = KeyStore(table, cache_seconds=60, clock=lambda: now[0])
    key = store.find("good")
    assert key == ApiKey("key_good", "g", frozenset({"read", "write"}))
    for _ in range(100):
        assert store.find("good") == key
    assert table.reads == 1, "a cached key is not read again"
    assert store.find("gone") is None
    assert store.find("unknown") is None and store.find("unknown") is None
    assert table.reads == 3, "unknown keys are cached too (a flood of one bad key costs one read a minute)"
    now[0] = 61
    store.find("good")
    assert table.reads == 4, "the cache expires: a revocation takes effect within cache_seconds"
    assert store.find("x" * 500) is None and table.reads == 4, "absurd keys are refused without a read"


class FakeLimits:
    def __init__(self, verdict: FailureVerdict) -> None:
        self.verdict = verdict
        self.sources: list[str] = []

    def record_failure(self, source: str) -> FailureVerdict:
        self.sources.append(source)
        return self.verdict

    def blocked_here(self, source: str) -> FailureVerdict | None:
        return None  # what this container remembers is FailedAuthLimits' own business (its tests)


def test_authentication_answers_401_and_429_in_chargebees_model():
    table = FakeTable({hash_secret("good"): {"key_id": "key_good", "name": "g", "scopes": ["read"]}})
    limits = FakeLimits(FailureVerdict(False))
    authenticator = Authenticator(KeyStore(table), limits)
    assert authenticator.authenticate(basic("good"), "198.51.100.7").key_id == "key_good"
    assert limits.sources == []
    for header in (None, basic("bad"), "Token good"):
        with pytest.raises(failures.MerchantApiError) as refused:
            authenticator.authenticate(header, "198.51.100.7")
        body = refused.value.body()
        assert refused.value.status == 401
        assert body["api_error_code"] == "api_authentication_failed" and body["type"] is None
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic")
    assert limits.sources == ["198.51.100.7"] * 3
    limits.verdict = FailureVerdict(True, 42)
    with pytest.raises(failures.MerchantApiError) as throttled:
        authenticator.authenticate(basic("bad"), "198.51.100.7")
    assert throttled.value.status == 429
    assert throttled.value.body()["api_error_code"] == "api_request_limit_exceeded"
    assert throttled.value.headers == {"Retry-After": "42"}
    # A valid key is never refused for its source's failures (keys cannot be guessed; see failed_auth_limits).
    assert authenticator.authenticate(basic("good"), "198.51.100.7").key_id == "key_good"


def test_a_new_key_is_labelled_with_its_environment(monkeypatch):
    from billops.merchant_api.api_keys import ApiKeysTable, key_environment

    monkeypatch.delenv("BILLOPS_ENV", raising=False)
    assert key_environment(ApiKeysTable("billops-prod-ApiKeysTable-1X2Y3Z")) == "prod"
    assert key_environment(ApiKeysTable("billops-dev-ApiKeysTable-1X2Y3Z")) == "dev"
    assert key_environment(ApiKeysTable("my-keys")) == "local"
    monkeypatch.setenv("BILLOPS_ENV", "dev")
    assert key_environment(ApiKeysTable("billops-prod-ApiKeysTable-1X2Y3Z")) == "dev"
