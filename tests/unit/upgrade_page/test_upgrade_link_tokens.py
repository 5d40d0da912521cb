"""Signed, expiring upgrade link tokens: sign, verify, tamper, expire, rotate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from billops.upgrade_page import link_tokens
from billops.upgrade_page.link_tokens import (
    LinkTokenExpired,
    LinkTokenMalformed,
    LinkTokenTampered,
    SecretSigningKeys,
    SigningKeyUnavailable,
    StaticSigningKeys,
    UpgradeLinkClaims,
    new_nonce,
    sign,
    verify,
)
from upgrade_page_unit_fixtures import SIGNING_SECRET

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def claims(**overrides) -> UpgradeLinkClaims:
    values = {"subscription_id": "0126001234000000017", "method": "enc", "expires_at": NOW + timedelta(hours=72),
              "nonce": "AAAAAAAAAAAAAAAA", "upgrade": "gold"}
    values.update(overrides)
    return UpgradeLinkClaims(**values)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _signed(payload_text: bytes, key: bytes = KEY) -> str:
    payload = _b64(payload_text)
    mac = hmac.new(key, b"billops-upgrade-link.v1." + payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def test_a_token_round_trips_and_is_compact_and_url_safe():
    token = sign(claims(), KEY)
    assert verify(token, [KEY], now=NOW) == claims()
    assert len(token) < 200
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    assert _payload(token) == {"v": 1, "s": "0126001234000000017", "m": "e", "u": "gold",
                               "x": int((NOW + timedelta(hours=72)).timestamp()), "n": "AAAAAAAAAAAAAAAA"}


def test_the_payload_holds_nothing_personal_and_allow_upgrade_is_coded():
    token = sign(claims(method="allow_upgrade", upgrade=None), KEY)
    assert set(_payload(token)) == {"v", "s", "m", "x", "n"}
    assert _payload(token)["m"] == "a"
    assert verify(token, [KEY], now=NOW).method == "allow_upgrade"


@pytest.mark.parametrize("field,value", [("s", "0126001234000000018"), ("u", "platinum"), ("m", "a"),
                                         ("x", 4102444800)])
def test_changing_any_claim_breaks_the_signature(field, value):
    token = sign(claims(), KEY)
    payload = _payload(token)
    payload[field] = value
    forged = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()) + "." + token.split(".")[1]
    with pytest.raises(LinkTokenTampered):
        verify(forged, [KEY], now=NOW)


def test_a_flipped_character_or_another_key_is_tampering():
    token = sign(claims(), KEY)
    payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (f"{payload}.{flipped}", f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{signature}"):
        with pytest.raises((LinkTokenTampered, LinkTokenMalformed)):
            verify(bad, [KEY], now=NOW)
    with pytest.raises(LinkTokenTampered):
        verify(sign(claims(), OTHER_KEY), [KEY], now=NOW)


def test_a_mac_made_without_the_context_prefix_is_refused():
    payload = _b64(json.dumps(claims().to_payload()).encode())
    bare = hmac.new(KEY, payload.encode(), hashlib.sha256).digest()
    with pytest.raises(LinkTokenTampered):
        verify(f"{payload}.{_b64(bare)}", [KEY], now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b", ".", "x" * 600, "eyJ2IjoxfQ.!!!", "a.b.c",
                                   "eyJ2IjoxfQ." + "A" * 42, "eyJ2IjoxfQ." + "A" * 44, None, 17,
                                   "eyJ2Ijox fQ." + "A" * 43])
def test_malformed_tokens(token):
    with pytest.raises(LinkTokenMalformed):
        verify(token, [KEY], now=NOW)


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"v":2}', b'{"v":1,"s":"12","m":"e","x":"9","n":"AAAAAAAA"}',
                                     b'{"v":1,"s":"abc","m":"e","x":9999999999,"n":"AAAAAAAA"}',
                                     b'{"v":1,"s":"12","m":"z","x":9999999999,"n":"AAAAAAAA"}',
                                     b'{"v":1,"s":"12","m":"e","x":9999999999,"n":"AAAAAAAA","extra":1}'])
def test_a_genuinely_signed_payload_that_is_not_ours_is_malformed(payload):
    with pytest.raises(LinkTokenMalformed):
        verify(_signed(payload), [KEY], now=NOW)


def test_expiry_is_checked_after_the_signature_and_is_exclusive():
    token = sign(claims(), KEY)
    expires = NOW + timedelta(hours=72)
    assert verify(token, [KEY], now=expires - timedelta(seconds=1))
    with pytest.raises(LinkTokenExpired) as expired:
        verify(token, [KEY], now=expires)
    assert expired.value.claims == claims()
    # A forged token is never reported as expired: its claims are not read.
    forged = sign(claims(expires_at=NOW - timedelta(days=1)), OTHER_KEY)
    with pytest.raises(LinkTokenTampered):
        verify(forged, [KEY], now=NOW)


def test_every_key_is_compared_in_constant_time(monkeypatch):
    compared = []
    original = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(link_tokens.hmac, "compare_digest", spy)
    token = sign(claims(), KEY)
    verify(token, [KEY, OTHER_KEY], now=NOW)
    assert len(compared) == 2  # the matching key came first, and the second was compared anyway


def test_a_token_signed_with_the_previous_key_still_verifies():
    token = sign(claims(), OTHER_KEY)
    keys = StaticSigningKeys(KEY, OTHER_KEY)
    assert verify(token, keys.verification_keys(), now=NOW) == claims()
    assert keys.signing_key() == KEY


def test_short_keys_are_refused():
    with pytest.raises(SigningKeyUnavailable):
        sign(claims(), b"short")
    with pytest.raises(SigningKeyUnavailable):
        StaticSigningKeys(b"short")
    with pytest.raises(SigningKeyUnavailable):
        verify(sign(claims(), KEY), [], now=NOW)


def test_claims_are_validated():
    with pytest.raises(ValueError):
        claims(subscription_id="12ab")
    with pytest.raises(ValueError):
        claims(method="charge")
    with pytest.raises(ValueError):
        claims(expires_at=datetime(2026, 3, 1))
    with pytest.raises(ValueError):
        claims(nonce="short")
    assert len({new_nonce() for _ in range(100)}) == 100


def test_keys_from_secrets_manager_current_and_previous(upgrade_env):
    keys = SecretSigningKeys(upgrade_env.secret_arn, max_age=0)
    assert keys.signing_key() == SIGNING_SECRET.encode()
    assert keys.verification_keys() == [SIGNING_SECRET.encode()]  # never rotated: no AWSPREVIOUS
    old_token = sign(claims(), keys.signing_key())
    boto3.client("secretsmanager").put_secret_value(SecretId=upgrade_env.secret_arn, SecretString="n" * 64)
    assert keys.signing_key() == b"n" * 64
    assert verify(old_token, keys.verification_keys(), now=NOW) == claims()
    assert verify(sign(claims(), keys.signing_key()), keys.verification_keys(), now=NOW) == claims()


def test_a_missing_or_short_secret_is_unavailable(upgrade_env):
    with pytest.raises(SigningKeyUnavailable):
        SecretSigningKeys("arn:aws:secretsmanager:us-east-1:123456789012:secret:nope").signing_key()
    boto3.client("secretsmanager").put_secret_value(SecretId=upgrade_env.secret_arn, SecretString="short")
    with pytest.raises(SigningKeyUnavailable):
        SecretSigningKeys(upgrade_env.secret_arn).signing_key()
    assert upgrade_env.secret_arn not in repr(SecretSigningKeys(upgrade_env.secret_arn))
