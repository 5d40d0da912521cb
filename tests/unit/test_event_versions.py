"""Version tables and detection, checked against CCBill's changelog (ccbill-webhooks-upsale-versions-changelog.txt)."""

from __future__ import annotations

import pytest

from billops.webhooks.event_types import LATEST_VERSION, EventType
from billops.webhooks.event_versions import (
    EVENT_VERSIONS,
    SALE_SUCCESS_CORE,
    accepted_fields_of,
    detect_version,
    fields_of,
    introduced_in,
    optional_fields_of,
    versions_in_format,
    versions_of,
)
from billops_local.webhook_samples import sample_fields

E = EventType


def test_every_type_has_numbered_versions_up_to_the_latest():
    assert set(EVENT_VERSIONS) == set(EventType)
    for event_type in EventType:
        numbers = [entry.version for entry in versions_of(event_type)]
        assert numbers == list(range(1, LATEST_VERSION[event_type] + 1)), event_type


def test_version_one_is_the_core_set_and_carries_the_account_fields():
    for event_type in EventType:
        core = versions_of(event_type)[0].added
        assert {"clientAccnum", "clientSubacc"} <= core, event_type


def test_no_field_is_introduced_twice():
    for event_type, versions in EVENT_VERSIONS.items():
        seen: set[str] = set()
        for entry in versions:
            assert not (entry.added & seen), (event_type, entry.version, entry.added & seen)
            seen |= entry.added


def test_release_11_added_no_parameters_anywhere():
    release_11 = [
        entry for versions in EVENT_VERSIONS.values() for entry in versions if entry.release.startswith("Release 11")
    ]
    assert len(release_11) == 20  # "Updated Event Versions": every one of the 20 types
    assert all(not entry.added for entry in release_11)


def test_release_12_added_card_sub_type_to_the_ten_purchase_types():
    """Release 12 - 2025-04-29: cardSubType, "Affected Webhooks" with their versions."""
    expected = {
        E.CROSS_SALE_FAILURE: 5,
        E.CROSS_SALE_SUCCESS: 6,
        E.NEW_SALE_FAILURE: 5,
        E.NEW_SALE_SUCCESS: 8,
        E.RENEWAL_FAILURE: 5,
        E.RENEWAL_SUCCESS: 7,
        E.UPGRADE_FAILURE: 4,
        E.UPGRADE_SUCCESS: 5,
        E.UP_SALE_FAILURE: 5,
        E.UP_SALE_SUCCESS: 7,
    }
    for event_type in EventType:
        assert introduced_in(event_type, "cardSubType") == expected.get(event_type), event_type


