"""Delivery keys (issue 11): keyed hashes that reveal nothing, reversals told apart, older keys still found."""

from __future__ import annotations

import hashlib

from billops.webhooks.delivery_decoding import canonical_payload
from billops.webhooks.delivery_keys import DeliveryKeys, legacy_delivery_key, same_reversal
from billops_local.webhook_samples import sample_fields

KEYS = DeliveryKeys(lambda: b"k" * 64)
OTHER_KEYS = DeliveryKeys(lambda: b"another key")


def _clean(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if name != "password"}


def test_a_delivery_with_a_transaction_needs_no_secret():
    def no_secret() -> bytes:
        raise AssertionError("the secret was fetched")

    fields = sample_fields("RenewalSuccess")
    plan = DeliveryKeys(no_secret).plan("RenewalSuccess", fields, fields["transactionId"], fields)
    assert plan.key == f"RenewalSuccess#txn#{fields['transactionId']}" and plan.digest is None
    assert not plan.is_reversal and plan.legacy_key is None


def test_without_a_transaction_the_key_is_a_keyed_hash_not_the_old_unsalted_one():
    fields = _clean(sample_fields("Cancellation"))
    plan = KEYS.plan("Cancellation", fields, None, fields)
    unsalted = hashlib.sha256(canonical_payload(fields).encode()).hexdigest()
    assert plan.key.startswith("Cancellation#hmac#") and unsalted not in plan.key
    assert plan.key != OTHER_KEYS.plan("Cancellation", fields, None, fields).key  # keyed: a guess cannot confirm it
    assert plan.legacy_key == f"Cancellation#sha256#{unsalted}" == legacy_delivery_key("Cancellation", fields)
    assert KEYS.plan("Cancellation", dict(reversed(fields.items())), None, fields).key == plan.key  # field order


def test_a_reversal_keeps_the_transaction_key_and_has_its_own_for_a_second_one():
    first = sample_fields("Refund", amount="5.00")
    second = {**first, "amount": "7.50"}
    one = KEYS.plan("Refund", first, first["transactionId"], first)
    two = KEYS.plan("Refund", second, second["transactionId"], second)
    assert one.key == two.key == f"Refund#txn#{first['transactionId']}"
    assert one.is_reversal and one.alternate != two.alternate and one.digest != two.digest
    assert one.alternate == f"{one.key}#hmac#{one.digest}"


def test_a_stored_reversal_is_the_same_delivery_only_when_its_payload_is():
    refund = sample_fields("Refund", amount="5.00")
    plan = KEYS.plan("Refund", refund, refund["transactionId"], refund)
    assert same_reversal({"payload_digest": plan.digest}, plan.digest, "Refund", refund)
    assert not same_reversal({"payload_digest": "0" * 64}, plan.digest, "Refund", refund)
    # stored before payload digests: compared on the documented fields as received
    legacy = {"fields": dict(refund)}
    assert same_reversal(legacy, plan.digest, "Refund", refund)
    assert same_reversal(legacy, plan.digest, "Refund", {**refund, "X-note": "not documented"})
    assert not same_reversal(legacy, plan.digest, "Refund", {**refund, "amount": "7.50"})
    assert not same_reversal(legacy, plan.digest, "Refund", {**refund, "timestamp": "2026-02-01 10:00:00"})


def test_quarantine_keys_are_keyed_too():
    raw, query = b"subscriptionId=&x=1", {"eventType": "Cancellation"}
    key = KEYS.quarantine_key(raw, query)
    assert key.startswith("quarantine#") and hashlib.sha256(raw).hexdigest() not in key
    assert key == KEYS.quarantine_key(raw, dict(query)) != OTHER_KEYS.quarantine_key(raw, query)
