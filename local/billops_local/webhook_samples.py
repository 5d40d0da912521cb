"""Realistic CCBill webhook payloads, for fixtures, tests, the sample events in events/webhooks/ and the sandbox.

Each sample is the documented field set of the newest version of its event type (billops.webhooks.event_versions),
with fake but plausible values: a 19-digit subscription id with a leading zero, amounts like "19.95" in currency
"840", CCBill's ``YYYY-MM-DD HH:MM:SS`` timestamps, personal data that belongs to nobody (example.com addresses,
an IP address from the documentation range 203.0.113.0/24, a 555-01xx phone number, a test card's BIN and last
four digits). Types that carry the consumer's ``password`` include one, so tests can prove it is dropped.

All values are text, as CCBill posts them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from urllib.parse import urlencode

CLIENT_ACCNUM = "900100"
CLIENT_SUBACC = "0000"
SUBSCRIPTION_ID = "0126015401000000123"
"""The subscription every sample is about (for upgrades/up-sales/cross-sales: the original subscription)."""
TIMESTAMP = "2026-01-15 10:30:00"
SAMPLE_SALT = "local-sandbox-salt"
"""The sandbox's stand-in for the sub-account's encryption key (the dynamic-pricing "salt")."""
EVENT_GROUP_TYPE = "Subscription"

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"

EVENT_TYPES = (
    "NewSaleSuccess",
    "NewSaleFailure",
    "UpgradeSuccess",
    "UpgradeFailure",
    "UpSaleSuccess",
    "UpSaleFailure",
    "CrossSaleSuccess",
    "CrossSaleFailure",
    "RenewalSuccess",
    "RenewalFailure",
    "Cancellation",
    "Expiration",
    "BillingDateChange",
    "CustomerDataUpdate",
    "UserReactivation",
    "Chargeback",
    "Refund",
    "Void",
    "Return",
    "ManualAdd",
)

PASSWORD_TYPES = frozenset(
    {
        "NewSaleSuccess",
        "NewSaleFailure",
        "UpgradeSuccess",
        "UpgradeFailure",
        "UpSaleSuccess",
        "UpSaleFailure",
        "CrossSaleSuccess",
        "CrossSaleFailure",
        "CustomerDataUpdate",
        "UserReactivation",
    }
)
"""Types whose documented fields include the consumer's password."""

SAMPLE_PASSWORD = "Tr0ub4dor-sample-only"  # nosec B105  # a made-up sample value of the local sandbox


def _transaction_id(event_type: str) -> str:
    """A distinct 19-digit transaction id per event type (same station/day prefix as the subscription)."""
    index = EVENT_TYPES.index(event_type) if event_type in EVENT_TYPES else 99
    return f"0126015401{200 + index:09d}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


def _account() -> dict[str, str]:
    return {"clientAccnum": CLIENT_ACCNUM, "clientSubacc": CLIENT_SUBACC}


def _customer() -> dict[str, str]:
    return {
        "firstName": "Jane",
        "lastName": "Doe",
        "address1": "123 Example Street",
        "city": "Springfield",
        "state": "IL",
        "country": "US",
        "postalCode": "62704",
        "email": "jane.doe@example.com",
        "phoneNumber": "555-0142",
        "ipAddress": "203.0.113.42",
        "reservationId": "0126015401000000098",
        "username": "janedoe",
        "password": SAMPLE_PASSWORD,
    }


def _purchase(event_type: str) -> dict[str, str]:
    """NewSaleSuccess v1's fields, without subscriptionId (every purchase event's core)."""
    return {
        "transactionId": _transaction_id(event_type),
        **_account(),
        "timestamp": TIMESTAMP,
        **_customer(),
        "formName": "211cc",
        "priceDescription": "$19.95(USD) for 30 days then $19.95(USD) recurring every 30 days",
        "recurringPriceDescription": "$19.95(USD) recurring every 30 days",
        "billedInitialPrice": "19.95",
        "billedRecurringPrice": "19.95",
        "billedCurrencyCode": "840",
        "billedCurrency": "USD",
        "subscriptionInitialPrice": "19.95",
        "subscriptionRecurringPrice": "19.95",
        "subscriptionCurrencyCode": "840",
        "subscriptionCurrency": "USD",
        "accountingInitialPrice": "19.95",
        "accountingRecurringPrice": "19.95",
        "accountingCurrencyCode": "840",
        "accountingCurrency": "USD",
        "initialPeriod": "30",
        "recurringPeriod": "30",
        "rebills": "99",
        "nextRenewalDate": "2026-02-14",
        "subscriptionTypeId": "0000000464",
        "avsResponse": "Y",
        "cvv2Response": "M",
        "affiliateSystem": "",
        "referringUrl": "https://www.example.com/join",
        "lifeTimeSubscription": "0",
        "lifeTimePrice": "0.00",
        "productDesc": "Example Premium (monthly)",
        "prePaid": "0",
    }


