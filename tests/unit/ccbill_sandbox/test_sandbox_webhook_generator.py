"""The sandbox's webhook generator: every event type, every version, both formats, and each variation of the
varied mode, reproducible from its seed."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from urllib.parse import parse_qsl

import pytest
from billops_local.ccbill_sandbox.webhook_config import WebhookConfig
from billops_local.ccbill_sandbox.webhook_generator import (
    BANK_PAYMENT,
    BLANK_FIELDS,
    JSON_NUMBERS,
    LATIN1_NAMES,
    OLDER_VERSION,
    PASSTHROUGH_FIELDS,
    SHORT_BIN,
    STRAY_AMPERSAND,
    VARIATIONS,
    GeneratedDelivery,
    WebhookGenerator,
)
from billops_local.ccbill_sandbox.webhook_reference import field_table

TABLE = field_table()
EVERY_VERSION = [(event_type, entry.version, body_format) for event_type, spec in TABLE.events.items()
                 for entry in spec.versions for body_format in entry.formats]
SEED = 20261122


def generator(**changes) -> WebhookGenerator:
    made = WebhookGenerator(WebhookConfig(seed=SEED))
    made.configure(changes)
    return made


def read(delivery: GeneratedDelivery) -> dict[str, str]:
    """The body read as CCBill means it: JSON (numbers as their digits), or a form in ISO-8859-1."""
    if delivery.body_format == "json":
        assert delivery.content_type == "application/json"
        document = json.loads(delivery.body.decode("utf-8"), parse_float=str, parse_int=str)
        return {name: str(value) for name, value in document.items()}
    assert delivery.content_type == "application/x-www-form-urlencoded"
    return dict(parse_qsl(delivery.body.decode("ascii"), keep_blank_values=True, encoding="iso-8859-1"))


@cache
def varied_deliveries(count: int = 60, seed: int = SEED) -> tuple[GeneratedDelivery, ...]:
    made = WebhookGenerator(WebhookConfig(seed=seed))
    made.configure({"variation": "varied", "format": "any", "versions": "any"})
    return tuple(made.generate(event_type, {}, key=str(n), consumer_key=f"consumer-{n}")
                 for n in range(count) for event_type in TABLE.event_types)


@pytest.mark.parametrize("event_type,version,body_format", EVERY_VERSION,
                         ids=[f"{t}-v{v}-{f}" for t, v, f in EVERY_VERSION])
def test_every_version_of_every_event_in_each_of_its_formats(event_type, version, body_format):
    made = generator(format=body_format, versions={event_type: version})
    delivery = made.generate(event_type, {})
    spec = TABLE.event(event_type)
    older = () if version == spec.newest else (OLDER_VERSION,)
    assert (delivery.version, delivery.body_format, delivery.variations) == (version, body_format, older)
    conditional = {name for name in spec.fields(version) if TABLE.field(name).conditional}
    # Every documented field of the version, in the documents' order; only a conditional field may be missing
    # (dynamicPricingValidationDigest belongs to Dynamic Pricing sales: the caller gives it).
    assert [n for n in spec.fields(version) if n in delivery.fields] == list(delivery.fields)
    assert set(spec.fields(version)) - set(delivery.fields) <= conditional - {"flexId", "flexID", "cvv2Response"}
    assert all(isinstance(value, str) for value in delivery.fields.values())
    assert read(delivery) == delivery.text_fields == delivery.fields


def test_the_callers_values_win_and_none_leaves_a_field_out():
    delivery = generator().generate("NewSaleSuccess", {
        "subscriptionId": "0126000001000000001", "email": "given@example.com", "firstName": "Given",
        "subscriptionInitialPrice": "23.00", "dynamicPricingValidationDigest": None, "X-own": "kept"})
    fields = delivery.fields
    assert (fields["subscriptionId"], fields["email"], fields["firstName"]) == (
        "0126000001000000001", "given@example.com", "Given")
    assert fields["subscriptionInitialPrice"] == "23.00" and fields["X-own"] == "kept"
    assert "dynamicPricingValidationDigest" not in fields


def test_a_field_no_version_documents_is_refused():
    with pytest.raises(ValueError, match="RenewalSuccess has no field firstName"):
        generator().generate("RenewalSuccess", {"firstName": "Jane"})


def test_a_field_of_a_later_version_is_left_out_of_an_older_one():
    delivery = generator(versions={"RenewalSuccess": 1}).generate("RenewalSuccess", {"renewalDate": "2026-01-01"})
    assert "renewalDate" not in delivery.fields and "expDate" not in delivery.fields


def test_url_encoded_only_versions_are_never_json():
    made = generator(format="any", versions={"UpSaleSuccess": "any"})
    seen = {(d.version, d.body_format) for d in (made.generate("UpSaleSuccess", {}, key=str(n)) for n in range(200))}
    assert {(1, "urlencoded"), (2, "urlencoded"), (7, "json")} <= seen
    assert not {(1, "json"), (2, "json")} & seen
    assert {v for v, _ in seen} == set(range(1, 8))


def test_json_format_with_any_version_only_draws_versions_json_can_carry():
    made = generator(format="json", versions="any")
    versions = {made.generate("UpSaleSuccess", {}, key=str(n)).version for n in range(100)}
    assert versions == set(range(3, 8))


def test_each_variation_appears_for_a_seed_and_is_read_back():
    deliveries = varied_deliveries()
    counts = Counter(name for delivery in deliveries for name in delivery.variations)
    assert set(counts) == set(VARIATIONS), counts
    assert Counter(d.body_format for d in deliveries).keys() == {"json", "urlencoded"}
    for delivery in deliveries:
        assert read(delivery) == delivery.text_fields, (delivery.event_type, delivery.variations)


def test_the_same_seed_gives_the_same_deliveries_and_another_seed_others():
    first, again, other = varied_deliveries(10), varied_deliveries(10), varied_deliveries(10, seed=SEED + 1)
    assert [d.body for d in first] == [d.body for d in again]
    assert [d.body for d in first] != [d.body for d in other]


def test_json_numbers_lose_the_zeros_of_zero_filled_fields():
    numbered = [d for d in varied_deliveries() if JSON_NUMBERS in d.variations]
    sale = next(d for d in numbered if d.event_type == "NewSaleSuccess" and "expDate" in d.fields
                and "last4" in d.fields and d.fields["expDate"] != "")
    assert isinstance(sale.fields["clientAccnum"], int) and sale.fields["clientSubacc"] == 0
    assert isinstance(sale.fields["subscriptionInitialPrice"], float)
    assert isinstance(sale.fields["expDate"], int) and isinstance(sale.fields["last4"], int)
    assert isinstance(sale.fields["subscriptionId"], str)  # 19 digits with a leading zero stay text
    price = generator(variation="varied", format="json").generate
    for n in range(50):
        delivery = price("NewSaleSuccess", {"subscriptionInitialPrice": "23.00", "expDate": "0317"}, key=str(n))
        if JSON_NUMBERS in delivery.variations:
            assert b'"subscriptionInitialPrice": 23.0' in delivery.body and b'"expDate": 317' in delivery.body
            assert delivery.text_fields["expDate"] == "317"
            break
    else:
        pytest.fail("no delivery with JSON numbers in 50")


def test_bank_payments_have_a_bank_account_and_no_card():
    banked = [d for d in varied_deliveries() if BANK_PAYMENT in d.variations]
    expiry_forms = set()
    for delivery in banked:
        fields = delivery.text_fields
        assert not {"bin", "cardType", "cardSubType", "avsResponse", "cvv2Response", "threeDSecure",
                    "scaResponseStatus"} & set(fields)
        if "paymentType" in fields:
            assert fields["paymentType"] == "CHECK"
        if "last4" in fields and JSON_NUMBERS not in delivery.variations:
            assert len(fields["last4"]) == 4 and fields["last4"].isdigit()
        if "expDate" in TABLE.event(delivery.event_type).fields(delivery.version):
            expiry_forms.add(fields.get("expDate", "absent"))
    assert expiry_forms <= {"absent", "", "0000", "0"} and len(expiry_forms) >= 2


def test_a_short_bin_is_five_digits():
    shorts = [d for d in varied_deliveries() if SHORT_BIN in d.variations]
    assert shorts and all(len(d.text_fields["bin"]) == 5 for d in shorts)


def test_blank_fields_are_sent_empty():
    blanks = [d for d in varied_deliveries() if BLANK_FIELDS in d.variations]
    assert blanks and all(any(value == "" for value in d.text_fields.values()) for d in blanks)
    form = next(d for d in blanks if d.body_format == "urlencoded")
    assert any(pair.endswith(b"=") for pair in form.body.split(b"&"))


def test_pass_through_fields_are_echoed_on_purchases_only():
    deliveries = varied_deliveries()
    echoed = [d for d in deliveries if PASSTHROUGH_FIELDS in d.variations]
    assert echoed and all(TABLE.event(d.event_type).is_purchase for d in echoed)
    for delivery in echoed:
        fields = delivery.text_fields
        assert fields["X-user_id"].isdigit()
        assert fields["X-email"] == fields["email"] and fields["X-customer_fname"] == fields["firstName"]
    assert not any(name.startswith("X-") for d in deliveries if not TABLE.event(d.event_type).is_purchase
                   for name in d.fields)


def test_latin1_names_are_iso_8859_1_percent_escapes_in_forms():
    accented = [d for d in varied_deliveries() if LATIN1_NAMES in d.variations]
    forms = [d for d in accented if d.body_format == "urlencoded"]
    assert forms and any(d.body_format == "json" for d in accented)
    for delivery in forms:
        assert b"%C3" not in delivery.body  # no UTF-8 sequence: é is %E9
        assert any(not value.isascii() for value in read(delivery).values())
    assert any(b"%E9" in d.body or b"%FC" in d.body or b"%F8" in d.body or b"%EB" in d.body for d in forms)


def test_a_stray_ampersand_only_in_forms():
    strays = [d for d in varied_deliveries() if STRAY_AMPERSAND in d.variations]
    assert strays and all(d.body_format == "urlencoded" for d in strays)
    assert all(d.body.startswith(b"&") or d.body.endswith(b"&") or b"&&" in d.body for d in strays)


def test_a_consumer_looks_the_same_in_each_of_its_deliveries():
    made = generator(variation="varied", format="any")
    sale = made.generate("NewSaleSuccess", {"subscriptionId": "0126000001000000007", "timestamp": "t1"})
    renewal = made.generate("RenewalSuccess", {"subscriptionId": "0126000001000000007", "timestamp": "t2"})
    for name in ("last4", "paymentType", "paymentAccount"):
        assert sale.text_fields.get(name) == renewal.text_fields.get(name) or JSON_NUMBERS in (
            sale.variations + renewal.variations), name


def test_older_versions_appear_when_any_version_is_configured():
    assert any(OLDER_VERSION in d.variations for d in varied_deliveries(5))
    assert not any(OLDER_VERSION in d.variations
                   for d in (generator(variation="varied").generate(t, {}) for t in TABLE.event_types))


def test_the_merchants_own_pass_through_fields_replace_the_drawn_ones():
    made = generator(variation="varied")
    for n in range(40):
        delivery = made.generate("NewSaleSuccess", {"X-user_id": "merchant-7"}, key=str(n), consumer_key=str(n))
        assert [name for name in delivery.fields if name.startswith("X-")] == ["X-user_id"]
        assert delivery.fields["X-user_id"] == "merchant-7"