@pytest.mark.parametrize(
    ("event_type", "field", "version"),
    [
        # Release 10: paymentAccount and scaResponseStatus
        (E.CROSS_SALE_FAILURE, "paymentAccount", 3),
        (E.CROSS_SALE_SUCCESS, "paymentAccount", 4),
        (E.UP_SALE_FAILURE, "paymentAccount", 3),
        (E.UPGRADE_FAILURE, "paymentAccount", 2),
        (E.UPGRADE_SUCCESS, "paymentAccount", 3),
        (E.CROSS_SALE_FAILURE, "scaResponseStatus", 3),
        (E.CROSS_SALE_SUCCESS, "scaResponseStatus", 4),
        (E.UP_SALE_FAILURE, "scaResponseStatus", 3),
        (E.UP_SALE_SUCCESS, "scaResponseStatus", 5),
        (E.UPGRADE_FAILURE, "scaResponseStatus", 2),
        (E.UPGRADE_SUCCESS, "scaResponseStatus", 3),
        # Release 9: threeDSecure
        (E.NEW_SALE_SUCCESS, "threeDSecure", 6),
        (E.NEW_SALE_FAILURE, "threeDSecure", 3),
        # Release 8
        (E.UP_SALE_SUCCESS, "expDate", 4),
        (E.UP_SALE_SUCCESS, "last4", 4),
        (E.UP_SALE_SUCCESS, "paymentAccount", 4),
        # Release 6: paymentAccount
        (E.CUSTOMER_DATA_UPDATE, "paymentAccount", 4),
        (E.CHARGEBACK, "paymentAccount", 4),
        (E.REFUND, "paymentAccount", 4),
        (E.RETURN, "paymentAccount", 4),
        (E.RENEWAL_SUCCESS, "paymentAccount", 5),
        (E.VOID, "paymentAccount", 4),
        # Release 6: "(all versions)" fields belong to version 1
        (E.CHARGEBACK, "accountingCurrency", 1),
        (E.REFUND, "currency", 1),
        (E.VOID, "currency", 1),
        (E.RENEWAL_SUCCESS, "accountingCurrency", 1),
        (E.RENEWAL_SUCCESS, "billedCurrency", 1),
        # Release 5: bin, paymentType, cardType
        (E.NEW_SALE_SUCCESS, "bin", 5),
        (E.UPGRADE_SUCCESS, "bin", 2),
        (E.UP_SALE_SUCCESS, "bin", 3),
        (E.CROSS_SALE_SUCCESS, "bin", 3),
        (E.CUSTOMER_DATA_UPDATE, "bin", 3),
        (E.CHARGEBACK, "bin", 3),
        (E.CHARGEBACK, "paymentType", 3),
        (E.RETURN, "paymentType", 3),
        (E.REFUND, "paymentType", 3),
        (E.RENEWAL_SUCCESS, "paymentType", 4),
        (E.RENEWAL_FAILURE, "paymentType", 3),
        (E.VOID, "paymentType", 3),
        (E.CHARGEBACK, "cardType", 3),
        (E.REFUND, "cardType", 3),
        (E.RENEWAL_SUCCESS, "cardType", 4),
        (E.RENEWAL_FAILURE, "cardType", 3),
        (E.VOID, "cardType", 3),
        # Release 4: expDate, last4
        (E.NEW_SALE_SUCCESS, "expDate", 4),
        (E.CUSTOMER_DATA_UPDATE, "last4", 2),
        (E.CHARGEBACK, "expDate", 2),
        (E.REFUND, "last4", 2),
        (E.RENEWAL_SUCCESS, "expDate", 3),
        (E.VOID, "expDate", 2),
        # Release 3: flexId (both spellings); UpSaleSuccess v2 table: flexID
        (E.NEW_SALE_SUCCESS, "flexId", 3),
        (E.NEW_SALE_SUCCESS, "flexID", 3),
        (E.NEW_SALE_FAILURE, "flexId", 2),
        (E.UP_SALE_SUCCESS, "flexID", 2),
        # Release 2: paymentAccount, renewalDate
        (E.NEW_SALE_SUCCESS, "paymentAccount", 2),
        (E.RENEWAL_SUCCESS, "renewalDate", 2),
        (E.RENEWAL_FAILURE, "renewalDate", 2),
        # UpSaleSuccess v1 table
        (E.UP_SALE_SUCCESS, "originalSubscriptionId", 1),
        (E.UP_SALE_SUCCESS, "source", 1),
        # documented nowhere for the type
        (E.RETURN, "cardType", None),
        (E.EXPIRATION, "bin", None),
        (E.NEW_SALE_SUCCESS, "X-customerRef", None),
    ],
)
def test_fields_are_introduced_in_the_changelog_version(event_type, field, version):
    assert introduced_in(event_type, field) == version


@pytest.mark.parametrize(
    ("event_type", "fields", "version"),
    [
        (E.UP_SALE_SUCCESS, {"cardSubType"}, 7),
        (E.UP_SALE_SUCCESS, {"scaResponseStatus", "bin", "flexID"}, 5),
        (E.UP_SALE_SUCCESS, {"bin"}, 3),
        (E.UP_SALE_SUCCESS, {"flexID"}, 2),
        (E.UP_SALE_SUCCESS, {"originalSubscriptionId", "source"}, 1),
        (E.NEW_SALE_SUCCESS, {"threeDSecure"}, 6),
        (E.NEW_SALE_SUCCESS, {"threeDSecure", "cardSubType"}, 8),
        (E.NEW_SALE_SUCCESS, {"paymentAccount"}, 2),
        (E.NEW_SALE_SUCCESS, set(SALE_SUCCESS_CORE), 1),
        (E.NEW_SALE_FAILURE, {"flexId"}, 2),
        (E.RENEWAL_SUCCESS, {"renewalDate"}, 2),
        (E.RENEWAL_SUCCESS, {"renewalDate", "paymentAccount"}, 5),
        (E.RENEWAL_FAILURE, {"paymentType"}, 3),
        (E.CHARGEBACK, {"bin"}, 3),
        (E.RETURN, {"paymentType"}, 3),
        (E.CUSTOMER_DATA_UPDATE, {"paymentAccount", "bin"}, 4),
        (E.UPGRADE_FAILURE, {"scaResponseStatus"}, 2),
        (E.CANCELLATION, {"reason", "source"}, 1),
    ],
)
def test_detect_version(event_type, fields, version):
    assert detect_version(event_type, fields) == version


