"""Field-level envelope encryption of subscribers' personal data.

Each personal field is encrypted on its own with AES-256-GCM under a data key that KMS generated; the data key's
KMS-encrypted form is stored beside the data (in the item's `subscriber_keys` map, under a short reference that
every field value names). Table access alone therefore reveals nothing: reading a value needs kms:Decrypt on the
key, which only the functions that must read personal data are granted.

Why not the AWS Encryption SDK: an ESDK message carries its own encrypted data key and header (~300 bytes), which
per field would multiply an item's size; and the projector must copy single fields between items (the newest value
of each field wins) without decrypting them. The scheme is the same envelope, with one data key shared by the
fields of a period, and the field name bound in as additional authenticated data so values cannot be swapped
between fields.

Each value is also bound to its record (``record_id``: the delivery's key; format ``v2``): the record ID is part
of the authenticated data and is written in the value (``v2:<data key>:<base64url record ID>:<sealed>``), so the
projector can still copy a delivery's values into the subscription record verbatim, and a reader checks that the
record a value was bound to is the one it reads (``record_ids``: the delivery itself, or the deliveries in a
subscription's history). A value moved to another record no longer decrypts there; editing the record ID written
in it breaks its tag. ``v1`` values (field name only, written before) still decrypt.

Data keys are cached per container, for at most `max_age_seconds` and `max_messages` encryptions (then a new one
is generated): the webhook warm path makes no KMS call. Decrypted data keys are cached the same way.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FORMAT_PREFIX = "v1"  # authenticated data: the field name
BOUND_FORMAT_PREFIX = "v2"  # authenticated data: the field name and the record ID
ENCRYPTION_CONTEXT = {"billops:purpose": "subscriber-pii"}
DEFAULT_MAX_AGE_SECONDS = 300
DEFAULT_MAX_MESSAGES = 10_000
_NONCE_BYTES = 12


class EncryptionUnavailable(RuntimeError):
    """KMS could not give or open a data key (not configured, throttled, denied). Nothing was written in clear."""


class UnreadableCiphertext(ValueError):
    """A stored value is not ours, was tampered with, or its data key is missing."""


@dataclass
class _DataKey:
    reference: str
    plaintext: bytes
    encrypted: bytes
    created_at: float
    uses: int = 0


def _reference(encrypted_key: bytes) -> str:
    return hashlib.sha256(encrypted_key).hexdigest()[:16]


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and (
        (value.startswith(FORMAT_PREFIX + ":") and value.count(":") == 2)
        or (value.startswith(BOUND_FORMAT_PREFIX + ":") and value.count(":") == 3))


def data_key_references(values: Iterable[object]) -> set[str]:
    """The data keys (references into `subscriber_keys`) that encrypted values need; read without any key."""
    return {str(value).split(":", 2)[1] for value in values if is_encrypted(value)}


def bound_record(value: str) -> str | None:
    """The record ID an encrypted value is bound to (None for a ``v1`` value, bound to its field name only)."""
    if not is_encrypted(value) or not value.startswith(BOUND_FORMAT_PREFIX + ":"):
        return None
    encoded = value.split(":", 3)[2]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")


def _associated_data(name: str, record_id: str | None) -> bytes:
    if record_id is None:
        return name.encode("utf-8")
    # Neither part can run into the other: a field name never holds NUL.
    return b"billops-field-v2\0" + name.encode("utf-8") + b"\0" + record_id.encode("utf-8")


class FieldCipher:
    def __init__(
        self,
        key_id: str | None,
        kms_client: Callable[[], Any],
        *,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        clock: Callable[[], float] = time.monotonic,
        decrypted_cache_size: int = 256,
    ) -> None:
        self.key_id = key_id
        self._kms_client = kms_client
        self.max_age_seconds = max_age_seconds
        self.max_messages = max_messages
        self._clock = clock
        self._lock = threading.Lock()
        self._current: _DataKey | None = None
        self._opened: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._opened_limit = decrypted_cache_size
        self.kms_requests = 0  # counted, so tests and benchmarks can prove the warm path makes none

    def __repr__(self) -> str:  # never the key material
        return f"FieldCipher(key_id={self.key_id!r})"

    # --- encryption -----------------------------------------------------------------------------------------

    def encrypt_fields(self, fields: Mapping[str, str], *,
                       record_id: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """({field: ciphertext}, {reference: base64 encrypted data key}) for the fields given; with ``record_id``,
        each value is bound to that record too (``v2``). A blank field stays blank: it holds nothing to hide, and
        keeping it lets a delivery read back exactly as CCBill sent it."""
        blank = {name: "" for name, value in fields.items() if value in (None, "")}
        present = {name: value for name, value in fields.items() if value not in (None, "")}
        if not present:
            return blank, {}
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        data_key = self._data_key_for(len(present))
        cipher = AESGCM(data_key.plaintext)
        if record_id is None:
            head = f"{FORMAT_PREFIX}:{data_key.reference}"
        else:
            encoded = base64.urlsafe_b64encode(record_id.encode("utf-8")).decode().rstrip("=")
            head = f"{BOUND_FORMAT_PREFIX}:{data_key.reference}:{encoded}"
        encrypted: dict[str, str] = {}
        for name, value in present.items():
            nonce = os.urandom(_NONCE_BYTES)
            sealed = cipher.encrypt(nonce, str(value).encode("utf-8"), _associated_data(name, record_id))
            encrypted[name] = f"{head}:{base64.b64encode(nonce + sealed).decode()}"
        return {**blank, **encrypted}, {data_key.reference: base64.b64encode(data_key.encrypted).decode()}

    def _data_key_for(self, messages: int) -> _DataKey:
        with self._lock:
            now = self._clock()
            current = self._current
            if (current is None or now - current.created_at >= self.max_age_seconds
                    or current.uses + messages > self.max_messages):
                current = self._generate(now)
                self._current = current
            current.uses += messages
            return current

    def _generate(self, now: float) -> _DataKey:
        if not self.key_id:
            raise EncryptionUnavailable("No KMS key is configured for personal data (BILLOPS_PII_KEY_ID).")
        try:
            answer = self._kms_client().generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=ENCRYPTION_CONTEXT
            )
        except Exception as error:  # botocore's errors, whatever they are, mean "no key now"
            raise EncryptionUnavailable(f"KMS did not generate a data key: {type(error).__name__}") from None
        finally:
            self.kms_requests += 1
        encrypted = answer["CiphertextBlob"]
        data_key = _DataKey(_reference(encrypted), answer["Plaintext"], encrypted, now)
        self._remember(data_key.reference, data_key.plaintext, now)
        return data_key

    # --- decryption -----------------------------------------------------------------------------------------

    def decrypt_fields(self, values: Mapping[str, str], keys: Mapping[str, str], *,
                       record_ids: Iterable[str] | None = None) -> dict[str, str]:
        """The clear values of encrypted fields (values not in our format are returned as they are).

        ``record_ids``: the records whose values may be read here (the delivery's key; the deliveries in a
        subscription's history). A value bound to another record is refused; ``v1`` values (bound to their field
        only) are read as before. Without ``record_ids`` the binding is authenticated but not compared."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        allowed = None if record_ids is None else {str(record_id) for record_id in record_ids}
        clear: dict[str, str] = {}
        for name, value in values.items():
            if not is_encrypted(value):
                clear[name] = value
                continue
            record_id = bound_record(value)
            if record_id is not None and allowed is not None and record_id not in allowed:
                raise UnreadableCiphertext(f"Field {name} belongs to another record (moved).")
            reference = value.split(":", 2)[1]
            payload = value.rsplit(":", 1)[1]
            if reference not in keys:
                raise UnreadableCiphertext(f"The data key of field {name} is missing.")
            plaintext_key = self._open(reference, keys[reference])
            raw = base64.b64decode(payload)
            try:
                clear[name] = AESGCM(plaintext_key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                                           _associated_data(name, record_id)).decode("utf-8")
            except InvalidTag:
                raise UnreadableCiphertext(f"Field {name} does not authenticate (tampered or moved).") from None
        return clear

    def _open(self, reference: str, encrypted_b64: str) -> bytes:
        now = self._clock()
        with self._lock:
            cached = self._opened.get(reference)
            if cached and now - cached[1] < self.max_age_seconds:
                self._opened.move_to_end(reference)
                return cached[0]
        encrypted = base64.b64decode(encrypted_b64)
        if _reference(encrypted) != reference:
            raise UnreadableCiphertext("A data key does not match its reference.")
        try:
            answer = self._kms_client().decrypt(CiphertextBlob=encrypted, EncryptionContext=ENCRYPTION_CONTEXT)
        except Exception as error:
            raise EncryptionUnavailable(f"KMS did not open a data key: {type(error).__name__}") from None
        finally:
            self.kms_requests += 1
        with self._lock:
            self._remember(reference, answer["Plaintext"], now)
        return answer["Plaintext"]

    def _remember(self, reference: str, plaintext: bytes, now: float) -> None:
        self._opened[reference] = (plaintext, now)
        self._opened.move_to_end(reference)
        while len(self._opened) > self._opened_limit:
            self._opened.popitem(last=False)


_default: FieldCipher | None = None
_default_lock = threading.Lock()


def default_cipher() -> FieldCipher:
    """The container's cipher, from BILLOPS_PII_KEY_ID, BILLOPS_PII_DATA_KEY_MAX_AGE and _MAX_MESSAGES."""
    global _default
    with _default_lock:
        if _default is None:
            def kms() -> Any:
                from billops.storage.aws_clients import aws_client

                return aws_client("kms")

            from billops.settings.privacy import PersonalDataSettings

            _default = cipher_for(PersonalDataSettings.from_env(), kms)
        return _default


def cipher_for(settings: Any, kms: Callable[[], Any]) -> FieldCipher:
    """The cipher ``settings`` (billops.settings.privacy.PersonalDataSettings) describe."""
    return FieldCipher(settings.pii_key_id, kms, max_age_seconds=settings.pii_data_key_max_age,
                       max_messages=settings.pii_data_key_max_messages)


def reset_default_cipher() -> None:
    global _default
    _default = None
