"""Issue 11: every delivery CCBill can send is stored, through the receiver's handler (HTTP API payload 2.0 events,
as API Gateway builds them) against moto: what is answered, what is stored, which keys it gets.

The shapes come from the reference documents and from deliveries other projects published: JSON numbers, bank
payments, short BINs, a stray ``&``, Latin-1 names, missing transactionIds, every version of every event type in
both formats, refunds of one transaction, upgrades into another account, CCBill's time zone.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from test_webhook_receiver_handler import CCBILL_IP, TOKEN, receiver  # noqa: F401  (the shared fixture)

from billops.privacy.subscriber_view import revealed_subscriber
from billops.webhooks.delivery_decoding import canonical_payload
from billops.webhooks.delivery_keys import legacy_delivery_key
from billops.webhooks.event_types import EventType
from billops.webhooks.event_versions import detect_version, fields_of, versions_of
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query

FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


def _items(aws_tables) -> list[dict]:
    return aws_tables.scan_events()


def _one(aws_tables, key: str) -> dict:
    [item] = [item for item in _items(aws_tables) if item["pk"] == key]
    return item


def _query(event_type: str, accnum: str = "900100", subacc: str = "0000") -> dict[str, str]:
    return {"token": TOKEN, "eventType": event_type, "eventGroupType": "Subscription", "clientAccnum": accnum,
            "clientSubacc": subacc}


# --- 1. every delivery is stored -------------------------------------------------------------------------------------


def test_json_numbers_anywhere_are_read_and_zero_filled_fields_restored(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess")
    document = {**fields, "clientAccnum": 945280, "clientSubacc": 0, "subscriptionInitialPrice": 23.0,
                "subscriptionRecurringPrice": 19.95, "initialPeriod": 30, "rebills": 99, "expDate": 317,
                "last4": 1111, "bin": 411111, "subscriptionCurrencyCode": 840}
    status, body = receiver("NewSaleSuccess", {}, body=json.dumps(document).encode(), content_type=JSON_TYPE,
                            query=_query("NewSaleSuccess", "945280", "0000"))
    assert status == 200, body
    item = _one(aws_tables, body["id"])
    stored = item["fields"]
    assert (stored["expDate"], stored["last4"], stored["clientSubacc"]) == ("0317", "1111", "0000")
    assert (stored["clientAccnum"], stored["subscriptionInitialPrice"], stored["bin"]) == ("945280", "23.0", "411111")
    assert "field_warnings" not in item


@pytest.mark.parametrize("body_format", ["urlencoded", "json"])
@pytest.mark.parametrize("exp_date", [None, "", "0000"])
def test_bank_payments_are_stored(receiver, aws_tables, body_format, exp_date):
    """ACH / check: last4 of a bank account, no expiry date (absent, empty or 0000), no BIN."""
    fields = sample_fields("NewSaleSuccess", paymentType="CHECK", cardType=None, bin=None, last4="6789",
                           expDate=exp_date, subscriptionId="0126015406000000311", transactionId="0126015406000000311")
    status, body = receiver("NewSaleSuccess", fields, body_format)
    assert status == 200, body
    item = _one(aws_tables, body["id"])
    assert item["fields"]["last4"] == "6789" and "bin" not in item["fields"]
    assert "field_warnings" not in item
    renewal = sample_fields("RenewalSuccess", paymentType="CHECK", cardType=None, last4="6789", expDate=exp_date)
    assert receiver("RenewalSuccess", renewal, body_format)[0] == 200


@pytest.mark.parametrize("bin_value", ["4111", "4", ""])
def test_a_short_or_empty_bin_is_stored(receiver, aws_tables, bin_value):
    status, body = receiver("NewSaleSuccess", sample_fields("NewSaleSuccess", bin=bin_value))
    assert status == 200, body
    item = _one(aws_tables, body["id"])
    assert item["fields"]["bin"] == bin_value and "field_warnings" not in item


@pytest.mark.parametrize("tail", [b"&", b"&&", b"&&\r\n"])
def test_a_form_body_with_a_trailing_or_doubled_ampersand_is_stored(receiver, aws_tables, tail):
    fields = sample_fields("Cancellation")
    encoded, _ = encode_body(fields, "urlencoded")
    doubled = encoded.replace(b"&reason=", b"&&reason=")
    status, body = receiver("Cancellation", fields, body=doubled + tail, content_type=FORM)
    assert status == 200, body
    item = _one(aws_tables, body["id"])
    assert item["fields"]["reason"] == fields["reason"] and "field_warnings" not in item
    # the same delivery without the stray ampersands is the same delivery
    assert receiver("Cancellation", fields)[1]["duplicate"] is True


def test_latin1_percent_escapes_in_names_are_decoded_not_replaced(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess", firstName="PLACEHOLDER1", lastName="PLACEHOLDER2", city="PLACEHOLDER3")
    encoded, _ = encode_body(fields, "urlencoded")
    latin1 = (encoded.replace(b"PLACEHOLDER1", b"Jos%E9").replace(b"PLACEHOLDER2", b"Gonz%E1lez+M%FCller")
              .replace(b"PLACEHOLDER3", b"Sch%F6nbrunn"))
    status, body = receiver("NewSaleSuccess", fields, body=latin1, content_type=FORM)
    assert status == 200, body
    clear = revealed_subscriber(_one(aws_tables, body["id"]))
    assert (clear["firstName"], clear["lastName"], clear["city"]) == ("José", "González Müller", "Schönbrunn")


def test_a_delivery_without_transaction_id_is_keyed_by_a_keyed_hash(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess", transactionId=None, subscriptionId="0126015401000000912")
    status, body = receiver("NewSaleSuccess", fields, "json")
    assert status == 200, body
    key = body["id"]
    assert key.startswith("NewSaleSuccess#hmac#") and len(key.rsplit("#", 1)[1]) == 64
    item = _one(aws_tables, key)
    assert item["subscription_id"] == "0126015401000000912" and "transaction_id" not in item
    assert item["field_warnings"]["transactionId"].startswith("is missing")
    again = receiver("NewSaleSuccess", fields, "urlencoded")
    assert again[1] == {"received": True, "duplicate": True, "id": key}
    assert len(_items(aws_tables)) == 1


def test_any_other_field_that_does_not_parse_is_stored_as_received_and_flagged(receiver, aws_tables):
    fields = sample_fields("NewSaleSuccess", billedInitialPrice="19,95", initialPeriod="thirty", expDate="13/29",
                           nextRenewalDate="14/02/2026", timestamp="yesterday", subscriptionCurrencyCode="dollars",
                           clientSubacc="00001")
    query = _query("NewSaleSuccess", subacc="00001")
    status, body = receiver("NewSaleSuccess", fields, query=query)
    assert status == 200, body
    item = _one(aws_tables, body["id"])
    assert set(item["field_warnings"]) == {"billedInitialPrice", "initialPeriod", "expDate", "nextRenewalDate",
                                           "timestamp", "subscriptionCurrencyCode", "clientSubacc"}
    for name in item["field_warnings"]:
        assert item["fields"][name] == fields[name]  # as received
        assert fields[name] not in item["field_warnings"][name]  # the reason never holds the value
    assert "occurred_at" not in item  # an unreadable timestamp: ordered by receipt time


@pytest.mark.parametrize("event_type", [t.value for t in EventType], ids=str)
def test_every_version_of_every_event_type_in_both_formats(receiver, aws_tables, event_type):
    """Version 1 up to the newest: each stored, its version detected exactly as the changelog says, the other
    format of the same delivery a duplicate."""
    known = EventType(event_type)
    sample = sample_fields(event_type)
    for entry in versions_of(known):
        fields = {name: value for name, value in sample.items() if name in fields_of(known, entry.version)}
        if "transactionId" in fields:
            fields["transactionId"] = f"01260154010{entry.version:08d}"
        fields["timestamp"] = f"2026-01-15 10:{entry.version:02d}:00"
        if known is EventType.USER_REACTIVATION:  # documents no timestamp
            fields.pop("timestamp")
        expected = detect_version(known, fields)
        assert expected == max(e.version for e in versions_of(known) if e.version <= entry.version and e.added)
        first_format, second_format = ("urlencoded", "json") if entry.version % 2 else ("json", "urlencoded")
        status, body = receiver(event_type, fields, first_format)
        assert (status, body["duplicate"]) == (200, False), (entry.version, body)
        item = _one(aws_tables, body["id"])
        assert item["detected_version"] == expected, entry.version
        assert "field_warnings" not in item, (entry.version, item.get("field_warnings"))
        status, again = receiver(event_type, fields, second_format)
        assert (status, again["duplicate"], again["id"]) == (200, True, body["id"]), entry.version
    assert len(_items(aws_tables)) == len(versions_of(known))


def test_fields_real_sales_carry_beyond_the_changelog_mark_no_version(receiver, aws_tables):
    """Release 5 gave NewSaleSuccess (v5) the bin only; paymentType and cardType went to other types. A bank sale of
    version 4 or later (expDate and last4, no bin) that carries them, as real sales do, is version 4, not 5."""
    sale = {name: value for name, value in sample_fields("NewSaleSuccess").items()
            if name in fields_of(EventType.NEW_SALE_SUCCESS, 4)}
    status, body = receiver("NewSaleSuccess", {**sale, "paymentType": "CHECK", "cardType": "", "last4": "6789"})
    assert status == 200 and _one(aws_tables, body["id"])["detected_version"] == 4
    up_sale = {name: value for name, value in sample_fields("UpSaleSuccess").items()
               if name in fields_of(EventType.UP_SALE_SUCCESS, 1)}
    status, body = receiver("UpSaleSuccess", {**up_sale, "threeDSecure": "NOT_APPLICABLE", "paymentType": "CREDIT"})
    assert status == 200 and _one(aws_tables, body["id"])["detected_version"] == 1


# --- 2. two refunds are two refunds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["Refund", "Chargeback", "Void", "Return"])
def test_two_reversals_of_one_transaction_are_two_and_a_resend_stays_one(receiver, aws_tables, event_type):
    first = sample_fields(event_type, transactionId="0126015401000000555", amount="5.00",
                          timestamp="2026-02-01 10:00:00")
    second = {**first, "amount": "7.50", "accountingAmount": "7.50", "timestamp": "2026-02-03 09:00:00"}
    one = receiver(event_type, first)[1]
    two = receiver(event_type, second, "json")[1]
    assert one["duplicate"] is False and two["duplicate"] is False and one["id"] != two["id"]
    assert one["id"] == f"{event_type}#txn#0126015401000000555"
    assert two["id"].startswith(f"{event_type}#txn#0126015401000000555#hmac#")
    for again in (receiver(event_type, first, "json")[1], receiver(event_type, first)[1]):
        assert again == {"received": True, "duplicate": True, "id": one["id"]}
    assert receiver(event_type, second)[1] == {"received": True, "duplicate": True, "id": two["id"]}
    amounts = sorted(item["fields"]["amount"] for item in _items(aws_tables))
    assert amounts == ["5.00", "7.50"]


def _legacy_item(event_type: str, fields: dict) -> dict:
    """A delivery as the receiver stored it before keyed hashes (key, no payload_digest, fields as received)."""
    from billops.privacy.subscriber_data import split_personal

    decoded = {name: value for name, value in fields.items() if name != "password"}
    public, _ = split_personal(decoded)
    return {"pk": legacy_delivery_key(event_type, decoded), "record_type": "delivery",
            "event_type": event_type, "known_type": True, "subscription_id": fields.get("subscriptionId"),
            "transaction_id": fields.get("transactionId"), "received_at": "2026-01-01T00:00:00.000000Z",
            "body_format": "urlencoded", "fields": public, "subscriber": {}, "subscriber_keys": {}}


def test_a_reversal_stored_before_the_upgrade_stays_one_when_re_sent(receiver, aws_tables):
    from billops.storage.events_table import EventsTable

    refund = sample_fields("Refund", transactionId="0126015401000000777", amount="4.00")
    stored = _legacy_item("Refund", refund)
    assert stored["pk"] == "Refund#txn#0126015401000000777"
    EventsTable(aws_tables.events_table, aws_tables.dynamodb).put_once(stored)
    assert receiver("Refund", refund, "json")[1] == {"received": True, "duplicate": True, "id": stored["pk"]}
    other = receiver("Refund", {**refund, "amount": "6.00", "accountingAmount": "6.00"})[1]
    assert other["duplicate"] is False and other["id"].startswith("Refund#txn#0126015401000000777#hmac#")
    assert len(_items(aws_tables)) == 2


@pytest.mark.parametrize("check", ["true", "false"])
def test_a_hash_keyed_delivery_stored_before_the_upgrade_is_found_under_its_old_key(receiver, aws_tables,
                                                                                    monkeypatch, check):
    from billops.storage.events_table import EventsTable

    monkeypatch.setenv("BILLOPS_CHECK_LEGACY_DELIVERY_KEYS", check)
    cancellation = sample_fields("Cancellation", reason="Too expensive")
    decoded = {name: value for name, value in cancellation.items() if name != "password"}
    old_key = "Cancellation#sha256#" + hashlib.sha256(canonical_payload(decoded).encode()).hexdigest()
    assert legacy_delivery_key("Cancellation", decoded) == old_key
    EventsTable(aws_tables.events_table, aws_tables.dynamodb).put_once({**_legacy_item("Cancellation", cancellation),
                                                                        "pk": old_key})
    answer = receiver("Cancellation", cancellation)[1]
    if check == "true":
        assert answer == {"received": True, "duplicate": True, "id": old_key}
        assert len(_items(aws_tables)) == 1
    else:  # turned off (a new installation): only the keyed hash is looked at
        assert answer["duplicate"] is False and answer["id"].startswith("Cancellation#hmac#")


# --- 2b. keys reveal nothing ----------------------------------------------------------------------------------------


def test_keys_are_keyed_hashes_that_a_guess_cannot_confirm(receiver, aws_tables, capsys):
    update = sample_fields("CustomerDataUpdate", transactionId=None, email="guess.me@example.com")
    status, body = receiver("CustomerDataUpdate", update)
    assert status == 200
    decoded = {name: value for name, value in update.items() if name != "password"}
    unsalted = hashlib.sha256(canonical_payload(decoded).encode()).hexdigest()
    key = body["id"]
    assert unsalted not in key and key.startswith("CustomerDataUpdate#hmac#")
    # Without the key, the guessed payload gives another hash; the stored item holds no clear personal value.
    item = _one(aws_tables, key)
    assert "guess.me@example.com" not in json.dumps(item, default=str)
    broken = sample_fields("CustomerDataUpdate", transactionId=None, email="guess.me@example.com",
                           subscriptionId=None)
    quarantined = receiver("CustomerDataUpdate", broken)[1]
    assert quarantined["param"] == "subscriptionId"
    [held] = [item for item in _items(aws_tables) if item["record_type"] == "quarantine"]
    raw, _ = encode_body(broken, "urlencoded")
    assert hashlib.sha256(raw).hexdigest() not in held["pk"] and "raw_body_sha256" not in held
    logged = capsys.readouterr().out
    assert unsalted not in logged and "guess.me" not in logged


def test_without_its_delivery_key_nothing_hash_keyed_is_stored_and_ccbill_is_asked_again(receiver, aws_tables,
                                                                                       monkeypatch):
    monkeypatch.setenv("BILLOPS_DELIVERY_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:none")
    status, body = receiver("Expiration", sample_fields("Expiration"))
    assert status == 503 and body["api_error_code"] == "internal_error"
    assert receiver("RenewalSuccess", sample_fields("RenewalSuccess"))[0] == 200  # a transactionId needs no key
    assert [item["event_type"] for item in _items(aws_tables)] == ["RenewalSuccess"]


# --- 3. upgrades into another account or subaccount ----------------------------------------------------------------

CATALOGUE = json.dumps({"upgrades": [{"key": "gold", "client_accnum": "900300", "client_subacc": "0005",
                                      "subscription_type_id": "0015"}]})


@pytest.fixture
def merchant_account(monkeypatch):
    monkeypatch.setenv("BILLOPS_CLIENT_ACCNUM", "900100")
    monkeypatch.setenv("BILLOPS_CLIENT_SUBACCS", "0000,0001")
    monkeypatch.setenv("BILLOPS_UPGRADE_CATALOGUE", CATALOGUE)


def _upgrade(event_type: str, accnum: str, subacc: str, original_accnum: str | None,
             original_subacc: str | None) -> tuple[dict, dict]:
    fields = sample_fields(event_type, clientAccnum=accnum, clientSubacc=subacc, originalClientAccnum=original_accnum,
                           originalClientSubacc=original_subacc)
    return fields, _query(event_type, accnum, subacc)


@pytest.mark.parametrize("event_type", ["UpSaleSuccess", "UpgradeSuccess", "CrossSaleSuccess", "UpgradeFailure"])
def test_an_upgrade_from_the_merchants_subscription_into_another_account_is_accepted(receiver, aws_tables,
                                                                                     merchant_account, event_type):
    fields, query = _upgrade(event_type, "900200", "0007", "900100", "0001")
    status, body = receiver(event_type, fields, query=query)
    assert status == 200, body
    assert _one(aws_tables, body["id"])["client_accnum"] == "900200"


def test_an_upgrade_into_the_catalogue_is_accepted_from_any_original(receiver, aws_tables, merchant_account):
    fields, query = _upgrade("UpSaleSuccess", "900300", "0005", "555555", "0009")
    assert receiver("UpSaleSuccess", fields, query=query)[0] == 200


@pytest.mark.parametrize(
    ("event_type", "accnum", "subacc", "original_accnum", "original_subacc"),
    [
        ("UpSaleSuccess", "900200", "0007", "555555", "0001"),  # original account foreign
        ("UpSaleSuccess", "900100", "0009", "900100", "0009"),  # original subaccount foreign
        ("UpSaleSuccess", "900200", "0007", "900100", None),  # half an original proves nothing
        ("UpSaleSuccess", "900300", "0006", None, None),  # next to, not in, the catalogue
        ("RenewalSuccess", "900200", "0007", "900100", "0001"),  # not an upgrade: originals mean nothing
        ("Cancellation", "900300", "0005", None, None),
    ],
)
def test_everything_else_from_another_account_stays_403(receiver, aws_tables, merchant_account, event_type, accnum,
                                                        subacc, original_accnum, original_subacc):
    fields, query = _upgrade(event_type, accnum, subacc, original_accnum, original_subacc)
    status, body = receiver(event_type, fields, query=query)
    assert status == 403 and body["api_error_code"] == "api_authorization_failed"
    status, _ = receiver(event_type, {}, body=b"{not json", content_type=JSON_TYPE, query=query)
    assert status == 403  # an unreadable body from another account is refused, not kept
    assert _items(aws_tables) == []


# --- 6. CCBill's time zone --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "occurred_at"), [(None, "2026-07-15T17:30:00Z"), ("UTC", "2026-07-15T10:30:00Z"),
                                                   ("Europe/Amsterdam", "2026-07-15T08:30:00Z"),
                                                   ("-05:00", "2026-07-15T15:30:00Z")])
def test_occurred_at_is_utc_converted_from_ccbills_time_zone(receiver, aws_tables, monkeypatch, zone, occurred_at):
    if zone:
        monkeypatch.setenv("BILLOPS_CCBILL_TIMEZONE", zone)
    status, body = receiver("Expiration", sample_fields("Expiration", timestamp="2026-07-15 10:30:00"))
    assert status == 200
    item = _one(aws_tables, body["id"])
    assert item["occurred_at"] == occurred_at and item["fields"]["timestamp"] == "2026-07-15 10:30:00"


def test_an_unknown_time_zone_stops_the_receiver_at_its_cold_start_and_stores_nothing(receiver, aws_tables,
                                                                                       monkeypatch):
    """Settings are checked when the function starts (billops.settings): a receiver that cannot read CCBill's
    timestamps never takes a delivery. Lambda answers the failed start with a 5xx, so CCBill sends it again."""
    from billops.settings import SettingsError

    monkeypatch.setenv("BILLOPS_CCBILL_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(SettingsError, match="BILLOPS_CCBILL_TIMEZONE: .*Mars/Olympus_Mons"):
        receiver("Expiration", sample_fields("Expiration"))
    assert _items(aws_tables) == []


def test_the_account_fields_in_the_url_and_the_body_agree_zero_filled_or_not(receiver, aws_tables):
    """CCBill appends the account fields to the URL itself; the body may carry them too, zero-filled or not."""
    fields = sample_fields("Expiration", clientSubacc="1")
    query = _query("Expiration", subacc="0001")
    status, body = receiver("Expiration", fields, "json", query=query)
    assert status == 200, body
    assert _one(aws_tables, body["id"])["client_subacc"] == "0001"
