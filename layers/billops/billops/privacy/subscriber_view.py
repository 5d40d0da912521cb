"""How a stored record's personal data is shown: masked by default, revealed only to those allowed to read it.

Records keep personal fields in their `subscriber` map, encrypted field by field (privacy/field_encryption.py), with
the encrypted data keys in `subscriber_keys`; a quarantined delivery's raw body is encrypted the same way. Masking
needs no key at all, so the default view never touches KMS; revealing needs kms:Decrypt with the subscriber-pii
encryption context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "***"


def masked_subscriber(record: Mapping[str, Any]) -> dict[str, str]:
    """Which personal fields exist, with their values hidden."""
    return {name: MASK for name, value in (record.get("subscriber") or {}).items() if value not in (None, "")}


def revealed_subscriber(record: Mapping[str, Any]) -> dict[str, str]:
    """The personal fields in clear. Needs kms:Decrypt on the personal-data key when they are encrypted."""
    from billops.privacy.field_encryption import default_cipher, is_encrypted

    subscriber = {name: str(value) for name, value in (record.get("subscriber") or {}).items()
                  if value not in (None, "")}
    if not any(is_encrypted(value) for value in subscriber.values()):
        return subscriber
    return default_cipher().decrypt_fields(subscriber, record.get("subscriber_keys") or {},
                                           record_ids=record_ids(record))


def record_ids(record: Mapping[str, Any]) -> set[str]:
    """The records whose encrypted values may be read in this one: a delivery's own key; for a subscription, the
    deliveries in its history (the projector copies their values, still bound to them)."""
    if record.get("pk"):
        keys = {str(record["pk"])}
    else:
        keys = {str(entry["key"]) for entry in record.get("history") or [] if isinstance(entry, Mapping)
                and entry.get("key")}
    # A second reversal of a transaction is stored under `<key>#hmac#<digest>` but sealed, before the receiver knew
    # which key it would get, under <key> (billops.webhooks.intake).
    return keys | {key.split("#hmac#", 1)[0] for key in keys if "#txn#" in key and "#hmac#" in key}


def quarantined_raw_body(item: Mapping[str, Any]) -> str:
    """A quarantined delivery's (redacted) raw body in clear. Needs kms:Decrypt like revealed_subscriber."""
    from billops.privacy.field_encryption import default_cipher, is_encrypted

    body = str(item.get("raw_body") or "")
    if not is_encrypted(body):
        return body
    return default_cipher().decrypt_fields({"raw_body": body}, item.get("subscriber_keys") or {},
                                           record_ids=record_ids(item))["raw_body"]
