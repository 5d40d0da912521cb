from billops.privacy.subscriber_data import (
    REDACTED_CARD_NUMBER,
    contains_card_number,
    redact_raw_body,
    scrub_fields,
    split_personal,
)


def test_password_is_dropped_and_personal_fields_are_set_apart():
    fields = scrub_fields({"subscriptionId": "0117240102000000049", "password": "hunter2", "email": "a@b.c",
                           "firstName": "Jane", "bin": "411111", "last4": "1111"})
    assert "password" not in fields
    public, personal = split_personal(fields)
    assert personal == {"email": "a@b.c", "firstName": "Jane"}
    assert public == {"subscriptionId": "0117240102000000049", "bin": "411111", "last4": "1111"}


def test_card_numbers_are_redacted_but_ccbill_ids_are_not():
    fields = scrub_fields({"X-note": "card 4111 1111 1111 1111", "subscriptionId": "4111111111111111",
                           "reservationId": "0117240102000000049"})
    assert fields["X-note"] == REDACTED_CARD_NUMBER
    assert fields["subscriptionId"] == "4111111111111111"
    assert fields["reservationId"] == "0117240102000000049"


def test_luhn_decides_what_looks_like_a_card():
    assert contains_card_number("5105105105105100")
    assert not contains_card_number("5105105105105101")
    assert not contains_card_number("19.95")


def test_raw_bodies_lose_passwords_and_card_numbers_in_both_formats():
    form = redact_raw_body("username=jd&password=hunter2&x=4111111111111111&subscriptionId=0117240102000000049")
    assert "hunter2" not in form and "4111111111111111" not in form
    assert "0117240102000000049" in form
    broken_json = redact_raw_body('{"password": "hun\\"ter2", "email": "x@y.z"')
    assert "hun" not in broken_json
