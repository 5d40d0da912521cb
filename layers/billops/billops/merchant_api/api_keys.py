"""API keys of the merchant API: their format, how they are stored, and creating, listing and revoking them.

A key is ``bo_<environment>_<32 base62 characters>`` (``bo_prod_7Qm…``): the prefix tells a person at a glance which
deployment a leaked key belongs to; the random part carries 32 x log2(62) = 190 bits. The key is shown once, when it
is created; the keys table (``ApiKeysTable``, key ``key_hash``) keeps only its SHA-256, the key's ID (``key_…``,
safe to log and to show), a name, its scopes and its last four characters (so a person can tell keys apart).

Why a plain SHA-256 and not bcrypt/scrypt/Argon2: slow, salted hashes exist to protect *low-entropy* secrets
(passwords people choose) against offline guessing. A key drawn from 190 random bits cannot be guessed whether its
hash takes a nanosecond or a second to compute, so a slow hash would add nothing but latency (~100 ms per request
on a Lambda) - and an unsalted, deterministic hash lets the hash itself be the table's key: one GetItem finds the
key, with no per-key salt to look up first. A leaked table reveals no usable key.

Scopes: ``read`` (every GET), ``write`` (every POST), ``pii`` (subscribers' personal data in clear,
``GET /v1/subscriptions/{id}?include=customer``).

The same table holds the failed-authentication counters (failed_auth_limits.py) under ``throttle#…`` keys, with a
TTL (``expires_at``). They have no ``key_id``, so they are neither in the ``by_key_id`` index nor in ``list_keys``.
Every read and write of the table goes through billops.storage.api_keys_table (``ApiKeysTable``, re-exported here).

The CLI (billops_cli) calls ``create_key``, ``list_keys`` and ``revoke_key`` with the operator's AWS credentials.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billops.storage.api_keys_table import ApiKeysTable

READ = "read"
WRITE = "write"
PII = "pii"
SCOPES = (READ, WRITE, PII)
DEFAULT_SCOPES = (READ, WRITE)

THROTTLE_PREFIX = "throttle#"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 32
MAX_SECRET_LENGTH = 200
"""Longer Authorization values are refused unhashed (nothing legitimate is that long)."""

_ENVIRONMENT = re.compile(r"^[a-z0-9]{1,16}$")
_KEY_ID = re.compile(r"^key_[A-Za-z0-9_-]{1,64}$")


class ApiKeyError(ValueError):
    """A key request that cannot be carried out (bad name or scopes, an unknown key ID)."""


class UnknownApiKey(ApiKeyError):
    pass


def _random(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def generate_secret(environment: str) -> str:
    environment = (environment or "").strip().lower()
    if not _ENVIRONMENT.match(environment):
        raise ApiKeyError(f"environment {environment!r} must be 1-16 lower-case letters or digits")
    return f"bo_{environment}_{_random(RANDOM_LENGTH)}"


def hash_secret(secret: str) -> str:
    """The stored form of a key: SHA-256, hex (see the module docstring for why a fast hash is right here)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key_id() -> str:
    return "key_" + _random(16)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = []
    for scope in scopes:
        scope = str(scope).strip().lower()
        if scope not in SCOPES:
            raise ApiKeyError(f"unknown scope {scope!r} (scopes: {', '.join(SCOPES)})")
        if scope not in chosen:
            chosen.append(scope)
    if not chosen:
        raise ApiKeyError(f"give at least one scope ({', '.join(SCOPES)})")
    return [scope for scope in SCOPES if scope in chosen]


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100 or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ApiKeyError("the key's name must be 1-100 printable characters")
    return name


