"""The sandbox's webhook field table (webhook_fields.json) says what CCBill's documents say.

The expectations below are transcribed from ../shared/reference/ccbill-webhooks-upsale-versions-changelog.txt (the
CCBill document that is the authority on versions; a fresh clone has no ../shared, so they are written here) and
checked against the table, so a change to the table that disagrees with the documents fails here.
"""

from __future__ import annotations

import pytest
from billops_local.ccbill_sandbox.webhook_reference import field_table

TABLE = field_table()

NEWEST_VERSIONS = {
    # Release 12 (2025-04-29): "Affected Webhooks"
    "CrossSaleFailure": 5, "CrossSaleSuccess": 6, "NewSaleFailure": 5, "NewSaleSuccess": 8, "RenewalFailure": 5,
    "RenewalSuccess": 7, "UpgradeFailure": 4, "UpgradeSuccess": 5, "UpSaleFailure": 5, "UpSaleSuccess": 7,
    # Release 11 (2025-02-17): "Updated Event Versions" of the types Release 12 left alone
    "Void": 5, "BillingDateChange": 2, "Cancellation": 2, "Chargeback": 5, "CustomerDataUpdate": 5, "Expiration": 2,
    "ManualAdd": 2, "Refund": 5, "Return": 5, "UserReactivation": 2,
}

CHANGELOG = [
    # (release, fields, [(event type, version that added them)])
    ("Release 12", {"cardSubType"}, [("CrossSaleFailure", 5), ("CrossSaleSuccess", 6), ("NewSaleFailure", 5),
                                     ("NewSaleSuccess", 8), ("RenewalFailure", 5), ("RenewalSuccess", 7),
                                     ("UpgradeFailure", 4), ("UpgradeSuccess", 5), ("UpSaleFailure", 5),
                                     ("UpSaleSuccess", 7)]),
    ("Release 10", {"paymentAccount"}, [("CrossSaleFailure", 3), ("CrossSaleSuccess", 4), ("UpSaleFailure", 3),
                                        ("UpgradeFailure", 2), ("UpgradeSuccess", 3)]),
    ("Release 10", {"scaResponseStatus"}, [("CrossSaleFailure", 3), ("CrossSaleSuccess", 4), ("UpSaleFailure", 3),
                                           ("UpSaleSuccess", 5), ("UpgradeFailure", 2), ("UpgradeSuccess", 3)]),
    ("Release 9", {"threeDSecure"}, [("NewSaleSuccess", 6), ("NewSaleFailure", 3)]),
    ("Release 8", {"expDate", "last4", "paymentAccount"}, [("UpSaleSuccess", 4)]),
    ("Release 6", {"paymentAccount"}, [("CustomerDataUpdate", 4), ("Chargeback", 4), ("Refund", 4), ("Return", 4),
                                       ("RenewalSuccess", 5), ("Void", 4)]),
    ("Release 5", {"bin"}, [("NewSaleSuccess", 5), ("UpgradeSuccess", 2), ("UpSaleSuccess", 3),
                            ("CrossSaleSuccess", 3), ("CustomerDataUpdate", 3), ("Chargeback", 3)]),
    ("Release 5", {"paymentType"}, [("Chargeback", 3), ("Return", 3), ("Refund", 3), ("RenewalSuccess", 4),
                                    ("RenewalFailure", 3), ("Void", 3)]),
    ("Release 5", {"cardType"}, [("Chargeback", 3), ("Refund", 3), ("RenewalSuccess", 4), ("RenewalFailure", 3),
                                 ("Void", 3)]),
    ("Release 4", {"expDate", "last4"}, [("NewSaleSuccess", 4), ("CustomerDataUpdate", 2), ("Chargeback", 2),
                                         ("Refund", 2), ("RenewalSuccess", 3), ("Void", 2)]),
    ("Release 3", {"flexId"}, [("NewSaleSuccess", 3), ("NewSaleFailure", 2)]),
    ("Release 2", {"paymentAccount"}, [("NewSaleSuccess", 2)]),
    ("Release 2", {"renewalDate"}, [("RenewalSuccess", 2), ("RenewalFailure", 2)]),
]

