"""Envelope encryption of personal fields: round trip, tamper evidence, key caching bounds (KMS calls counted)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from billops.privacy.field_encryption import (
    EncryptionUnavailable,
    FieldCipher,
    UnreadableCiphertext,
    is_encrypted,
)

PERSONAL = {"email": "jane.doe@example.com", "firstName": "Jane", "ipAddress": "203.0.113.9", "username": ""}


@pytest.fixture
def kms(aws_credentials):
    with mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        key_id = client.create_key(Description="pii")["KeyMetadata"]["KeyId"]
        yield client, key_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_round_trip_keeps_nothing_in_clear(kms):
    client, key_id = kms
    cipher = FieldCipher(key_id, lambda: client)
    encrypted, keys = cipher.encrypt_fields(PERSONAL)
    assert set(encrypted) == {"email", "firstName", "ipAddress", "username"}
    assert encrypted["username"] == ""  # a blank value stays blank (nothing to hide) and reads back as sent
    assert all(is_encrypted(value) for name, value in encrypted.items() if PERSONAL[name])
    assert "jane" not in repr((encrypted, keys)).lower()
    other_container = FieldCipher(key_id, lambda: client)
    assert other_container.decrypt_fields(encrypted, keys) == PERSONAL


def test_a_value_moved_to_another_field_or_altered_does_not_decrypt(kms):
    client, key_id = kms
    cipher = FieldCipher(key_id, lambda: client)
    encrypted, keys = cipher.encrypt_fields(PERSONAL)
    with pytest.raises(UnreadableCiphertext):
        cipher.decrypt_fields({"firstName": encrypted["email"]}, keys)
    tampered = encrypted["email"][:-4] + ("AAAA" if not encrypted["email"].endswith("AAAA") else "BBBB")
    with pytest.raises(UnreadableCiphertext):
        cipher.decrypt_fields({"email": tampered}, keys)
    with pytest.raises(UnreadableCiphertext):
        cipher.decrypt_fields({"email": encrypted["email"]}, {})


def test_the_warm_path_makes_no_kms_call_until_the_key_ages_or_is_used_up(kms):
    client, key_id = kms
    clock = Clock()
    cipher = FieldCipher(key_id, lambda: client, max_age_seconds=300, max_messages=9, clock=clock)
    cipher.encrypt_fields(PERSONAL)  # 3 fields
    assert cipher.kms_requests == 1
    first_keys = None
    for _ in range(2):
        _, first_keys = cipher.encrypt_fields(PERSONAL)
    assert cipher.kms_requests == 1  # 9 messages under one data key
    _, next_keys = cipher.encrypt_fields(PERSONAL)
    assert cipher.kms_requests == 2 and next_keys != first_keys  # the message count ended that key
    clock.now += 301
    cipher.encrypt_fields({"email": "x@example.com"})
    assert cipher.kms_requests == 3  # so did its age


def test_decryption_reuses_opened_keys(kms):
    client, key_id = kms
    writer = FieldCipher(key_id, lambda: client)
    reader = FieldCipher(key_id, lambda: client)
    encrypted, keys = writer.encrypt_fields(PERSONAL)
    for _ in range(5):
        reader.decrypt_fields(encrypted, keys)
    assert reader.kms_requests == 1


def test_no_key_configured_fails_closed():
    cipher = FieldCipher(None, lambda: None)
    with pytest.raises(EncryptionUnavailable):
        cipher.encrypt_fields({"email": "a@b.c"})
    assert cipher.encrypt_fields({}) == ({}, {})


def test_kms_errors_become_encryption_unavailable(kms):
    client, _ = kms
    cipher = FieldCipher("arn:aws:kms:us-east-1:123456789012:key/does-not-exist", lambda: client)
    with pytest.raises(EncryptionUnavailable):
        cipher.encrypt_fields({"email": "a@b.c"})


def test_a_value_bound_to_its_record_is_refused_in_another_record(kms):
    """Security review: a ciphertext moved to another record (same field) must not decrypt there."""
    client, key_id = kms
    cipher = FieldCipher(key_id, lambda: client)
    mine, keys = cipher.encrypt_fields({"email": "jane.doe@example.com"}, record_id="NewSaleSuccess#txn#0001")
    theirs, their_keys = cipher.encrypt_fields({"email": "eve@example.com"}, record_id="NewSaleSuccess#txn#0002")
    assert "jane" not in mine["email"] and mine["email"].startswith("v2:")
    assert cipher.decrypt_fields(mine, keys, record_ids={"NewSaleSuccess#txn#0001"}) == {
        "email": "jane.doe@example.com"}
    # Copied into the other record (with its data key): refused there.
    with pytest.raises(UnreadableCiphertext, match="another record"):
        cipher.decrypt_fields(mine, {**their_keys, **keys}, record_ids={"NewSaleSuccess#txn#0002"})
    # Rewriting the record ID written in the value breaks its tag.
    head, reference, _, payload = mine["email"].split(":")
    forged = ":".join([head, reference, theirs["email"].split(":")[2], payload])
    with pytest.raises(UnreadableCiphertext, match="does not authenticate"):
        cipher.decrypt_fields({"email": forged}, keys, record_ids={"NewSaleSuccess#txn#0002"})


def test_a_subscription_reads_the_values_its_deliveries_bound(kms):
    from billops.privacy.subscriber_view import record_ids, revealed_subscriber

    client, key_id = kms
    cipher = FieldCipher(key_id, lambda: client)
    sealed, keys = cipher.encrypt_fields({"email": "jane.doe@example.com"}, record_id="NewSaleSuccess#txn#0001")
    record = {"subscription_id": "0126", "history": [{"key": "NewSaleSuccess#txn#0001"}],
              "subscriber": sealed, "subscriber_keys": keys}
    assert record_ids(record) == {"NewSaleSuccess#txn#0001"}
    assert record_ids({"pk": "quarantine#ab", "history": [{"key": "x"}]}) == {"quarantine#ab"}
    import billops.privacy.field_encryption as field_encryption

    field_encryption._default = cipher
    try:
        assert revealed_subscriber(record) == {"email": "jane.doe@example.com"}
        with pytest.raises(UnreadableCiphertext):
            revealed_subscriber({**record, "history": [{"key": "Renewal#txn#0009"}]})
    finally:
        field_encryption.reset_default_cipher()


def test_values_written_before_record_binding_still_decrypt(kms):
    """v1 values (field name only) written by the previous receiver stay readable, wherever they are read."""
    client, key_id = kms
    cipher = FieldCipher(key_id, lambda: client)
    old, keys = cipher.encrypt_fields({"email": "jane.doe@example.com"})
    assert old["email"].startswith("v1:") and is_encrypted(old["email"])
    assert cipher.decrypt_fields(old, keys, record_ids={"anything"}) == {"email": "jane.doe@example.com"}
    with pytest.raises(UnreadableCiphertext):  # still bound to its field name
        cipher.decrypt_fields({"firstName": old["email"]}, keys)
