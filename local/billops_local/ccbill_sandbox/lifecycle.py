"""What happens to a sandbox subscription, and the webhook each change sends.

Shared by the CCBill API actions (rules.py) and the admin endpoints (server.py). Every method runs under the state
lock held by its caller and emits its webhooks through ``emit`` in the order CCBill would send them.

Choices where CCBill's public material is silent (docs/ccbill-client.md lists them):
* a refund, void or chargeback ends the subscription: the money event, then Cancellation (reason "Customer
  Refunded" / "Transaction Voided" / "Charged Back") if it was still active, then Expiration - open-rails reports
  that a refund "also cancels+expires the subscription, even partial", and CCBill's own Cancellation captures carry
  the reason "Customer Refunded";
* an upgrade (billingApi upgradeSubscription, the upgrade form) expires the original subscription, which the
  UpgradeSuccess webhook names in originalSubscriptionId; a chargeByPreviousTransactionId leaves it untouched (the
  merchant cancels it separately, ccbill-facts.md 2.7);
* extendSubscription moves the next billing date (BillingDateChange) or, for a cancelled subscription, the end of
  its paid period (no webhook).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from billops_local.ccbill_sandbox import webhooks
from billops_local.ccbill_sandbox.state import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    Charge,
    Reversal,
    SandboxState,
    Subscription,
)

Emit = Callable[[str, dict[str, str]], None]

REVERSAL_EVENTS = {"refund": "Refund", "void": "Void", "chargeback": "Chargeback"}
REVERSAL_CANCEL_REASONS = {"refund": "Customer Refunded", "void": "Transaction Voided", "chargeback": "Charged Back"}


class Lifecycle:
    def __init__(self, state: SandboxState, emit: Emit) -> None:
        self.state = state
        self.emit = emit

    def create_subscription(
        self,
        *,
        client_accnum: str,
        client_subacc: str,
        initial_price: Decimal,
        initial_period: int,
        recurring_price: Decimal,
        recurring_period: int,
        rebills: int,
        currency_code: str,
        username: str | None = None,
        email: str | None = None,
        password: str | None = None,
        subscription_type_id: str | None = None,
        cancel_discount_price: Decimal | None = None,
        passthrough: dict[str, str] | None = None,
        event_type: str = "NewSaleSuccess",
        original: Subscription | None = None,
        source: str | None = None,
    ) -> Subscription:
        state = self.state
        now = state.now()
        subscription_id = state.new_id()
        number = len(state.subscriptions) + 1
        username = username or f"member{number:04d}"
        sub = Subscription(
            subscription_id=subscription_id,
            client_accnum=client_accnum,
            client_subacc=client_subacc,
            initial_price=initial_price,
            initial_period=initial_period,
            recurring_price=recurring_price,
            recurring_period=recurring_period,
            rebills=rebills,
            currency_code=currency_code,
            username=username,
            email=email or f"{username}@example.com",
            password=password or f"sandbox-pw-{number:04d}",
            signup_date=now,
            subscription_type_id=subscription_type_id or "0000000000",
            cancel_discount_price=cancel_discount_price,
            upgraded_from=original.subscription_id if original else None,
            passthrough=dict(passthrough or {}),
        )
        sub.paid_through = now + timedelta(days=initial_period)
        if sub.is_recurring:
            sub.next_billing_date = sub.paid_through
        else:
            sub.expiration_date = sub.paid_through
        # The initial charge's transaction ID is the subscription ID, as in CCBill's NewSaleSuccess captures.
        sub.charges.append(Charge(subscription_id, "initial", initial_price, currency_code, now))
        state.subscriptions[subscription_id] = sub
        state.record_money("charge", sub, subscription_id, initial_price)
        self.emit(event_type, webhooks.sale_fields(event_type, sub, now, transaction_id=subscription_id,
                                                   original=original, source=source))
        return sub

    def renew(self, sub: Subscription, *, success: bool = True, failure_code: str = "BE-140",
              failure_reason: str = "Transaction Denied by Bank") -> dict[str, str]:
        state = self.state
        now = state.now()
        transaction_id = state.new_id()
        if not success:
            next_retry = now + timedelta(days=3)
            self.emit("RenewalFailure", webhooks.renewal_failure_fields(
                sub, now, transaction_id=transaction_id, failure_code=failure_code, failure_reason=failure_reason,
                next_retry=next_retry))
            return {"transaction_id": transaction_id, "result": "failure"}
        amount = sub.recurring_price
        sub.charges.append(Charge(transaction_id, "renewal", amount, sub.currency_code, now))
        sub.times_rebilled += 1
        start = max(now, sub.paid_through or now)
        sub.paid_through = start + timedelta(days=sub.recurring_period)
        sub.next_billing_date = sub.paid_through if sub.times_rebilled < sub.rebills else None
        if sub.next_billing_date is None:
            sub.expiration_date = sub.paid_through
        state.record_money("charge", sub, transaction_id, amount)
        self.emit("RenewalSuccess", webhooks.renewal_fields(sub, now, transaction_id=transaction_id, amount=amount))
        return {"transaction_id": transaction_id, "result": "success", "amount": f"{amount:.2f}"}

    def cancel(self, sub: Subscription, *, reason: str, source: str) -> None:
        now = self.state.now()
        sub.status = CANCELLED
        sub.cancel_date = now
        sub.next_billing_date = None
        sub.expiration_date = sub.paid_through
        self.emit("Cancellation", webhooks.simple_fields("Cancellation", sub, now, reason=reason, source=source))

    def expire(self, sub: Subscription) -> None:
        now = self.state.now()
        sub.status = EXPIRED
        sub.next_billing_date = None
        sub.expiration_date = now
        self.emit("Expiration", webhooks.simple_fields("Expiration", sub, now))

    def reverse(self, sub: Subscription, charge: Charge, kind: str, amount: Decimal, reason: str) -> Reversal:
        """A refund, void or chargeback of ``charge``; then the subscription ends (see the module docstring)."""
        state = self.state
        now = state.now()
        transaction_id = state.new_id()
        if kind == "refund":
            charge.refunded += amount
        elif kind == "void":
            charge.voided = True
        else:
            charge.charged_back = True
        reversal = Reversal(transaction_id, kind, charge.transaction_id, amount, sub.currency_code, now)
        sub.reversals.append(reversal)
        state.record_money(kind, sub, transaction_id, -amount, of_transaction_id=charge.transaction_id)
        self.emit(REVERSAL_EVENTS[kind], webhooks.reversal_fields(REVERSAL_EVENTS[kind], sub, now,
                                                                  transaction_id=transaction_id, amount=amount,
                                                                  reason=reason))
        if sub.status == ACTIVE:
            self.cancel(sub, reason=REVERSAL_CANCEL_REASONS[kind], source="API")
        if sub.status != EXPIRED:
            self.expire(sub)
        return reversal

    def extend(self, sub: Subscription, days: int) -> None:
        now = self.state.now()
        delta = timedelta(days=days)
        sub.paid_through = (sub.paid_through or now) + delta
        if sub.status == ACTIVE and sub.next_billing_date is not None:
            sub.next_billing_date += delta
            self.emit("BillingDateChange", webhooks.simple_fields(
                "BillingDateChange", sub, now, nextRenewalDate=webhooks.ccbill_date(sub.next_billing_date)))
        else:
            sub.expiration_date = sub.paid_through

    def discount(self, sub: Subscription, param: str, value: Decimal, resulting: Decimal) -> None:
        sub.discounts.append({"param": param, "value": f"{value:.2f}", "from": f"{sub.recurring_price:.2f}",
                              "to": f"{resulting:.2f}", "at": webhooks.ccbill_timestamp(self.state.now())})
        sub.recurring_price = resulting

    def upgrade(self, original: Subscription, *, event_type: str, client_accnum: str, client_subacc: str,
                initial_price: Decimal, initial_period: int, recurring_price: Decimal, recurring_period: int,
                rebills: int, currency_code: str, subscription_type_id: str | None, source: str,
                replaces_original: bool) -> Subscription:
        new = self.create_subscription(
            client_accnum=client_accnum, client_subacc=client_subacc, initial_price=initial_price,
            initial_period=initial_period, recurring_price=recurring_price, recurring_period=recurring_period,
            rebills=rebills, currency_code=currency_code, username=original.username, email=original.email,
            password=original.password, subscription_type_id=subscription_type_id, event_type=event_type,
            original=original, source=source,
        )
        if replaces_original:
            original.upgraded_to = new.subscription_id
            original.status = EXPIRED
            original.next_billing_date = None
            original.expiration_date = self.state.now()
        return new