@dataclass(frozen=True)
class ApiKey:
    """A key as the API sees it after authentication (never the secret, never the hash)."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def _table(table: ApiKeysTable | str) -> ApiKeysTable:
    return table if isinstance(table, ApiKeysTable) else ApiKeysTable(str(table))


_STACK_TABLE = re.compile(r"^billops-([a-z0-9]{1,16})-")


def key_environment(table: ApiKeysTable) -> str:
    """The environment a new key is labelled with: BILLOPS_ENV when set (the functions, the local stack), else the
    one in the table's name (the template's tables are named ``<stack>-ApiKeysTable-…`` and the stacks
    ``billops-dev`` / ``billops-prod``, samconfig.toml), else ``local``. The CLI may pass ``environment=``."""
    from billops.settings.webhooks import DeploymentSettings

    explicit = DeploymentSettings.from_env().environment
    if explicit:
        return explicit
    match = _STACK_TABLE.match(table.table_name)
    return match.group(1) if match else "local"


def register_key(table: ApiKeysTable | str, secret: str, name: str, scopes: Iterable[str] = DEFAULT_SCOPES, *,
                 key_id: str | None = None, now: str | None = None) -> str:
    """Store ``secret`` (hashed) as a key; returns its key ID. Registering the same secret again replaces it (the
    local stack seeds its documented key this way at every start)."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        raise ApiKeyError(f"a key must have 1-{MAX_SECRET_LENGTH} characters")
    key_id = key_id or new_key_id()
    if not _KEY_ID.match(key_id):
        raise ApiKeyError("a key ID is key_ followed by letters, digits, '_' or '-'")
    item = {"key_hash": hash_secret(secret), "key_id": key_id, "name": _check_name(name),
            "scopes": check_scopes(scopes), "hint": secret[-4:], "created_at": now or _now()}
    _table(table).put(item, only_new=False)
    return key_id


def create_key(table: ApiKeysTable | str, name: str, scopes: Iterable[str] = DEFAULT_SCOPES, *,
               environment: str | None = None) -> tuple[str, str]:
    """A new key: ``(key_id, secret)``. The secret is never stored - show it to the operator once."""
    table = _table(table)
    item_scopes = check_scopes(scopes)
    name = _check_name(name)
    environment = environment or key_environment(table)
    for _ in range(3):
        secret = generate_secret(environment)
        key_id = new_key_id()
        item = {"key_hash": hash_secret(secret), "key_id": key_id, "name": name, "scopes": item_scopes,
                "hint": secret[-4:], "created_at": _now()}
        if table.put(item, only_new=True):
            return key_id, secret
    raise RuntimeError("could not store a new key")  # three 190-bit collisions: not in this universe


def describe(item: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of a key: never its hash, never its secret."""
    return {
        "key_id": item["key_id"],
        "name": item.get("name"),
        "scopes": list(item.get("scopes") or []),
        "hint": item.get("hint"),
        "created_at": item.get("created_at"),
        "revoked_at": item.get("revoked_at"),
        "status": "revoked" if item.get("revoked_at") else "active",
    }


def list_keys(table: ApiKeysTable | str) -> list[dict[str, Any]]:
    """Every key (active and revoked), oldest first, as ``describe`` shows them."""
    return sorted((describe(item) for item in _table(table).key_items()),
                  key=lambda key: (str(key.get("created_at") or ""), key["key_id"]))


def revoke_key(table: ApiKeysTable | str, key_id: str) -> dict[str, Any]:
    """Revoke a key by its ID (idempotent). Containers that read it less than BILLOPS_API_KEY_CACHE_SECONDS ago keep
    accepting it until then. Raises UnknownApiKey."""
    table = _table(table)
    if not _KEY_ID.match(key_id or ""):
        raise UnknownApiKey(f"no key {key_id!r}")
    key_hash = table.hash_of(key_id)
    revoked = table.mark_revoked(key_hash, _now()) if key_hash else None
    if revoked is None:
        raise UnknownApiKey(f"no key {key_id!r}")
    return describe(revoked)


class KeyStore:
    """Finds the key behind a presented secret, with a per-container cache (no AWS call for a warm key)."""

    def __init__(self, table: ApiKeysTable, cache_seconds: float = 60.0, *, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self.clock = clock
        self.lookups = 0  # DynamoDB reads, counted for tests
        self._cache: OrderedDict[str, tuple[ApiKey | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, secret: str) -> ApiKey | None:
        """The active key ``secret`` is, or None. Raises StorageUnavailable when the table cannot be read."""
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        key_hash = hash_secret(secret)
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key_hash)
            if cached is not None and now - cached[1] < self.cache_seconds:
                self._cache.move_to_end(key_hash)
                return cached[0]
        item = self.table.get(key_hash)
        self.lookups += 1
        key = None
        if item and item.get("key_id") and not item.get("revoked_at"):
            key = ApiKey(str(item["key_id"]), str(item.get("name") or ""), frozenset(item.get("scopes") or ()))
        with self._lock:
            self._cache[key_hash] = (key, now)
            self._cache.move_to_end(key_hash)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return key

    def known(self, secret: str | None) -> ApiKey | None:
        """The key ``secret`` is when this container looked it up recently and found it active; never reads."""
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        key_hash = hash_secret(secret)
        with self._lock:
            cached = self._cache.get(key_hash)
        if cached is not None and self.clock() - cached[1] < self.cache_seconds:
            return cached[0]
        return None

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
