"""The operation message contract: what is accepted, what is refused (naming the field), and the schema file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from billops.operations.operation_messages import (
    DEFAULT_SCHEMA_PATH,
    MessageInvalid,
    canonical_json,
    message_schema,
    parse_message,
    schema_text,
)

ROOT = Path(__file__).resolve().parents[3]
SUB = "0126326702000000001"


def _message(kind: str, **extra) -> dict:
    return {"operation_type": kind, "subscription_id": SUB, "idempotency_key": "key-1", **extra}


VALID = [
    _message("refund"),
    _message("refund", parameters={"amount": "5.00"}),
    _message("refund", parameters={"amount": "5.00", "transaction_id": "0126326702000000007"}),
    _message("void"),
    _message("void", parameters={"transaction_id": "0126326702000000007"}),
    _message("discount", parameters={"discount_amount": "2.00"}),
    _message("discount", parameters={"new_recurring_price": "17.95"}, client_subacc="0000"),
    _message("cancel"),
    _message("cancel", parameters={}, suppress_domain_events=True),
    _message("extend", parameters={"days": 30}),
    _message("refresh", run_at="2026-03-01T09:00:00+01:00"),
    _message("upgrade", parameters={"method": "charge_by_previous_transaction", "upgrade": "gold"}),
    _message("upgrade", parameters={"method": "charge_by_previous_transaction", "new_client_accnum": "900100",
                                    "new_client_subacc": "0001", "initial_price": "9.95", "initial_period": 30}),
    _message("upgrade", parameters={"method": "charge_by_previous_transaction", "new_client_accnum": "900100",
                                    "new_client_subacc": "1", "initial_price": "24.95", "initial_period": 30,
                                    "recurring_price": "24.95", "recurring_period": 30, "rebills": 99,
                                    "currency_code": "EUR", "special_offer": True}),
    _message("upgrade", parameters={"method": "allow_upgrade"}),
    _message("upgrade", parameters={"method": "allow_upgrade", "upgrade": "gold"}),
]


@pytest.mark.parametrize("raw", VALID, ids=lambda raw: f"{raw['operation_type']}-{len(json.dumps(raw))}")
def test_valid_messages_are_accepted(raw):
    message = parse_message(json.dumps(raw))
    assert message.operation_type == raw["operation_type"]
    assert parse_message(canonical_json(message)) == message  # the canonical form reads back the same


INVALID = [
    ("no type", {"subscription_id": SUB, "idempotency_key": "k"}, "operation_type"),
    ("unknown type", _message("chargeback"), "operation_type"),
    ("refund amount as a number", _message("refund", parameters={"amount": 5.0}), "parameters.amount"),
    ("refund amount with three decimals", _message("refund", parameters={"amount": "5.001"}), "parameters.amount"),
    ("void with an amount", _message("void", parameters={"amount": "5.00"}), "parameters.amount"),
    ("refund of a transaction with letters", _message("refund", parameters={"transaction_id": "01x"}),
     "parameters.transaction_id"),
    ("letters in the ID", {**_message("cancel"), "subscription_id": "01263267a"}, "subscription_id"),
    ("key with a space", {**_message("cancel"), "idempotency_key": "a b"}, "idempotency_key"),
    ("key too long", {**_message("cancel"), "idempotency_key": "k" * 129}, "idempotency_key"),
    ("run_at without zone", _message("cancel", run_at="2026-03-01T09:00:00"), "run_at"),
    ("both discounts", _message("discount", parameters={"discount_amount": "1.00", "new_recurring_price": "9.00"}),
     "parameters"),
    ("no discount", _message("discount", parameters={}), "parameters"),
    ("comma price", _message("discount", parameters={"discount_amount": "2,00"}), "parameters.discount_amount"),
    ("number price", _message("discount", parameters={"discount_amount": 2.0}), "parameters.discount_amount"),
    ("days zero", _message("extend", parameters={"days": 0}), "parameters.days"),
    ("days too many", _message("extend", parameters={"days": 366}), "parameters.days"),
    ("typo in a parameter", _message("extend", parameters={"day": 3}), "parameters.day"),
    ("parameters for cancel", _message("cancel", parameters={"reason": "x"}), "parameters.reason"),
    ("unknown field", _message("cancel", priority="high"), "priority"),
    ("no method", _message("upgrade", parameters={"upgrade": "gold"}), "parameters.method"),
    ("catalogue and price", _message("upgrade", parameters={"method": "charge_by_previous_transaction",
                                                            "upgrade": "gold", "initial_price": "9.95"}), "parameters"),
    ("half a price point", _message("upgrade", parameters={"method": "charge_by_previous_transaction",
                                                           "new_client_accnum": "900100"}), "parameters"),
    ("half recurring", _message("upgrade", parameters={
        "method": "charge_by_previous_transaction", "new_client_accnum": "900100", "new_client_subacc": "1",
        "initial_price": "9.95", "initial_period": 30, "recurring_price": "9.95"}), "parameters"),
    ("bad account", _message("upgrade", parameters={
        "method": "charge_by_previous_transaction", "new_client_accnum": "9001", "new_client_subacc": "1",
        "initial_price": "9.95", "initial_period": 30}), "parameters.new_client_accnum"),
]


@pytest.mark.parametrize(("case", "raw", "param"), INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_messages_name_the_field(case, raw, param):
    with pytest.raises(MessageInvalid) as caught:
        parse_message(json.dumps(raw))
    assert caught.value.param == param
    assert caught.value.message.startswith(param)


def test_a_body_that_is_not_json_is_invalid_without_a_param():
    with pytest.raises(MessageInvalid) as caught:
        parse_message("not json {")
    assert caught.value.param is None and "JSON" in caught.value.message


def test_messages_do_not_echo_the_values_they_refuse():
    with pytest.raises(MessageInvalid) as caught:
        parse_message(json.dumps(_message("discount", parameters={"discount_amount": "jane@example.com"})))
    assert "jane@example.com" not in str(caught.value)


def test_the_schema_file_is_what_the_models_say():
    assert DEFAULT_SCHEMA_PATH == ROOT / "docs/schemas/operation-message.schema.json"
    assert DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "regenerate: python -m billops.operations.operation_messages")


def test_the_schema_describes_every_type_and_forbids_extra_fields():
    schema = message_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    mapping = schema["discriminator"]["mapping"]
    assert sorted(mapping) == ["cancel", "discount", "extend", "refresh", "refund", "upgrade", "void"]
    for definition in schema["$defs"].values():
        if definition.get("type") == "object":
            assert definition.get("additionalProperties") is False, definition.get("title")
