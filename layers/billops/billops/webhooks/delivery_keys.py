"""What makes two deliveries "the same": the key under which a delivery is stored exactly once.

- A delivery with a transactionId: ``<eventType>#txn#<transactionId>``. CCBill gives every money movement its own
  transactionId (sale, rebill...); the event type is part of the key because a NewSaleSuccess may share its
  transactionId with the subscription.
- A reversal (Refund, Chargeback, Void, Return) may come more than once for one transaction (partial refunds, a
  refund then a chargeback of the same sale) and CCBill may reuse the reversed transaction's ID: the first one
  takes ``<eventType>#txn#<transactionId>`` and keeps the keyed hash of its whole payload (``payload_digest``); one
  that finds that key taken by a *different* payload (another amount, time...) takes
  ``<eventType>#txn#<transactionId>#hmac#<digest>``. An identical re-send finds its own payload: a duplicate.
- A delivery without a (readable) transactionId (Cancellation, Expiration, BillingDateChange...):
  ``<eventType>#hmac#<HMAC-SHA256 of the canonical payload>``, the same for the URL-encoded and JSON forms.
- Quarantined bodies: ``quarantine#<HMAC of the raw body and the query>``.

Keys reveal nothing. The hashes are keyed (HMAC, key in Secrets Manager: delivery_key_secret.py), so a key shown to
an API key without the ``pii`` scope, or written in a log line, cannot be used to confirm a guessed email or name.

Keys of deliveries stored before this scheme stay readable (docs/architecture.md, "Delivery keys"):
``<eventType>#sha256#<unsalted SHA-256>`` (no transactionId) and a reversal's ``<eventType>#txn#<transactionId>``.
``legacy_delivery_key`` computes the old key so the receiver can find such a delivery when CCBill re-sends it
(``BILLOPS_CHECK_LEGACY_DELIVERY_KEYS``), and a stored reversal without a ``payload_digest`` is compared field by
field (``same_reversal``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from billops.webhooks.delivery_decoding import canonical_payload
from billops.webhooks.event_types import MONEY_REVERSAL_TYPES, EventType, parse_event_type

REVERSAL_TYPE_NAMES = frozenset(event_type.value for event_type in MONEY_REVERSAL_TYPES)


@dataclass(frozen=True)
class KeyPlan:
    """Where a delivery is stored, and what else to look at to know whether it is a re-send."""

    key: str
    digest: str | None = None
    """HMAC of the whole payload (stored as ``payload_digest`` on reversals)."""
    alternate: str | None = None
    """A reversal's key when ``key`` is taken by another payload of the same transaction."""
    legacy_key: str | None = None
    """The pre-HMAC key of a hash-keyed delivery: a delivery stored under it is this one (a re-send)."""

    @property
    def is_reversal(self) -> bool:
        return self.alternate is not None


def legacy_delivery_key(event_type: str, fields: Mapping[str, str]) -> str:
    """The key the receiver gave a delivery before keyed hashes (kept only to find those deliveries again)."""
    transaction_id = (fields.get("transactionId") or "").strip()
    if transaction_id:
        return f"{event_type}#txn#{transaction_id}"
    digest = hashlib.sha256(canonical_payload(dict(fields)).encode("utf-8")).hexdigest()
    return f"{event_type}#sha256#{digest}"


class DeliveryKeys:
    """Keys for deliveries, from the HMAC key (fetched on first need: a delivery with a transactionId needs none)."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret

    def _mac(self, *parts: bytes) -> str:
        mac = hmac.new(self._secret(), digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two part lists hash alike
            mac.update(part)
        return mac.hexdigest()

    def digest(self, fields: Mapping[str, str]) -> str:
        return self._mac(canonical_payload(dict(fields)).encode("utf-8"))

    def plan(self, event_type: str, fields: Mapping[str, str], transaction_id: str | None,
             legacy_fields: Mapping[str, str]) -> KeyPlan:
        """The key plan of a delivery. ``fields`` as stored (restored), ``transaction_id`` the readable one (or
        None), ``legacy_fields`` as the receiver hashed them before (decoded, scrubbed, before any restoration)."""
        if transaction_id:
            base = f"{event_type}#txn#{transaction_id}"
            if event_type not in REVERSAL_TYPE_NAMES:
                return KeyPlan(base)
            digest = self.digest(fields)
            return KeyPlan(base, digest, alternate=f"{base}#hmac#{digest}")
        digest = self.digest(fields)
        return KeyPlan(f"{event_type}#hmac#{digest}", digest, legacy_key=legacy_delivery_key(event_type, legacy_fields))

    def quarantine_key(self, raw_body: bytes, query_without_token: Mapping[str, str]) -> str:
        """Identical malformed re-deliveries land on one quarantine record."""
        query = canonical_payload(dict(sorted(query_without_token.items()))).encode("utf-8")
        return f"quarantine#{self._mac(raw_body, query)}"


def same_reversal(stored: Mapping[str, Any], digest: str | None, event_type: str,
                  legacy_fields: Mapping[str, str]) -> bool:
    """Whether the reversal stored under a key is the delivery now received (a re-send) or another one.

    A reversal stored by this version carries its ``payload_digest``. One stored before it has none: it is the same
    delivery when every documented field of its event type reads the same (the stored ``fields`` are the values as
    received then; ``legacy_fields`` are this delivery's values as received now).
    """
    if stored.get("payload_digest"):
        return hmac.compare_digest(str(stored["payload_digest"]), digest or "")
    from billops.privacy.subscriber_data import PERSONAL_FIELDS
    from billops.webhooks.event_versions import fields_of

    known = parse_event_type(event_type)
    names = fields_of(known) if known is not None else frozenset(legacy_fields)
    stored_fields = stored.get("fields") or {}
    return all(str(stored_fields.get(name) or "") == str(legacy_fields.get(name) or "")
               for name in names - PERSONAL_FIELDS - {"password"})


__all__ = ["DeliveryKeys", "EventType", "KeyPlan", "legacy_delivery_key", "same_reversal"]