def _card(*names: str) -> dict[str, str]:
    card = {
        "paymentAccount": "57bc7327b5d721d7d20b240c0357e6ed",
        "bin": "411111",
        "last4": "1111",
        "expDate": "0129",
        "paymentType": "CREDIT",
        "cardType": "VISA",
        "cardSubType": "CREDIT",
    }
    return {name: card[name] for name in names}


def _sale_success(event_type: str, subscription_id: str) -> dict[str, str]:
    fields = {"subscriptionId": subscription_id, **_purchase(event_type)}
    # CCBill's approval digest: MD5(subscriptionId + "1" + salt) (ccbill-facts.md 2.6).
    fields["dynamicPricingValidationDigest"] = _md5(subscription_id + "1" + SAMPLE_SALT)
    fields["X-customerRef"] = "cust-0042"  # a pass-through variable from the form URL, echoed back by CCBill
    return fields


def _sale_failure(event_type: str) -> dict[str, str]:
    fields = _purchase(event_type)
    # CCBill's denial digest: MD5(transactionId + "0" + salt) (ccbill-facts.md 2.6).
    fields["dynamicPricingValidationDigest"] = _md5(fields["transactionId"] + "0" + SAMPLE_SALT)
    fields["failureCode"] = "BE-900"
    fields["failureReason"] = "transaction declined"
    fields["X-customerRef"] = "cust-0042"
    return fields


def _original() -> dict[str, str]:
    return {
        "originalSubscriptionId": SUBSCRIPTION_ID,
        "originalClientAccnum": CLIENT_ACCNUM,
        "originalClientSubacc": CLIENT_SUBACC,
        "source": "FORM",
    }


def _subscription() -> dict[str, str]:
    return {"subscriptionId": SUBSCRIPTION_ID, **_account(), "timestamp": TIMESTAMP}


def _money_reversal(event_type: str, reason: str, *, currency_names: bool) -> dict[str, str]:
    fields = {"transactionId": _transaction_id(event_type), **_subscription(), "amount": "19.95", "currencyCode": "840"}
    if currency_names:
        fields["currency"] = "USD"
    fields["accountingAmount"] = "19.95"
    fields["accountingCurrencyCode"] = "840"
    if currency_names:
        fields["accountingCurrency"] = "USD"
    fields["reason"] = reason
    return fields


