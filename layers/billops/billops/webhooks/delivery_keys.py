"""What makes two deliveries "the same": the key under which a delivery is stored exactly once.

CCBill gives every money movement its own transactionId (sale, rebill, refund, void…), so the event type plus the
transactionId identifies a delivery whatever CCBill re-sends. Events with no transaction (Cancellation, Expiration,
BillingDateChange…) are identified by a hash of their canonical payload, as OpenRails does (ccbill-facts.md 1.7).
The event type is part of the key because a NewSaleSuccess may share its transactionId with the subscription.
"""

from __future__ import annotations

import hashlib

from billops.webhooks.delivery_decoding import canonical_payload


def delivery_key(event_type: str, fields: dict[str, str]) -> str:
    transaction_id = (fields.get("transactionId") or "").strip()
    if transaction_id:
        return f"{event_type}#txn#{transaction_id}"
    digest = hashlib.sha256(canonical_payload(fields).encode("utf-8")).hexdigest()
    return f"{event_type}#sha256#{digest}"


def quarantine_key(raw_body: bytes, query_without_token: dict[str, str]) -> str:
    """Identical malformed re-deliveries land on one quarantine record."""
    digest = hashlib.sha256()
    digest.update(raw_body)
    digest.update(canonical_payload(dict(sorted(query_without_token.items()))).encode("utf-8"))
    return f"quarantine#{digest.hexdigest()}"
