"""CCBill's webhook event types and the newest version of each (changelog Release 12, 2025-04-29).

Source: ../shared/reference/ccbill-webhooks-upsale-versions-changelog.txt and ccbill-facts.md section 1.5.
"""

from enum import StrEnum


class EventType(StrEnum):
    NEW_SALE_SUCCESS = "NewSaleSuccess"
    NEW_SALE_FAILURE = "NewSaleFailure"
    UPGRADE_SUCCESS = "UpgradeSuccess"
    UPGRADE_FAILURE = "UpgradeFailure"
    UP_SALE_SUCCESS = "UpSaleSuccess"
    UP_SALE_FAILURE = "UpSaleFailure"
    CROSS_SALE_SUCCESS = "CrossSaleSuccess"
    CROSS_SALE_FAILURE = "CrossSaleFailure"
    RENEWAL_SUCCESS = "RenewalSuccess"
    RENEWAL_FAILURE = "RenewalFailure"
    CANCELLATION = "Cancellation"
    EXPIRATION = "Expiration"
    BILLING_DATE_CHANGE = "BillingDateChange"
    CUSTOMER_DATA_UPDATE = "CustomerDataUpdate"
    USER_REACTIVATION = "UserReactivation"
    CHARGEBACK = "Chargeback"
    REFUND = "Refund"
    VOID = "Void"
    RETURN = "Return"
    MANUAL_ADD = "ManualAdd"


LATEST_VERSION: dict[EventType, int] = {
    EventType.NEW_SALE_SUCCESS: 8,
    EventType.NEW_SALE_FAILURE: 5,
    EventType.UPGRADE_SUCCESS: 5,
    EventType.UPGRADE_FAILURE: 4,
    EventType.UP_SALE_SUCCESS: 7,
    EventType.UP_SALE_FAILURE: 5,
    EventType.CROSS_SALE_SUCCESS: 6,
    EventType.CROSS_SALE_FAILURE: 5,
    EventType.RENEWAL_SUCCESS: 7,
    EventType.RENEWAL_FAILURE: 5,
    EventType.CANCELLATION: 2,
    EventType.EXPIRATION: 2,
    EventType.BILLING_DATE_CHANGE: 2,
    EventType.CUSTOMER_DATA_UPDATE: 5,
    EventType.USER_REACTIVATION: 2,
    EventType.CHARGEBACK: 5,
    EventType.REFUND: 5,
    EventType.VOID: 5,
    EventType.RETURN: 5,
    EventType.MANUAL_ADD: 2,
}

FAILURE_TYPES = frozenset(
    {
        EventType.NEW_SALE_FAILURE,
        EventType.UPGRADE_FAILURE,
        EventType.UP_SALE_FAILURE,
        EventType.CROSS_SALE_FAILURE,
    }
)
"""Declined purchases: no subscription was created, so these carry no subscriptionId."""

SALE_TYPES = frozenset(
    {
        EventType.NEW_SALE_SUCCESS,
        EventType.UPGRADE_SUCCESS,
        EventType.UP_SALE_SUCCESS,
        EventType.CROSS_SALE_SUCCESS,
    }
)
"""Approved purchases: each creates a subscription (upgrades, up-sales and cross-sales name the original)."""

MONEY_REVERSAL_TYPES = frozenset({EventType.CHARGEBACK, EventType.REFUND, EventType.VOID, EventType.RETURN})


def parse_event_type(value: str) -> EventType | None:
    """The EventType for CCBill's name, or None for a type this build does not know (kept, never a crash)."""
    try:
        return EventType(value)
    except ValueError:
        return None
