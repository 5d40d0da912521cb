"""discountSubscription's rules -2, -11, -18 ... -22 (ccbill-discount-subscription.txt), checked before the call."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billops.ccbill.discount_rules import DiscountRejected, plan_discount
from billops.ccbill.errors import CCBillRequestInvalid
from billops.ccbill.subscription_facts import SubscriptionFacts, SubscriptionState

ACTIVE_RECURRING = SubscriptionFacts(state=SubscriptionState.ACTIVE, is_recurring=True,
                                     recurring_price=Decimal("19.95"))


def rejected(code, **kwargs):
    with pytest.raises(DiscountRejected) as error:
        plan_discount(**kwargs)
    assert error.value.ccbill_code == code
    assert f"CCBill would answer {code}" in str(error.value)
    return error.value


def test_a_discount_amount():
    plan = plan_discount(discount_amount="2.00", facts=ACTIVE_RECURRING)
    assert plan.wire_params() == {"discountAmount": "2.00"}
    assert plan.resulting_price == Decimal("17.95")


def test_a_new_recurring_price():
    plan = plan_discount(new_recurring_price="14.95", facts=ACTIVE_RECURRING)
    assert plan.wire_params() == {"newRecurringPrice": "14.95"}


def test_without_facts_only_what_the_values_show_is_checked():
    assert plan_discount(discount_amount="15.00").resulting_price is None
    rejected(-18, new_recurring_price="4.99")


def test_exactly_one_of_the_two_parameters():
    with pytest.raises(CCBillRequestInvalid, match="exactly one"):
        plan_discount(discount_amount="1.00", new_recurring_price="9.95")
    with pytest.raises(CCBillRequestInvalid, match="exactly one"):
        plan_discount()


def test_non_numeric_values_are_refused_by_name():
    with pytest.raises(CCBillRequestInvalid) as error:
        plan_discount(discount_amount="two dollars")
    assert error.value.param == "discountAmount"


def test_minus_19_discount_below_one_cent():
    assert rejected(-19, discount_amount="0.00", facts=ACTIVE_RECURRING).param == "discountAmount"


def test_minus_18_resulting_price_below_five():
    assert rejected(-18, discount_amount="15.00", facts=ACTIVE_RECURRING).param == "discountAmount"
    assert rejected(-18, new_recurring_price="4.95", facts=ACTIVE_RECURRING).param == "newRecurringPrice"
    assert plan_discount(discount_amount="14.95", facts=ACTIVE_RECURRING).resulting_price == Decimal("5.00")


def test_minus_20_new_price_above_current():
    assert rejected(-20, new_recurring_price="24.95", facts=ACTIVE_RECURRING).param == "newRecurringPrice"


def test_minus_21_not_below_an_existing_cancel_discount():
    facts = SubscriptionFacts(state=SubscriptionState.ACTIVE, is_recurring=True, recurring_price=Decimal("19.95"),
                              cancel_discount_price=Decimal("14.95"))
    rejected(-21, new_recurring_price="14.95", facts=facts)
    rejected(-21, discount_amount="1.00", facts=facts)
    assert plan_discount(new_recurring_price="12.95", facts=facts).resulting_price == Decimal("12.95")


@pytest.mark.parametrize("state", [SubscriptionState.CANCELLED, SubscriptionState.EXPIRED])
def test_minus_22_only_active_subscriptions(state):
    facts = SubscriptionFacts(state=state, is_recurring=True, recurring_price=Decimal("19.95"))
    assert rejected(-22, discount_amount="1.00", facts=facts).param == "subscriptionId"


def test_minus_22_active_non_recurring_outside_a_trial():
    facts = SubscriptionFacts(state=SubscriptionState.ACTIVE, is_recurring=False)
    rejected(-22, discount_amount="1.00", facts=facts)


def test_minus_2_new_recurring_price_on_a_non_recurring_subscription():
    facts = SubscriptionFacts(state=SubscriptionState.ACTIVE, is_recurring=False)
    rejected(-2, new_recurring_price="9.95", facts=facts)


def test_minus_11_recurring_price_already_below_five():
    facts = SubscriptionFacts(state=SubscriptionState.ACTIVE, is_recurring=True, recurring_price=Decimal("4.95"))
    rejected(-11, discount_amount="0.50", facts=facts)