def _build(event_type: str) -> dict[str, str]:
    if event_type == "NewSaleSuccess":  # v8
        return {
            **_sale_success(event_type, SUBSCRIPTION_ID),
            "flexId": "cb617dcc-8467-49ab-b3a7-735ce1d60ad9",
            **_card("paymentAccount", "expDate", "last4", "bin", "paymentType", "cardType"),
            "threeDSecure": "AUTH_SUCCESS",
            **_card("cardSubType"),
        }
    if event_type == "NewSaleFailure":  # v5
        return {
            **_sale_failure(event_type),
            "flexId": "cb617dcc-8467-49ab-b3a7-735ce1d60ad9",
            "threeDSecure": "AUTH_SUCCESS",  # 3-D Secure passed; the bank declined
            **_card("cardSubType"),
        }
    if event_type == "UpgradeSuccess":  # v5
        return {
            **_sale_success(event_type, "0126015401000000301"),
            **_original(),
            **_card("bin", "paymentAccount"),
            "scaResponseStatus": "Y",
            **_card("cardSubType"),
        }
    if event_type == "UpSaleSuccess":  # v7
        return {
            **_sale_success(event_type, "0126015401000000302"),
            **_original(),
            "flexID": "cb617dcc-8467-49ab-b3a7-735ce1d60ad9",
            **_card("bin", "expDate", "last4", "paymentAccount"),
            "scaResponseStatus": "Y",
            **_card("cardSubType"),
        }
    if event_type == "CrossSaleSuccess":  # v6
        return {
            **_sale_success(event_type, "0126015401000000303"),
            **_original(),
            **_card("bin", "paymentAccount"),
            "scaResponseStatus": "Y",
            **_card("cardSubType"),
        }
    if event_type in ("UpgradeFailure", "UpSaleFailure", "CrossSaleFailure"):  # v4 / v5 / v5
        return {
            **_sale_failure(event_type),
            **_card("paymentAccount"),
            "scaResponseStatus": "N",
            **_card("cardSubType"),
        }
    if event_type == "RenewalSuccess":  # v7
        return {
            "transactionId": _transaction_id(event_type),
            **_subscription(),
            "billedAmount": "19.95",
            "billedCurrency": "USD",
            "billedCurrencyCode": "840",
            "accountingAmount": "19.95",
            "accountingCurrency": "USD",
            "accountingCurrencyCode": "840",
            "nextRenewalDate": "2026-02-14",
            "renewalDate": "2026-01-15",
            **_card("expDate", "last4", "paymentType", "cardType", "paymentAccount", "cardSubType"),
        }
    if event_type == "RenewalFailure":  # v5
        return {
            "transactionId": _transaction_id(event_type),
            **_subscription(),
            "failureCode": "BE-900",
            "failureReason": "transaction declined",
            "nextRetryDate": "2026-01-18",
            "renewalDate": "2026-01-15",
            **_card("paymentType", "cardType", "cardSubType"),
        }
    if event_type == "Cancellation":  # v2
        return {**_subscription(), "reason": "Satisfied Customer", "source": "customerSupport"}
    if event_type == "Expiration":  # v2
        return _subscription()
    if event_type == "BillingDateChange":  # v2
        return {**_subscription(), "nextRenewalDate": "2026-02-21"}
    if event_type == "CustomerDataUpdate":  # v5
        return {
            **_subscription(),
            **_customer(),
            "address1": "456 Sample Avenue",
            "email": "jane.doe+new@example.com",
            **_card("expDate", "last4", "bin", "paymentAccount"),
        }
    if event_type == "UserReactivation":  # v2 (no timestamp is documented)
        return {
            "subscriptionId": SUBSCRIPTION_ID,
            "transactionId": _transaction_id(event_type),
            "price": "19.95 for 30 days (recurring)",
            **_account(),
            "email": "jane.doe@example.com",
            "username": "janedoe",
            "password": SAMPLE_PASSWORD,
            "nextRenewalDate": "2026-02-14",
        }
    if event_type == "Chargeback":  # v5
        return {
            **_money_reversal(event_type, "Charged Back on 01/15/2026", currency_names=True),
            **_card("expDate", "last4", "bin", "paymentType", "cardType", "paymentAccount"),
        }
    if event_type in ("Refund", "Void"):  # v5
        reason = "Customer requested a refund" if event_type == "Refund" else "Threatened CB"
        return {
            **_money_reversal(event_type, reason, currency_names=True),
            **_card("expDate", "last4", "paymentType", "cardType", "paymentAccount"),
        }
    if event_type == "Return":  # v5
        return {
            **_money_reversal(event_type, "Returned check", currency_names=False),
            "paymentType": "CHECK",
            "paymentAccount": "9d2f0c4a1b7e4f55a3c6e8d1f0b2a497",
        }
    # ManualAdd (no field page) and any type this build does not know: the fields every event carries.
    return _subscription()


def sample_fields(event_type: str, **overrides: str | None) -> dict[str, str]:
    """A complete latest-version payload of the event type; overrides replace or add fields (None removes one)."""
    fields = _build(event_type)
    for name, value in overrides.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def encode_body(fields: Mapping[str, str], body_format: str) -> tuple[bytes, str]:
    """The body CCBill would post in the given format ("urlencoded" or "json"), and its Content-Type."""
    if body_format == "urlencoded":
        return urlencode(list(fields.items())).encode("ascii"), FORM_CONTENT_TYPE
    if body_format == "json":
        return json.dumps(dict(fields), ensure_ascii=False).encode("utf-8"), JSON_CONTENT_TYPE
    raise ValueError(f"unknown body format {body_format!r}: use 'urlencoded' or 'json'")


def webhook_query(event_type: str, fields: Mapping[str, str], token: str | None) -> dict[str, str]:
    """The query string of a delivery: our URL's token, then what CCBill appends (ccbill-facts.md 1.1)."""
    query: dict[str, str] = {}
    if token is not None:
        query["token"] = token
    for name in ("clientAccnum", "clientSubacc"):
        if fields.get(name):
            query[name] = fields[name]
    query["eventType"] = event_type
    query["eventGroupType"] = EVENT_GROUP_TYPE
    return query
