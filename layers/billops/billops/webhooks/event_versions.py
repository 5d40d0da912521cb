"""Which fields each version of each CCBill webhook event added, and the version a delivery looks like.

Sources (nothing here is guessed):
- ../shared/reference/ccbill-webhooks-upsale-versions-changelog.txt ("S2"): the UpSaleSuccess v1-v7 field tables and
  the changelog of every event (Releases 1-12, up to 2025-04-29). The changelog is the authority for *which version*
  added *which field*.
- ../shared/reference/ccbill-facts.md section 1.6: the v1 ("core") field sets, from CCBill's field pages and from
  integrations that model the events (datinglibre/ccbill, real captures in DmytroVasin/ccbill_ruby).

Version 1 of each event lists its core set. Where the changelog names a version without saying what it added (the
release notes of 2013-2014 are incomplete: UpSaleFailure v2, CrossSaleSuccess v2, CrossSaleFailure v2, Return v2),
that version adds no field here: it cannot be told apart from the one before it. Release 11 (2025-02-17) bumped
every event's version with "no new parameters", so those versions cannot be told apart from fields either.

Only the standard library and event_types are imported: this module is on the Lambda cold-start path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from billops.webhooks.event_types import EventType


BOTH_FORMATS = ("urlencoded", "json")
URL_ENCODED_ONLY = ("urlencoded",)


@dataclass(frozen=True)
class EventVersion:
    version: int
    added: frozenset[str]
    """Fields this version added (for version 1: the core set)."""
    release: str
    """The changelog release that introduced this version, e.g. "Release 12 (2025-04-29)"."""
    note: str = ""
    formats: tuple[str, ...] = BOTH_FORMATS
    """The body formats CCBill documents for the version ("Supported Formats"); both where it says nothing."""


def _v(version: int, added: Iterable[str], release: str, note: str = "",
       formats: tuple[str, ...] = BOTH_FORMATS) -> EventVersion:
    return EventVersion(version=version, added=frozenset(added), release=release, note=note, formats=formats)


R1 = "Release 1 (initial)"
R2 = "Release 2 (2013-10-30)"
R3 = "Release 3 (2014-04-24)"
R4 = "Release 4 (2017-04-13)"
R5 = "Release 5 (2017-05-11)"
R6 = "Release 6 (2017-06-01)"
R9 = "Release 9 (2020-02-11)"
R10 = "Release 10 (2022-04-21)"
R11 = "Release 11 (2025-02-17)"
R12 = "Release 12 (2025-04-29)"
UNKNOWN_RELEASE = "not stated in the changelog"

NO_NEW_PARAMETERS = "no new parameters (Release 11: processing optimised); indistinguishable from the previous version"
UNDOCUMENTED = "the changelog does not say what this version added; indistinguishable from the previous version"

# --- core (version 1) field sets -----------------------------------------------------------------------------------

_CUSTOMER = (
    "firstName",
    "lastName",
    "address1",
    "city",
    "state",
    "country",
    "postalCode",
    "email",
    "phoneNumber",
    "ipAddress",
    "reservationId",
    "username",
    "password",
)

_PURCHASE = (
    "transactionId",
    "clientAccnum",
    "clientSubacc",
    "timestamp",
    *_CUSTOMER,
    "formName",
    "priceDescription",
    "recurringPriceDescription",
    "billedInitialPrice",
    "billedRecurringPrice",
    "billedCurrencyCode",
    "subscriptionInitialPrice",
    "subscriptionRecurringPrice",
    "subscriptionCurrencyCode",
    "accountingInitialPrice",
    "accountingRecurringPrice",
    "accountingCurrencyCode",
    "initialPeriod",
    "recurringPeriod",
    "rebills",
    "nextRenewalDate",
    "subscriptionTypeId",
    "dynamicPricingValidationDigest",
    "avsResponse",
    "cvv2Response",
    "affiliateSystem",
    "referringUrl",
    "lifeTimeSubscription",
    "lifeTimePrice",
    "productDesc",
    "prePaid",
)
"""NewSaleSuccess v1 without subscriptionId: what every purchase event (approved or declined) carries."""

SALE_SUCCESS_CORE = frozenset({"subscriptionId", *_PURCHASE})
"""NewSaleSuccess v1 (ccbill-facts.md 1.6, https://ccbill.com/doc/newsalesuccess)."""

SALE_FAILURE_CORE = frozenset({*_PURCHASE, "failureCode", "failureReason"})
"""NewSaleFailure v1: NewSaleSuccess's fields without subscriptionId, plus the failure code and reason."""

ORIGINAL_SUBSCRIPTION = frozenset({"originalSubscriptionId", "originalClientAccnum", "originalClientSubacc", "source"})
"""What UpSaleSuccess v1 adds to NewSaleSuccess (S2, UpSaleSuccess Version 1); shared by upgrades and cross-sales."""

RENEWAL_SUCCESS_CORE = frozenset(
    {
        "transactionId",
        "subscriptionId",
        "clientAccnum",
        "clientSubacc",
        "timestamp",
        "billedAmount",
        "billedCurrency",  # Release 6: "billedCurrency added to RenewalSuccess (all versions)"
        "billedCurrencyCode",
        "accountingAmount",
        "accountingCurrency",  # Release 6: all versions
        "accountingCurrencyCode",
        "nextRenewalDate",
    }
)

RENEWAL_FAILURE_CORE = frozenset(
    {
        "transactionId",
        "subscriptionId",
        "clientAccnum",
        "clientSubacc",
        "timestamp",
        "failureReason",
        "failureCode",
        "nextRetryDate",
    }
)

CANCELLATION_CORE = frozenset({"subscriptionId", "clientAccnum", "clientSubacc", "timestamp", "reason", "source"})
EXPIRATION_CORE = frozenset({"subscriptionId", "clientAccnum", "clientSubacc", "timestamp"})
BILLING_DATE_CHANGE_CORE = frozenset({*EXPIRATION_CORE, "nextRenewalDate"})

CUSTOMER_DATA_UPDATE_CORE = frozenset({"subscriptionId", "clientAccnum", "clientSubacc", "timestamp", *_CUSTOMER})

USER_REACTIVATION_CORE = frozenset(
    {
        "subscriptionId",
        "transactionId",
        "price",
        "clientAccnum",
        "clientSubacc",
        "email",
        "username",
        "password",
        "nextRenewalDate",
    }
)
"""https://ccbill.com/doc/userreactivation (ccbill-facts.md 1.6). No timestamp is documented."""

_MONEY_REVERSAL = (
    "transactionId",
    "subscriptionId",
    "clientAccnum",
    "clientSubacc",
    "timestamp",
    "amount",
    "currencyCode",
    "accountingAmount",
    "accountingCurrencyCode",
    "reason",
)
CHARGEBACK_REFUND_VOID_CORE = frozenset({*_MONEY_REVERSAL, "currency", "accountingCurrency"})
"""Release 6 added currency and accountingCurrency to Chargeback, Refund and Void "(all versions)"."""
RETURN_CORE = frozenset(_MONEY_REVERSAL)

MANUAL_ADD_CORE = frozenset({"clientAccnum", "clientSubacc"})
"""ManualAdd has no field page (ccbill-facts.md 1.5, 8): only the account fields every event carries."""

FLEX_ID_SPELLINGS = frozenset({"flexId", "flexID"})
"""CCBill spells it flexId (NewSaleSuccess, Release 3) and flexID (UpSaleSuccess v2 table); either counts."""

# --- the versions ---------------------------------------------------------------------------------------------------

EVENT_VERSIONS: dict[EventType, tuple[EventVersion, ...]] = {
    EventType.NEW_SALE_SUCCESS: (
        _v(1, SALE_SUCCESS_CORE, R1),
        _v(2, {"paymentAccount"}, R2),
        _v(3, FLEX_ID_SPELLINGS, R3, "flexId, FlexForms only"),
        _v(4, {"expDate", "last4"}, R4),
        # Release 5 lists only bin for NewSaleSuccess v5 (paymentType and cardType went to Chargeback, Refund, Void,
        # Return and the renewals). Real sales carry both (ccbill_ruby, overdoll captures), so they are accepted
        # (INHERITED_OPTIONAL) but mark no version: the changelog is the authority (reference README).
        _v(5, {"bin"}, R5),
        _v(6, {"threeDSecure"}, R9),
        _v(7, (), R11, NO_NEW_PARAMETERS),
        _v(8, {"cardSubType"}, R12),
    ),
    EventType.NEW_SALE_FAILURE: (
        _v(1, SALE_FAILURE_CORE, R1),
        _v(2, FLEX_ID_SPELLINGS, R3, "flexId"),
        _v(3, {"threeDSecure"}, R9),
        _v(4, (), R11, NO_NEW_PARAMETERS),
        _v(5, {"cardSubType"}, R12),
    ),
    EventType.UPGRADE_SUCCESS: (
        _v(1, SALE_SUCCESS_CORE | ORIGINAL_SUBSCRIPTION, R1),
        _v(2, {"bin"}, R5),
        _v(3, {"paymentAccount", "scaResponseStatus"}, R10),
        _v(4, (), R11, NO_NEW_PARAMETERS),
        _v(5, {"cardSubType"}, R12),
    ),
    EventType.UPGRADE_FAILURE: (
        _v(1, SALE_FAILURE_CORE, R1),
        _v(2, {"paymentAccount", "scaResponseStatus"}, R10),
        _v(3, (), R11, NO_NEW_PARAMETERS),
        _v(4, {"cardSubType"}, R12),
    ),
    EventType.UP_SALE_SUCCESS: (
        _v(1, SALE_SUCCESS_CORE | ORIGINAL_SUBSCRIPTION, R1, "NewSaleSuccess's fields plus the original subscription",
           URL_ENCODED_ONLY),
        _v(2, FLEX_ID_SPELLINGS, UNKNOWN_RELEASE, "flexID (UpSaleSuccess Version 2 table)", URL_ENCODED_ONLY),
        _v(3, {"bin"}, R5),
        _v(4, {"expDate", "last4", "paymentAccount"}, "Release 8 (2019-07-23)"),
        _v(5, {"scaResponseStatus"}, R10),
        _v(6, (), R11, NO_NEW_PARAMETERS),
        _v(7, {"cardSubType"}, R12),
    ),
    EventType.UP_SALE_FAILURE: (
        _v(1, SALE_FAILURE_CORE, R1),
        _v(2, (), UNKNOWN_RELEASE, UNDOCUMENTED),
        _v(3, {"paymentAccount", "scaResponseStatus"}, R10),
        _v(4, (), R11, NO_NEW_PARAMETERS),
        _v(5, {"cardSubType"}, R12),
    ),
    EventType.CROSS_SALE_SUCCESS: (
        _v(1, SALE_SUCCESS_CORE | ORIGINAL_SUBSCRIPTION, R1),
        _v(2, (), UNKNOWN_RELEASE, UNDOCUMENTED),
        _v(3, {"bin"}, R5),
        _v(4, {"paymentAccount", "scaResponseStatus"}, R10),
        _v(5, (), R11, NO_NEW_PARAMETERS),
        _v(6, {"cardSubType"}, R12),
    ),
    EventType.CROSS_SALE_FAILURE: (
        _v(1, SALE_FAILURE_CORE, R1),
        _v(2, (), UNKNOWN_RELEASE, UNDOCUMENTED),
        _v(3, {"paymentAccount", "scaResponseStatus"}, R10),
        _v(4, (), R11, NO_NEW_PARAMETERS),
        _v(5, {"cardSubType"}, R12),
    ),
    EventType.RENEWAL_SUCCESS: (
        _v(1, RENEWAL_SUCCESS_CORE, R1),
        _v(2, {"renewalDate"}, R2),
        _v(3, {"expDate", "last4"}, R4),
        _v(4, {"paymentType", "cardType"}, R5),
        _v(5, {"paymentAccount"}, R6),
        _v(6, (), R11, NO_NEW_PARAMETERS),
        _v(7, {"cardSubType"}, R12),
    ),
    EventType.RENEWAL_FAILURE: (
        _v(1, RENEWAL_FAILURE_CORE, R1),
        _v(2, {"renewalDate"}, R2),
        _v(3, {"paymentType", "cardType"}, R5),
        _v(4, (), R11, NO_NEW_PARAMETERS),
        _v(5, {"cardSubType"}, R12),
    ),
    EventType.CANCELLATION: (
        _v(1, CANCELLATION_CORE, R1),
        _v(2, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.EXPIRATION: (
        _v(1, EXPIRATION_CORE, R1),
        _v(2, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.BILLING_DATE_CHANGE: (
        _v(1, BILLING_DATE_CHANGE_CORE, R1),
        _v(2, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.CUSTOMER_DATA_UPDATE: (
        _v(1, CUSTOMER_DATA_UPDATE_CORE, R1),
        _v(2, {"expDate", "last4"}, R4),
        _v(3, {"bin"}, R5),
        _v(4, {"paymentAccount"}, R6),
        _v(5, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.USER_REACTIVATION: (
        _v(1, USER_REACTIVATION_CORE, R1),
        _v(2, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.CHARGEBACK: (
        _v(1, CHARGEBACK_REFUND_VOID_CORE, R1),
        _v(2, {"expDate", "last4"}, R4),
        _v(3, {"bin", "paymentType", "cardType"}, R5),
        _v(4, {"paymentAccount"}, R6),
        _v(5, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.REFUND: (
        _v(1, CHARGEBACK_REFUND_VOID_CORE, R1),
        _v(2, {"expDate", "last4"}, R4),
        _v(3, {"paymentType", "cardType"}, R5),
        _v(4, {"paymentAccount"}, R6),
        _v(5, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.VOID: (
        _v(1, CHARGEBACK_REFUND_VOID_CORE, R1),
        _v(2, {"expDate", "last4"}, R4),
        _v(3, {"paymentType", "cardType"}, R5),
        _v(4, {"paymentAccount"}, R6),
        _v(5, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.RETURN: (
        _v(1, RETURN_CORE, R2, "Return was introduced by Release 2"),
        _v(2, (), UNKNOWN_RELEASE, UNDOCUMENTED),
        _v(3, {"paymentType"}, R5),
        _v(4, {"paymentAccount"}, R6),
        _v(5, (), R11, NO_NEW_PARAMETERS),
    ),
    EventType.MANUAL_ADD: (
        _v(1, MANUAL_ADD_CORE, UNKNOWN_RELEASE, "ManualAdd has no field page"),
        _v(2, (), R11, NO_NEW_PARAMETERS),
    ),
}

PURCHASE_TYPES = (
    EventType.NEW_SALE_SUCCESS,
    EventType.NEW_SALE_FAILURE,
    EventType.UPGRADE_SUCCESS,
    EventType.UPGRADE_FAILURE,
    EventType.UP_SALE_SUCCESS,
    EventType.UP_SALE_FAILURE,
    EventType.CROSS_SALE_SUCCESS,
    EventType.CROSS_SALE_FAILURE,
)

_NEW_SALE_EXTRAS = frozenset(
    {
        "paymentType",  # on real sales (ccbill_ruby, overdoll captures), in no purchase type's changelog entry
        "cardType",
        "threeDSecure",  # Release 9 gave it to NewSale*; UpSaleSuccess "is the same as NewSaleSuccess"
        "billedCurrency",  # alpha variants of the numeric codes, on real sales (ccbill-facts.md 1.6)
        "subscriptionCurrency",
        "accountingCurrency",
        *FLEX_ID_SPELLINGS,  # Release 3 "notes ... to reference the correct base versions" of the related types
    }
)

# field -> the version that introduced it, per event type (version 1 fields map to 1)
_INTRODUCED_IN: dict[EventType, dict[str, int]] = {
    event_type: {name: entry.version for entry in reversed(versions) for name in entry.added}
    for event_type, versions in EVENT_VERSIONS.items()
}


def versions_of(event_type: EventType) -> tuple[EventVersion, ...]:
    """The versions of an event type, oldest first."""
    return EVENT_VERSIONS[event_type]


def fields_of(event_type: EventType, version: int | None = None) -> frozenset[str]:
    """Every field documented for the event type up to `version` (default: the newest)."""
    versions = EVENT_VERSIONS[event_type]
    limit = versions[-1].version if version is None else version
    return frozenset(name for entry in versions if entry.version <= limit for name in entry.added)


def introduced_in(event_type: EventType, field_name: str) -> int | None:
    """The version of the event type that added the field, or None if no version documents it."""
    return _INTRODUCED_IN[event_type].get(field_name)


def detect_version(event_type: EventType, field_names: Iterable[str]) -> int:
    """The lowest version of the event type consistent with the fields present.

    That is the newest "introduced in" version among the fields present; fields that no version documents
    (pass-through X-... variables, eventType copies, fields CCBill adds later) are ignored, and so is the absence
    of optional fields. Versions that added no new parameters (every type's Release 11 version, and the few versions
    whose additions the changelog does not state) look exactly like the version before them: for those the lower
    version is returned, e.g. a current Cancellation (v2) is detected as 1 and an UpSaleSuccess v6 as 5.
    """
    introduced = _INTRODUCED_IN[event_type]
    version = 1
    for name in field_names:
        found = introduced.get(name)
        if found is not None and found > version:
            version = found
    return version



INHERITED_OPTIONAL: dict[EventType, frozenset[str]] = {
    event_type: _NEW_SALE_EXTRAS - frozenset(_INTRODUCED_IN[event_type]) for event_type in PURCHASE_TYPES
}
"""Fields a purchase event may carry that no version of its own adds: NewSaleSuccess's fields that the related
types inherit ("UpSaleSuccess ... is the same as NewSaleSuccess, but with these additional parameters") and fields
real deliveries carry beyond the changelog. Accepted and stored; they mark no version."""


def optional_fields_of(event_type: EventType) -> frozenset[str]:
    """Fields accepted on the event type that mark no version (INHERITED_OPTIONAL)."""
    return INHERITED_OPTIONAL.get(event_type, frozenset())


def accepted_fields_of(event_type: EventType, version: int | None = None) -> frozenset[str]:
    """Everything a delivery of the event type (up to ``version``) may carry besides pass-through ``X-`` fields:
    the documented fields of its versions and the inherited optional ones. What a generator of realistic
    deliveries (the sandbox) draws from."""
    return fields_of(event_type, version) | optional_fields_of(event_type)


def versions_in_format(event_type: EventType, body_format: str) -> tuple[int, ...]:
    """The versions of the event type CCBill documents in ``body_format`` ("urlencoded" or "json")."""
    return tuple(entry.version for entry in EVENT_VERSIONS[event_type] if body_format in entry.formats)