UP_SALE_SUCCESS_TABLES = {  # S2's UpSaleSuccess Version 1..7 tables: the parameters over NewSaleSuccess's
    1: {"originalSubscriptionId", "originalClientAccnum", "originalClientSubacc", "source"},
    2: {"flexID"}, 3: {"bin"}, 4: {"expDate", "last4", "paymentAccount"}, 5: {"scaResponseStatus"}, 6: set(),
    7: {"cardSubType"},
}

ALL_VERSIONS = {  # Release 6: "accountingCurrency added to ... (all versions)", "currency ...", "billedCurrency ..."
    "accountingCurrency": ("Chargeback", "Refund", "RenewalSuccess", "Void"),
    "currency": ("Chargeback", "Refund", "Void"),
    "billedCurrency": ("RenewalSuccess",),
}


def test_every_event_type_of_the_changelog_and_its_newest_version():
    assert {name: spec.newest for name, spec in TABLE.events.items()} == NEWEST_VERSIONS


@pytest.mark.parametrize("release,fields,affected", CHANGELOG, ids=[f"{r} {sorted(f)}" for r, f, _ in CHANGELOG])
def test_each_changelog_entry_is_the_version_that_adds_the_field(release, fields, affected):
    for event_type, version in affected:
        spec = TABLE.event(event_type)
        for name in fields:
            assert name in spec.version(version).added, f"{event_type} v{version} should add {name} ({release})"
            assert name not in spec.fields(version - 1), f"{event_type} has {name} before v{version} ({release})"


def test_up_sale_success_follows_its_field_tables_over_new_sale_success_v1():
    spec = TABLE.event("UpSaleSuccess")
    base = set(TABLE.event("NewSaleSuccess").version(1).added)
    for version, added in UP_SALE_SUCCESS_TABLES.items():
        expected = base | added if version == 1 else added
        assert set(spec.version(version).added) == expected, version
    assert spec.formats(1) == spec.formats(2) == ("urlencoded",)  # "Supported Formats: URL Encoded"
    assert all("json" in spec.formats(v) for v in range(3, 8))  # "Supported Formats: URL Encoded, JSON"


def test_fields_release_6_added_to_all_versions_are_in_version_1():
    for name, event_types in ALL_VERSIONS.items():
        for event_type in event_types:
            assert name in TABLE.event(event_type).fields(1), (name, event_type)


def test_new_sale_success_v5_adds_only_bin_and_carries_the_payment_type_it_does_not_date():
    """Release 5 lists only bin for NewSaleSuccess; paymentType and cardType are on real sales (and on CCBill's
    field page from v5) but no changelog entry dates them, so they mark no version."""
    spec = TABLE.event("NewSaleSuccess")
    assert spec.version(5).added == ("bin",)
    assert not any(name in entry.added for entry in spec.versions for name in ("paymentType", "cardType"))
    assert {"paymentType", "cardType"} <= set(spec.fields(5)) and "paymentType" not in spec.fields(4)


def test_failures_carry_no_subscription_id_and_user_reactivation_no_timestamp():
    for event_type in ("NewSaleFailure", "UpgradeFailure", "UpSaleFailure", "CrossSaleFailure"):
        assert "subscriptionId" not in TABLE.event(event_type).all_fields
        assert {"failureCode", "failureReason"} <= TABLE.event(event_type).all_fields
    assert "timestamp" not in TABLE.event("UserReactivation").all_fields


def test_versions_only_add_fields_and_every_field_is_described():
    for spec in TABLE.events.values():
        seen: set[str] = set()
        for entry in spec.versions:
            assert not seen & set(entry.added), (spec.event_type, entry.version)
            seen |= set(entry.added)
            assert entry.formats and set(entry.formats) <= {"urlencoded", "json"}
        for name in spec.all_fields:
            assert name in TABLE.fields, name
    for name, field in TABLE.fields.items():
        if field.zero_fill:
            assert field.json_number == "int" and len(field.example) == field.zero_fill, name
        assert field.json_number in (None, "int", "decimal"), name


def test_identifiers_are_never_written_as_numbers():
    """19-digit IDs start with a zero (ccbill-facts.md 1.8): as JSON numbers they would lose it."""
    for name in ("subscriptionId", "transactionId", "originalSubscriptionId", "reservationId", "subscriptionTypeId"):
        assert TABLE.field(name).json_number is None
    for name in ("clientAccnum", "expDate", "last4", "bin", "subscriptionInitialPrice", "amount"):
        assert TABLE.field(name).json_number is not None
