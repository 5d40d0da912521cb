"""Signed, expiring tokens of consumer upgrade links (``/upgrade/<token>``).

The token is the link's only credential: whoever holds it may see the offer and go on to CCBill's upgrade form, so
it must be impossible to forge or to alter (another subscription, another upgrade, a later expiry) and it must stop
working at its ``exp``. Format::

    <payload>.<signature>

    payload   = base64url(compact JSON), no padding:
                {"v": 1, "s": "<subscription id>", "m": "e" | "a", "u": "<catalogue key>", "x": <exp, unix s>,
                 "n": "<nonce>", "e": "<enc>"}
                (m: "e" = enc, "a" = allow_upgrade; "u" is left out when no upgrade was named and one is configured;
                 "e" only for an enc link made for the subscriber's username: the page, which may not read
                 personal data, cannot compute that enc itself - it is ciphertext made for CCBill)
    signature = base64url(HMAC-SHA256(key, "billops-upgrade-link.v1." + payload)), no padding

About 160 URL-safe characters. The payload is readable by anyone (it is signed, not encrypted) and holds nothing
personal: CCBill's subscription ID, the upgrade's catalogue key, the expiry and a nonce - random, or derived from the
request's Idempotency-Key - which also names the link's allowUpgrade operation (upgrade_links.py). The nonce need
not be secret: only the signature makes a token valid.

The key is the SecretString of a Secrets Manager secret (``BILLOPS_UPGRADE_LINK_SECRET_ARN``; the template
generates ``UpgradeLinkSigningSecret``), read through Powertools Parameters and cached per container
(``BILLOPS_UPGRADE_LINK_SECRET_MAX_AGE``, 300 s). Tokens are signed with the secret's current version and accepted
under the current or the previous one (``AWSPREVIOUS``), so rotating the secret does not break the links already
sent. Verification: length and shape first, then the signature in constant time (``hmac.compare_digest``) over
every accepted key, and only then is the payload decoded and its expiry read - nothing in a forged token is looked
at. Each failure is a typed error: ``LinkTokenMalformed``, ``LinkTokenTampered``, ``LinkTokenExpired``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

VERSION = 1
SIGNING_CONTEXT = b"billops-upgrade-link.v1."
"""Prefixed to the signed payload, so a MAC made with the same secret for anything else can never pass as a token."""
MAX_TOKEN_LENGTH = 512
"""Longer input is refused before any hashing (a real token is about 160 characters)."""
MIN_KEY_BYTES = 32
DEFAULT_SECRET_MAX_AGE = 300

METHOD_CODES = {"enc": "e", "allow_upgrade": "a"}
METHODS_BY_CODE = {code: method for method, code in METHOD_CODES.items()}

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_SUBSCRIPTION_ID = re.compile(r"^\d{1,20}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_ENC = re.compile(r"^[A-Za-z0-9+/]{8,128}={0,2}$")
_SIGNATURE_LENGTH = 43  # base64url of 32 bytes, unpadded


class LinkTokenError(Exception):
    """The token cannot be used. ``reason`` is one of malformed, tampered, expired."""

    reason = "invalid"


class LinkTokenMalformed(LinkTokenError):
    """Not a token of ours at all (wrong shape, length, encoding or content)."""

    reason = "malformed"


class LinkTokenTampered(LinkTokenError):
    """Shaped like a token, but no accepted key signed it: altered, forged, or signed with a retired key."""

    reason = "tampered"


class LinkTokenExpired(LinkTokenError):
    """Genuine, but past its expiry."""

    reason = "expired"

    def __init__(self, claims: UpgradeLinkClaims) -> None:
        super().__init__(f"the upgrade link expired at {claims.expires_at.isoformat()}")
        self.claims = claims


class SigningKeyUnavailable(RuntimeError):
    """The signing secret could not be read, or is too short to sign with."""


@dataclass(frozen=True)
class UpgradeLinkClaims:
    """What a token says: which subscription, how (enc / allow_upgrade), which upgrade, until when."""

    subscription_id: str
    method: str
    expires_at: datetime
    nonce: str
    upgrade: str | None = None
    enc: str | None = None

    def __post_init__(self) -> None:
        if not _SUBSCRIPTION_ID.match(self.subscription_id):
            raise ValueError("subscription_id must be CCBill's numeric subscription ID")
        if self.method not in METHOD_CODES:
            raise ValueError(f"method must be one of {', '.join(METHOD_CODES)}")
        if not _NONCE.match(self.nonce):
            raise ValueError("nonce must be 8 to 64 base64url characters")
        if self.upgrade is not None and not (0 < len(self.upgrade) <= 64):
            raise ValueError("upgrade must be a catalogue key of 1 to 64 characters")
        if self.enc is not None and not _ENC.match(self.enc):
            raise ValueError("enc must be a Base64 enc value")
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must carry a time zone")

    @property
    def expires_at_epoch(self) -> int:
        return int(self.expires_at.timestamp())

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"v": VERSION, "s": self.subscription_id, "m": METHOD_CODES[self.method],
                                   "x": self.expires_at_epoch, "n": self.nonce}
        if self.upgrade is not None:
            payload["u"] = self.upgrade
        if self.enc is not None:
            payload["e"] = self.enc
        return payload

    @classmethod
    def from_payload(cls, payload: Any) -> UpgradeLinkClaims:
        if not isinstance(payload, dict) or payload.get("v") != VERSION:
            raise LinkTokenMalformed("unknown token version")
        allowed = {"v", "s", "m", "x", "n", "u", "e"}
        if set(payload) - allowed:
            raise LinkTokenMalformed("unexpected fields in the token")
        expiry, method = payload.get("x"), METHODS_BY_CODE.get(payload.get("m"))  # type: ignore[arg-type]
        upgrade, enc = payload.get("u"), payload.get("e")
        if (not isinstance(expiry, int) or isinstance(expiry, bool) or method is None
                or not isinstance(payload.get("s"), str) or not isinstance(payload.get("n"), str)
                or (upgrade is not None and not isinstance(upgrade, str))
                or (enc is not None and not isinstance(enc, str))):
            raise LinkTokenMalformed("the token's fields have the wrong types")
        try:
            return cls(subscription_id=payload["s"], method=method,
                       expires_at=datetime.fromtimestamp(expiry, UTC), nonce=payload["n"], upgrade=upgrade, enc=enc)
        except (ValueError, OverflowError, OSError) as exc:
            raise LinkTokenMalformed(str(exc)) from None


def new_nonce() -> str:
    """96 random bits, base64url: makes every link (and its allowUpgrade operation) distinct."""
    return _b64encode(secrets.token_bytes(12))


def nonce_for_request(idempotency_key: str) -> str:
    """96 bits of the hash of the request's Idempotency-Key, base64url: a repeat of the request (after a failed
    answer, or racing the first) makes a link with the same nonce, naming the same allowUpgrade operation."""
    return _b64encode(hashlib.sha256(f"upgrade_link#{idempotency_key}".encode()).digest()[:12])


def sign(claims: UpgradeLinkClaims, key: bytes) -> str:
    """The token for ``claims`` under ``key``."""
    _check_key(key)
    payload = _b64encode(json.dumps(claims.to_payload(), separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{payload}.{_b64encode(_mac(key, payload))}"


def verify(token: str, keys: Sequence[bytes], *, now: datetime | None = None) -> UpgradeLinkClaims:
    """The claims of a genuine, unexpired token; raises a LinkTokenError subclass otherwise.

    ``keys``: every key a token may have been signed with (current first). The signature is compared with each in
    constant time, all of them always, so the time taken does not tell which key (or how much of a MAC) matched.
    """
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise LinkTokenMalformed("not an upgrade link token")
    payload, separator, signature = token.partition(".")
    if (not separator or not _B64URL.match(payload) or not _B64URL.match(signature)
            or len(signature) != _SIGNATURE_LENGTH):
        raise LinkTokenMalformed("not an upgrade link token")
    try:
        presented = _b64decode(signature)
    except ValueError:
        raise LinkTokenMalformed("not an upgrade link token") from None
    if not keys:
        raise SigningKeyUnavailable("no signing key to verify with")
    matched = False
    for key in keys:
        _check_key(key)
        matched |= hmac.compare_digest(_mac(key, payload), presented)
    if not matched:
        raise LinkTokenTampered("the upgrade link's signature does not match")
    try:
        decoded = json.loads(_b64decode(payload).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise LinkTokenMalformed("the token's payload is not JSON") from None
    claims = UpgradeLinkClaims.from_payload(decoded)
    moment = now or datetime.now(UTC)
    if moment.timestamp() >= claims.expires_at_epoch:
        raise LinkTokenExpired(claims)
    return claims


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, SIGNING_CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        raise SigningKeyUnavailable(f"the upgrade link signing key must have at least {MIN_KEY_BYTES} bytes")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


# --- the key, from Secrets Manager ---------------------------------------------------------------------------------


class SecretSigningKeys:
    """The signing keys held in a Secrets Manager secret: its current version (signs and verifies) and its previous
    one (verifies only, so links sent before a rotation keep working until they expire).

    Both are cached for ``max_age`` seconds (the previous one's absence too: a flood of forged tokens must not turn
    into a flood of GetSecretValue calls).
    """

    def __init__(self, secret_id: str, *, max_age: int = DEFAULT_SECRET_MAX_AGE,
                 provider_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not secret_id:
            raise SigningKeyUnavailable("BILLOPS_UPGRADE_LINK_SECRET_ARN is not set")
        self.secret_id = secret_id
        self.max_age = max_age
        self._provider_factory = provider_factory
        self._clock = clock
        self._current: Any = None
        self._previous_provider: Any = None
        self._previous: tuple[float, bytes | None] | None = None
        self._lock = threading.Lock()

    def signing_key(self) -> bytes:
        """The key new tokens are signed with (the secret's AWSCURRENT version)."""
        from aws_lambda_powertools.utilities import parameters

        with self._lock:
            if self._current is None:
                self._current = self._new_provider()
        try:
            value = self._current.get(self.secret_id, max_age=self.max_age)
        except parameters.exceptions.GetParameterError:
            raise SigningKeyUnavailable("cannot read the upgrade link signing secret") from None
        return _key_bytes(value)

    def verification_keys(self) -> list[bytes]:
        """Every key a live token may carry: the current one, then the previous one if the secret has one."""
        keys = [self.signing_key()]
        previous = self._previous_key()
        if previous is not None and previous != keys[0]:
            keys.append(previous)
        return keys

    def _previous_key(self) -> bytes | None:
        from aws_lambda_powertools.utilities import parameters

        now = self._clock()
        cached = self._previous
        if cached is not None and now - cached[0] < self.max_age:
            return cached[1]
        with self._lock:
            if self._previous_provider is None:
                self._previous_provider = self._new_provider()
        try:
            value = self._previous_provider.get(self.secret_id, max_age=self.max_age, force_fetch=True,
                                                VersionStage="AWSPREVIOUS")
            key: bytes | None = _key_bytes(value)
        except (parameters.exceptions.GetParameterError, SigningKeyUnavailable):
            key = None  # never rotated (no AWSPREVIOUS), or unreadable: only the current key counts
        self._previous = (now, key)
        return key

    def _new_provider(self) -> Any:
        if self._provider_factory is not None:
            return self._provider_factory()
        from billops.storage.aws_clients import secrets_provider

        # Our own provider, not Powertools' process-wide default: its cache holds nothing but this secret.
        return secrets_provider(shared=False)

    def __repr__(self) -> str:
        return "SecretSigningKeys(<secret>)"


class StaticSigningKeys:
    """Fixed keys (tests, scripts): the first signs, all verify."""

    def __init__(self, *keys: bytes) -> None:
        for key in keys:
            _check_key(key)
        if not keys:
            raise SigningKeyUnavailable("give at least one key")
        self._keys = list(keys)

    def signing_key(self) -> bytes:
        return self._keys[0]

    def verification_keys(self) -> list[bytes]:
        return list(self._keys)

    def __repr__(self) -> str:
        return f"StaticSigningKeys(<{len(self._keys)} keys>)"


def _key_bytes(value: Any) -> bytes:
    key = value if isinstance(value, bytes) else str(value or "").encode("utf-8")
    _check_key(key)
    return key