def test_detection_ignores_unknown_fields_and_missing_optional_ones():
    assert detect_version(E.RENEWAL_SUCCESS, ["X-anything", "eventType", "somethingFrom2030"]) == 1
    assert detect_version(E.RENEWAL_SUCCESS, []) == 1
    # a field another type introduced late means nothing here
    assert detect_version(E.EXPIRATION, ["cardSubType", "threeDSecure"]) == 1


def test_versions_without_new_parameters_detect_as_the_lower_version():
    assert detect_version(E.UP_SALE_SUCCESS, fields_of(E.UP_SALE_SUCCESS, 6)) == 5
    assert detect_version(E.NEW_SALE_SUCCESS, fields_of(E.NEW_SALE_SUCCESS, 7)) == 6
    assert detect_version(E.CANCELLATION, fields_of(E.CANCELLATION)) == 1


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_each_version_is_detected_from_its_own_field_set(event_type):
    for entry in versions_of(event_type):
        expected = max(e.version for e in versions_of(event_type) if e.version <= entry.version and e.added)
        assert detect_version(event_type, fields_of(event_type, entry.version)) == expected


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_samples_are_the_newest_distinguishable_version(event_type):
    newest_with_fields = max(entry.version for entry in versions_of(event_type) if entry.added)
    assert detect_version(event_type, sample_fields(event_type.value)) == newest_with_fields


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_samples_carry_every_documented_field(event_type):
    fields = set(sample_fields(event_type.value))
    documented = fields_of(event_type) - {"flexId", "flexID"}
    assert documented - fields == set()


def test_fields_of_accumulates_versions():
    assert fields_of(E.RENEWAL_SUCCESS, 1) < fields_of(E.RENEWAL_SUCCESS, 2)
    assert "renewalDate" in fields_of(E.RENEWAL_SUCCESS, 2)
    assert "cardSubType" not in fields_of(E.RENEWAL_SUCCESS, 6)
    assert "cardSubType" in fields_of(E.RENEWAL_SUCCESS)


# --- exactly the changelog (issue 11) ---------------------------------------------------------------------------------


def test_release_5_gave_new_sale_success_v5_the_bin_only():
    """Release 5: bin to NewSaleSuccess (v5); paymentType and cardType to Chargeback, Return, Refund, the renewals
    and Void, not to NewSaleSuccess. Real sales carry them anyway: accepted, marking no version."""
    assert introduced_in(E.NEW_SALE_SUCCESS, "paymentType") is None
    assert introduced_in(E.NEW_SALE_SUCCESS, "cardType") is None
    assert detect_version(E.NEW_SALE_SUCCESS, {"expDate", "last4", "paymentType", "cardType"}) == 4
    assert {"paymentType", "cardType"} <= optional_fields_of(E.NEW_SALE_SUCCESS)


def test_up_sale_success_is_new_sale_success_plus_its_own_table():
    """"It's the same as NewSaleSuccess, but with these additional parameters": NewSaleSuccess's core set, the
    UpSaleSuccess tables' additions by version, and NewSaleSuccess's later fields accepted without marking one."""
    assert SALE_SUCCESS_CORE <= fields_of(E.UP_SALE_SUCCESS, 1)
    assert fields_of(E.UP_SALE_SUCCESS, 1) - SALE_SUCCESS_CORE == {"originalSubscriptionId", "originalClientAccnum",
                                                                   "originalClientSubacc", "source"}
    assert detect_version(E.UP_SALE_SUCCESS, fields_of(E.UP_SALE_SUCCESS, 1) | {"threeDSecure", "paymentType",
                                                                                "cardType", "flexId"}) == 2
    assert detect_version(E.UP_SALE_SUCCESS, fields_of(E.UP_SALE_SUCCESS, 1) | {"threeDSecure", "cardType"}) == 1
    assert optional_fields_of(E.UP_SALE_SUCCESS) >= {"threeDSecure", "paymentType", "cardType"}
    assert accepted_fields_of(E.UP_SALE_SUCCESS, 3) == fields_of(E.UP_SALE_SUCCESS, 3) | optional_fields_of(
        E.UP_SALE_SUCCESS)


def test_up_sale_success_versions_1_and_2_are_url_encoded_only():
    assert versions_in_format(E.UP_SALE_SUCCESS, "urlencoded") == (1, 2, 3, 4, 5, 6, 7)
    assert versions_in_format(E.UP_SALE_SUCCESS, "json") == (3, 4, 5, 6, 7)
    assert versions_in_format(E.NEW_SALE_SUCCESS, "json") == tuple(range(1, 9))


def test_optional_fields_never_mark_a_version():
    for event_type in EventType:
        for name in optional_fields_of(event_type):
            assert introduced_in(event_type, name) is None, (event_type, name)
