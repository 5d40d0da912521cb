"""Repeated authentication failures from one source: 401 up to the limit, then 429 until the window ends."""

from __future__ import annotations

from typing import Any

from billops.merchant_api.failed_auth_limits import FailedAuthLimits
from billops.storage.api_keys_table import ApiKeysTable


class CountingClient:
    def __init__(self, fail: bool = False) -> None:
        self.counts: dict[str, int] = {}
        self.expiries: dict[str, int] = {}
        self.fail = fail
        self.requests = 0

    def update_item(self, **kwargs: Any) -> dict:
        from botocore.exceptions import EndpointConnectionError

        self.requests += 1
        if self.fail:
            raise EndpointConnectionError(endpoint_url="http://dynamodb")
        key = kwargs["Key"]["key_hash"]["S"]
        assert key.startswith("throttle#"), "only throttle items are ever written"
        assert kwargs["UpdateExpression"].startswith("ADD failures :one")
        self.counts[key] = self.counts.get(key, 0) + 1
        self.expiries.setdefault(key, int(kwargs["ExpressionAttributeValues"][":expires"]["N"]))
        return {"Attributes": {"failures": {"N": str(self.counts[key])}}}


def test_the_limit_blocks_a_source_until_its_window_ends_and_no_longer_costs_writes():
    client = CountingClient()
    now = [1_000_000.0]
    limits = FailedAuthLimits(ApiKeysTable("keys", client), limit=3, window_seconds=300, clock=lambda: now[0])
    verdicts = [limits.record_failure("203.0.113.9") for _ in range(3)]
    assert [v.blocked for v in verdicts] == [False, False, False]
    blocked = limits.record_failure("203.0.113.9")
    assert blocked.blocked and 1 <= blocked.retry_after_seconds <= 300
    assert client.requests == 4
    for _ in range(50):
        assert limits.record_failure("203.0.113.9").blocked
    assert client.requests == 4, "a source known to be blocked is answered from memory"
    assert not limits.record_failure("203.0.113.10").blocked, "other sources are not affected"
    (key, expiry), *_ = client.expiries.items()
    start = int(now[0]) - int(now[0]) % 300
    assert key == f"throttle#203.0.113.9#{start}"
    assert expiry == start + 300 + 60, "the counter outlives its window a little, then TTL removes it"
    now[0] += 301
    assert not limits.record_failure("203.0.113.9").blocked, "a new window starts afresh"


def test_counting_failures_is_a_brake_not_a_gate():
    client = CountingClient(fail=True)
    limits = FailedAuthLimits(ApiKeysTable("keys", client), limit=1, window_seconds=60)
    for _ in range(5):
        assert not limits.record_failure("203.0.113.9").blocked


class KeysTable:
    """The keys table behind KeyStore: one valid key; every read counted."""

    def __init__(self, valid_hash: str) -> None:
        self.valid_hash = valid_hash
        self.reads = 0

    def get(self, key_hash: str) -> dict | None:
        self.reads += 1
        return {"key_id": "key_ok", "name": "ok", "scopes": ["read"]} if key_hash == self.valid_hash else None


def test_a_blocked_source_costs_no_read_per_distinct_bad_key():
    """Security review: the block was checked after the key's lookup, so each new bad key from a blocked source
    still cost a DynamoDB read. The block comes first now; a key the container knows valid still passes."""
    import pytest

    from billops.merchant_api.api_authentication import Authenticator
    from billops.merchant_api.api_failures import MerchantApiError
    from billops.merchant_api.api_keys import KeyStore, hash_secret

    valid = "bo_test_" + "v" * 32
    table = KeysTable(hash_secret(valid))
    keys = KeyStore(table)
    client = CountingClient()
    authenticator = Authenticator(keys, FailedAuthLimits(ApiKeysTable("keys", client), limit=3, window_seconds=300))

    def basic(secret: str) -> str:
        import base64

        return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()

    assert authenticator.authenticate(basic(valid), "203.0.113.9").key_id == "key_ok"  # now known here
    statuses = []
    for number in range(200):
        with pytest.raises(MerchantApiError) as refused:
            authenticator.authenticate(basic(f"bo_test_{number:032d}"), "203.0.113.9")
        statuses.append(refused.value.status)
    assert statuses[:3] == [401] * 3 and set(statuses[3:]) == {429}
    assert table.reads == 1 + 4, "after the block, no distinct bad key was looked up"
    assert client.requests == 4, "nor counted"
    assert authenticator.authenticate(basic(valid), "203.0.113.9").key_id == "key_ok"
    assert table.reads == 5
    # Another source is not affected, and its bad keys are read (and counted) as before.
    with pytest.raises(MerchantApiError) as other:
        authenticator.authenticate(basic("bo_test_" + "x" * 32), "203.0.113.10")
    assert other.value.status == 401 and table.reads == 6
