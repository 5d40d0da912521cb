"""The conformance corpus (tests/conformance/): every public CCBill delivery we found, posted to the local stack's
HTTP API as CCBill would. Each one is stored (never quarantined), every field reads back equal (personal fields
decrypted with the local KMS key; the consumer's password never kept), and the same delivery in the other format is
a duplicate of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
import requests

from billops.privacy.field_encryption import FieldCipher
from billops.privacy.subscriber_data import PERSONAL_FIELDS
from billops.storage.events_table import from_dynamodb
from billops_local.webhook_samples import encode_body

CORPUS = Path(__file__).resolve().parents[1] / "conformance" / "deliveries"
EVENTS_TABLE = "billops-local-EventsTable"
PROVENANCE_KEYS = {"event_type", "body_file", "content_type", "query", "source", "repository", "path", "commit",
                   "format", "converted"}
NOT_FIELDS = {"eventType", "eventGroupType"}  # what the delivery is, kept as event_type / event_group_type


def _deliveries() -> list[Path]:
    return sorted(CORPUS.glob("*.provenance.json"))


def _sent_fields(raw: bytes, content_type: str) -> dict[str, str]:
    """The body's fields read independently of the receiver (json / parse_qsl)."""
    if content_type == "application/json":
        return {name: str(value) for name, value in json.loads(raw).items() if value is not None}
    return dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True))


def test_the_corpus_is_there_and_every_delivery_has_its_provenance():
    provenances = _deliveries()
    assert len(provenances) >= 30
    bodies = {path.name for path in CORPUS.iterdir() if not path.name.endswith(".provenance.json")}
    assert bodies == {json.loads(path.read_text())["body_file"] for path in provenances}
    for path in provenances:
        meta = json.loads(path.read_text())
        assert set(meta) >= PROVENANCE_KEYS, path.name
        assert meta["source"] and isinstance(meta["converted"], list), path.name


@pytest.mark.parametrize("provenance", _deliveries(), ids=lambda path: path.name.removesuffix(".provenance.json"))
def test_every_public_delivery_is_stored_and_reads_back_equal(local_stack, log_leak_scanner, provenance):
    meta = json.loads(provenance.read_text())
    raw = (CORPUS / meta["body_file"]).read_bytes()
    sent = _sent_fields(raw, meta["content_type"])
    log_leak_scanner.add_personal_fields(sent, PERSONAL_FIELDS | {"password"}, provenance.name)
    query = {"token": local_stack.webhook_token, **meta["query"]}
    answer = requests.post(f"{local_stack.api_url}/webhooks/ccbill?{urlencode(query)}", data=raw,
                           headers={"Content-Type": meta["content_type"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    key = answer.json()["id"]
    stored = local_stack.boto3_client("dynamodb").get_item(TableName=EVENTS_TABLE, Key={"pk": {"S": key}},
                                                           ConsistentRead=True)["Item"]
    item = from_dynamodb(stored)
    assert item["record_type"] == "delivery" and item["event_type"] == meta["event_type"] and item["known_type"]
    cipher = FieldCipher(None, lambda: local_stack.boto3_client("kms"))
    clear = cipher.decrypt_fields(item.get("subscriber") or {}, item.get("subscriber_keys") or {})
    public = item["fields"]
    assert not (set(public) & PERSONAL_FIELDS), "a personal field in clear"
    assert "password" not in public and "password" not in clear
    for name, value in sent.items():
        if name in NOT_FIELDS or name == "password":
            continue
        read_back = public[name] if name in public else clear.get(name)
        assert read_back == value, (name, read_back, value)
    assert not item.get("field_warnings"), item.get("field_warnings")

    # The same delivery in the other format (CCBill's admin lets the merchant switch) is the same delivery.
    other = "urlencoded" if meta["content_type"] == "application/json" else "json"
    body, content_type = encode_body(sent, other)
    again = requests.post(f"{local_stack.api_url}/webhooks/ccbill?{urlencode(query)}", data=body,
                          headers={"Content-Type": content_type}, timeout=10)
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True, "id": key}
