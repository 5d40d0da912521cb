"""What the receiver restores, refuses and flags (issue 11): only the identity can make a delivery malformed."""

from __future__ import annotations

import pytest

from billops.webhooks.delivery_decoding import MalformedDelivery
from billops.webhooks.event_types import EventType
from billops.webhooks.field_checks import check_fields
from billops_local.webhook_samples import sample_fields


def test_a_well_formed_delivery_has_no_warnings():
    checked = check_fields(EventType.NEW_SALE_SUCCESS, sample_fields("NewSaleSuccess"))
    assert checked.warnings == {} and checked.transaction_id == sample_fields("NewSaleSuccess")["transactionId"]


def test_zero_filled_columns_are_restored_silently():
    fields = sample_fields("Chargeback", expDate="317", last4="42", clientSubacc="1")
    checked = check_fields(EventType.CHARGEBACK, fields, json_numbers={"expDate", "last4"})
    assert (checked.fields["expDate"], checked.fields["last4"], checked.fields["clientSubacc"]) == ("0317", "0042",
                                                                                                  "0001")
    assert checked.warnings == {}


def test_ids_sent_as_json_numbers_get_their_zeros_back_and_are_flagged():
    fields = sample_fields("Expiration", subscriptionId="126015401000000123")
    checked = check_fields(EventType.EXPIRATION, fields, json_numbers={"subscriptionId"})
    assert checked.fields["subscriptionId"] == "0126015401000000123"
    assert "JSON number" in checked.warnings["subscriptionId"]
    assert check_fields(EventType.EXPIRATION, fields).fields["subscriptionId"] == "126015401000000123"  # as text


@pytest.mark.parametrize("subscription_id", [None, "", "  ", "0126-0154", "abc"])
def test_an_event_about_a_subscription_needs_a_readable_subscription_id(subscription_id):
    with pytest.raises(MalformedDelivery) as raised:
        check_fields(EventType.RENEWAL_SUCCESS, sample_fields("RenewalSuccess", subscriptionId=subscription_id))
    assert raised.value.param == "subscriptionId"


def test_a_declined_purchase_needs_none():
    checked = check_fields(EventType.NEW_SALE_FAILURE, sample_fields("NewSaleFailure", subscriptionId="n/a"))
    assert set(checked.warnings) == {"subscriptionId"}


def test_everything_else_is_flagged_and_kept_as_received():
    fields = sample_fields("RenewalSuccess", billedAmount="19,95", transactionId="TX-1", renewalDate="soon",
                           clientAccnum=None)
    checked = check_fields(EventType.RENEWAL_SUCCESS, fields)
    assert checked.fields == fields
    assert set(checked.warnings) == {"billedAmount", "transactionId", "renewalDate", "clientAccnum"}
    assert checked.warnings["clientAccnum"].startswith("is missing")
    assert checked.transaction_id is None  # an unreadable transactionId does not key the delivery
    assert all(value not in checked.warnings.values() for value in ("19,95", "TX-1", "soon"))
