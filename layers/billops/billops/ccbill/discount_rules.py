"""discountSubscription's rules, checked before CCBill checks them.

Source: ccbill-discount-subscription.txt (CCBill API addendum, 1.16.2014) and ccbill-facts.md 2.4 (-11):

* -2  a new recurring price cannot be passed in for a non-recurring subscription;
* -11 the subscription is not eligible: its recurring price is less than 5.00;
* -18 a discount cannot result in a recurring price lower than 5.00 units (currency notwithstanding);
* -19 the discount amount cannot be less than 0.01 units;
* -20 the new recurring price cannot be greater than the subscription's recurring price;
* -21 the discount must result in a lower price than an existing cancel discount;
* -22 discounts apply only to an active trial or an active recurring subscription.

The call takes either ``discountAmount`` or ``newRecurringPrice``, never both. A rule whose input the caller does
not know (SubscriptionFacts field left None) is left for CCBill to apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billops.ccbill import request_validation as check
from billops.ccbill.errors import CCBillRequestInvalid
from billops.ccbill.subscription_facts import SubscriptionFacts, SubscriptionState

MIN_RECURRING_PRICE = Decimal("5.00")
MIN_DISCOUNT = Decimal("0.01")

DISCOUNT_AMOUNT = "discountAmount"
NEW_RECURRING_PRICE = "newRecurringPrice"


class DiscountRejected(CCBillRequestInvalid):
    """A discount CCBill would refuse; ``ccbill_code`` is the code it would have answered."""

    def __init__(self, param: str, message: str, ccbill_code: int) -> None:
        super().__init__(param, f"{message} (CCBill would answer {ccbill_code})")
        self.ccbill_code = ccbill_code


@dataclass(frozen=True)
class DiscountPlan:
    param: str  # discountAmount or newRecurringPrice
    value: Decimal
    resulting_price: Decimal | None  # None when the current recurring price is unknown

    def wire_params(self) -> dict[str, str]:
        return {self.param: check.format_price(self.value)}


def plan_discount(
    *,
    discount_amount: object = None,
    new_recurring_price: object = None,
    facts: SubscriptionFacts | None = None,
) -> DiscountPlan:
    """Validate a discount against the rules above; return what to send, or raise DiscountRejected."""
    facts = facts or SubscriptionFacts()
    param = check.exactly_one({DISCOUNT_AMOUNT: discount_amount, NEW_RECURRING_PRICE: new_recurring_price})
    raw = discount_amount if param == DISCOUNT_AMOUNT else new_recurring_price
    # Format first (a non-numeric value is a -7 at CCBill), with no minimum so the rules below can name their code.
    value = check.price(raw, param, minimum=Decimal("0.00"))

    if param == DISCOUNT_AMOUNT and value < MIN_DISCOUNT:
        raise DiscountRejected(param, f"the discount must be at least {MIN_DISCOUNT}, got {value}", -19)

    if param == NEW_RECURRING_PRICE and facts.is_recurring is False:
        raise DiscountRejected(param, "a new recurring price cannot be set on a non-recurring subscription", -2)

    if facts.state is not None and facts.state is not SubscriptionState.ACTIVE:
        raise DiscountRejected("subscriptionId", f"the subscription is {facts.state.value}; discounts apply only to "
                                                 "an active trial or an active recurring subscription", -22)
    if facts.state is SubscriptionState.ACTIVE and facts.is_recurring is False and facts.in_trial is not True:
        raise DiscountRejected("subscriptionId", "the subscription is not recurring and not in a trial; discounts "
                                                 "apply only to an active trial or an active recurring subscription",
                               -22)

    current = facts.recurring_price
    if current is not None and current < MIN_RECURRING_PRICE:
        raise DiscountRejected("subscriptionId", f"the recurring price {current} is below {MIN_RECURRING_PRICE}, so "
                                                 "the subscription cannot be discounted", -11)

    if param == NEW_RECURRING_PRICE:
        resulting: Decimal | None = value
    else:
        resulting = None if current is None else current - value

    if resulting is not None and resulting < MIN_RECURRING_PRICE:
        raise DiscountRejected(param, f"the discounted recurring price would be {resulting}, below the minimum of "
                                      f"{MIN_RECURRING_PRICE}", -18)

    if param == NEW_RECURRING_PRICE and current is not None and value > current:
        raise DiscountRejected(param, f"the new recurring price {value} is greater than the current recurring price "
                                      f"{current}", -20)

    existing = facts.cancel_discount_price
    if existing is not None and resulting is not None and resulting >= existing:
        raise DiscountRejected(param, f"the discounted price {resulting} is not lower than the existing cancel "
                                      f"discount's price {existing}", -21)

    return DiscountPlan(param, value, resulting)
