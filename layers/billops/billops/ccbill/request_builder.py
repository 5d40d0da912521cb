"""CCBill's requests, built and checked without sending anything: the pure half of the CCBill client.

``RequestBuilder`` turns an action's arguments into a ``CCBillRequest`` (action, URL, the action's own parameters,
what the answer will be, the subaccount it is for) after every check billops makes before CCBill could answer: the
identifiers' formats, the discount rules, the destination subaccount's price range and credential lengths, the upgrade
catalogue. It never sends, never reads the DataLink login (only the account number, for the upgrade identity and
the origin subaccount's settings, through ``client_accnum``), and raises CCBillRequestInvalid (or
CCBillCredentialsUnavailable when the account number is needed and unknown).

The client (client.py) sends what it builds, adding the login; the merchant API builds the same request to refuse,
before anything is queued, what the worker would refuse when it runs the operation (merchant_api/operation_requests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billops.ccbill import request_validation as check
from billops.ccbill.answer_interpretation import Expectation
from billops.ccbill.client_settings import UPGRADE_VARIABLE_SPELLINGS, CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentialsUnavailable
from billops.ccbill.discount_rules import plan_discount
from billops.ccbill.errors import CCBillRequestInvalid
from billops.ccbill.subaccount_settings import SubaccountDirectory
from billops.ccbill.subscription_facts import SubscriptionFacts
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue

# CCBill's action names (ccbill-facts.md 2.2).
VIEW_SUBSCRIPTION_STATUS = "viewSubscriptionStatus"
CANCEL_SUBSCRIPTION = "cancelSubscription"
DISCOUNT_SUBSCRIPTION = "discountSubscription"
EXTEND_SUBSCRIPTION = "extendSubscription"
REFUND_TRANSACTION = "refundTransaction"
VOID_TRANSACTION = "voidTransaction"
VOID_OR_REFUND_TRANSACTION = "voidOrRefundTransaction"
CHARGE_BY_PREVIOUS_TRANSACTION_ID = "chargeByPreviousTransactionId"
UPGRADE_SUBSCRIPTION = "upgradeSubscription"
ALLOW_UPGRADE = "allowUpgrade"

SAFE_TO_REPEAT = frozenset({VIEW_SUBSCRIPTION_STATUS, ALLOW_UPGRADE})
"""Actions that change nothing at CCBill, so asking again after a lost answer cannot cost anyone money."""

_RESERVED = frozenset({
    "clientAccnum", "clientSubacc", "usingSubacc", "username", "password", "action", "returnXML", "subscriptionId",
    "newClientAccnum", "newClientSubacc", "initialPrice", "initialPeriod", "recurringPrice", "recurringPeriod",
    "rebills", "currencyCode", "specialOffer", "sharedAuthentication", "prorate",
})



@dataclass(frozen=True)
class CCBillRequest:
    """One request to CCBill, checked, without the login (the client adds it when it sends)."""

    action: str
    url: str
    params: dict[str, str]
    expectation: Expectation
    target_subacc: str | None
    authenticated: bool = True
    param_hints: dict[int, str] | None = None


class RequestBuilder:
    def __init__(self, settings: CCBillClientSettings, catalogue: UpgradeCatalogue, subaccounts: SubaccountDirectory,
                 client_accnum: Callable[[], str]) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.subaccounts = subaccounts
        self._client_accnum = client_accnum  # raises CCBillCredentialsUnavailable when it cannot be known

    def view_subscription_status(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillRequest:
        """The subscription's status document (``outcome.data``; see subscription_facts.facts_from_status)."""
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        return CCBillRequest(VIEW_SUBSCRIPTION_STATUS, self.settings.sms_url, params, Expectation.STATUS_DOCUMENT,
                             target_subacc=_subacc(client_subacc))

    def cancel_subscription(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillRequest:
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        return CCBillRequest(CANCEL_SUBSCRIPTION, self.settings.sms_url, params, Expectation.RESULT_CODE,
                             target_subacc=_subacc(client_subacc))

    def discount_subscription(
        self,
        subscription_id: str,
        *,
        discount_amount: Decimal | str | None = None,
        new_recurring_price: Decimal | str | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
    ) -> CCBillRequest:
        """Lower the recurring price by ``discount_amount`` or to ``new_recurring_price`` (exactly one).

        ``facts`` (what is known of the subscription) lets the rules -2, -11, -18 ... -22 refuse early.
        """
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        plan = plan_discount(discount_amount=discount_amount, new_recurring_price=new_recurring_price, facts=facts)
        params.update(plan.wire_params())
        hints = {code: plan.param for code in (-18, -19, -20, -21)}
        return CCBillRequest(DISCOUNT_SUBSCRIPTION, self.settings.sms_url, params, Expectation.RESULT_CODE,
                             target_subacc=_subacc(client_subacc or (facts.client_subacc if facts else None)),
                             param_hints=hints)

    def extend_subscription(self, subscription_id: str, days: int, *,
                            client_subacc: str | None = None) -> CCBillRequest:
        """Push the subscription's next billing date ``days`` later (``extendLength``)."""
        params = {"subscriptionId": check.subscription_id(subscription_id), "extendLength": str(check.extend_days(days))}
        return CCBillRequest(EXTEND_SUBSCRIPTION, self.settings.sms_url, params, Expectation.RESULT_CODE,
                             target_subacc=_subacc(client_subacc))

    def refund_transaction(self, subscription_id: str, *, amount: Decimal | str | None = None,
                           client_subacc: str | None = None) -> CCBillRequest:
        """Refund a transaction (its ID in ``subscriptionId``); no amount means CCBill's full refund."""
        return self._money_back(REFUND_TRANSACTION, subscription_id, amount, client_subacc)

    def void_transaction(self, subscription_id: str, *, client_subacc: str | None = None) -> CCBillRequest:
        return self._money_back(VOID_TRANSACTION, subscription_id, None, client_subacc)

    def void_or_refund_transaction(self, subscription_id: str, *, amount: Decimal | str | None = None,
                                   client_subacc: str | None = None) -> CCBillRequest:
        """Void if CCBill still can, otherwise refund (beware: a void may cover more than ``amount``)."""
        return self._money_back(VOID_OR_REFUND_TRANSACTION, subscription_id, amount, client_subacc)

    def _money_back(self, action: str, subscription_id: str, amount: Any, client_subacc: str | None) -> CCBillRequest:
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        if amount is not None:
            params["amount"] = check.format_price(check.price(amount, "amount"))
        return CCBillRequest(action, self.settings.sms_url, params, Expectation.RESULT_CODE,
                             target_subacc=_subacc(client_subacc))

    # --- billingApi.cgi ----------------------------------------------------------------------------------------

    def charge_by_previous_transaction_id(
        self,
        subscription_id: str,
        *,
        new_client_accnum: str,
        new_client_subacc: str,
        initial_price: Decimal | str,
        initial_period: int,
        recurring_price: Decimal | str | None = None,
        recurring_period: int | None = None,
        rebills: int | None = None,
        currency_code: str | None = None,
        special_offer: bool | None = None,
        shared_authentication: bool | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
        pass_through: Mapping[str, str] | None = None,
    ) -> CCBillRequest:
        """Charge the card behind ``subscription_id`` for a new subscription in ``new_client_accnum/subacc``.

        On success ``outcome.data["subscriptionId"]`` is the new subscription. The original one is left as it is
        (cancel it separately if this is an upgrade). Never retried: on ``unknown`` look for the UpSaleSuccess
        webhook or ask CCBill before charging again.
        """
        params: dict[str, str] = {"subscriptionId": check.subscription_id(subscription_id)}
        accnum = check.client_accnum(new_client_accnum, "newClientAccnum")
        subacc = check.client_subacc(new_client_subacc, "newClientSubacc")
        initial = check.price(initial_price, "initialPrice")
        period = check.period_days(initial_period, "initialPeriod")
        recurring, recurring_days, rebill_count = self._recurring_terms(recurring_price, recurring_period, rebills)
        currency = None if currency_code is None else check.currency_code(currency_code)

        destination = self.subaccounts.get(accnum, subacc)
        if destination is None:
            raise CCBillRequestInvalid(
                "newClientSubacc",
                f"no settings are configured for the destination subaccount {accnum}/{subacc}; add its price range "
                "and username/password lengths to BILLOPS_CCBILL_SUBACCOUNTS so the upgrade can be checked before "
                "CCBill answers -7",
            )
        destination.check_pricing(initial_price=initial, initial_period=period, recurring_price=recurring,
                                  recurring_period=recurring_days, currency=currency)
        self._check_carried_credentials(destination, facts)

        params.update({
            "newClientAccnum": accnum,
            "newClientSubacc": subacc,
            "initialPrice": check.format_price(initial),
            "initialPeriod": str(period),
            # A single-charge price point still names its recurring terms as zeros: a missing argument is a -7.
            "recurringPrice": check.format_price(recurring) if recurring is not None else "0.00",
            "recurringPeriod": str(recurring_days or 0),
            "rebills": str(rebill_count or 0),
        })
        if currency is not None:
            params["currencyCode"] = currency
        if special_offer is not None:
            params["specialOffer"] = check.flag(special_offer, "specialOffer")
        if shared_authentication is not None:
            params["sharedAuthentication"] = check.flag(shared_authentication, "sharedAuthentication")
        for name, value in (pass_through or {}).items():
            if check.pass_through_name(name) in _RESERVED:
                raise CCBillRequestInvalid(name, "is a CCBill parameter, not a pass-through variable")
            params[name] = str(value)
        return CCBillRequest(CHARGE_BY_PREVIOUS_TRANSACTION_ID, self.settings.billing_api_url, params,
                             Expectation.APPROVAL, target_subacc=_subacc(client_subacc))

    def upgrade_by_previous_transaction(
        self,
        subscription_id: str,
        upgrade: str | None = None,
        *,
        special_offer: bool | None = None,
        shared_authentication: bool | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
    ) -> CCBillRequest:
        """chargeByPreviousTransactionId with the price point of catalogue upgrade ``upgrade``."""
        option = self.catalogue.get(upgrade)
        if not option.has_price_point:
            raise CCBillRequestInvalid("upgrade", f"upgrade {option.key!r} has no price point in the catalogue "
                                                  "(use upgrade_subscription for a CCBill-configured upgrade)")
        return self.charge_by_previous_transaction_id(
            subscription_id,
            new_client_accnum=option.client_accnum,
            new_client_subacc=option.client_subacc,
            initial_price=option.initial_price,  # type: ignore[arg-type]
            initial_period=option.initial_period,  # type: ignore[arg-type]
            recurring_price=option.recurring_price,
            recurring_period=option.recurring_period,
            rebills=option.rebills if option.is_recurring else None,
            currency_code=option.currency_code,
            special_offer=special_offer,
            shared_authentication=shared_authentication,
            facts=facts,
            client_subacc=client_subacc,
        )

    def upgrade_subscription(
        self,
        subscription_id: str,
        upgrade: str | None = None,
        *,
        special_offer: bool | None = None,
        shared_authentication: bool | None = None,
        facts: SubscriptionFacts | None = None,
        client_subacc: str | None = None,
    ) -> CCBillRequest:
        """billingApi's upgradeSubscription (Advanced Dynamic Upgrades) to catalogue upgrade ``upgrade``."""
        params = {"subscriptionId": check.subscription_id(subscription_id)}
        option = self.catalogue.get(upgrade)
        params.update(self.catalogue.upgrade_variables(option, always=True))
        destination = self.subaccounts.get(option.client_accnum, option.client_subacc)
        if destination is not None:
            self._check_carried_credentials(destination, facts)
        if special_offer is not None:
            params["specialOffer"] = check.flag(special_offer, "specialOffer")
        if shared_authentication is not None:
            params["sharedAuthentication"] = check.flag(shared_authentication, "sharedAuthentication")
        return CCBillRequest(UPGRADE_SUBSCRIPTION, self.settings.billing_api_url, params, Expectation.APPROVAL,
                             target_subacc=_subacc(client_subacc))

    # --- Subscription Upgrade System (upgradeSubscription.cgi) ----------------------------------------------

    def allow_upgrade(
        self,
        client_subacc: str,
        *,
        subscription_id: str | None = None,
        username: str | None = None,
        upgrade: str | None = None,
    ) -> CCBillRequest:
        """The backend ``allowUpgrade`` post: the consumer may then use the upgrade form for 30 minutes.

        ``client_subacc`` is the original subscription's subaccount. CCBill authenticates this post by the
        caller's IP address only; no DataLink login is sent. Raises CCBillCredentialsUnavailable when the account
        number cannot be read (it is the one part of the secret this post needs).
        """
        params = self.upgrade_identity(client_subacc, subscription_id, username, upgrade)
        params["action"] = ALLOW_UPGRADE
        return CCBillRequest(ALLOW_UPGRADE, self.settings.upgrade_url, params, Expectation.ALLOW_UPGRADE,
                             target_subacc=None, authenticated=False)

    def upgrade_identity(self, client_subacc: str, subscription_id: str | None, username: str | None,
                         upgrade: str | None, *, spelling: str | None = None) -> dict[str, str]:
        """Who is upgraded, as the Subscription Upgrade System names it (account, subaccount, subscription or
        username, and the upgrade variables in ``spelling``, the setting's by default)."""
        which = check.exactly_one({"subscriptionId": subscription_id, "username": username})
        params = {
            "clientAccnum": self._client_accnum(),
            "clientSubacc": check.client_subacc(client_subacc),
        }
        if which == "subscriptionId":
            params["subscriptionId"] = check.subscription_id(subscription_id)
        else:
            params["username"] = check.consumer_username(username)
        if len(self.catalogue):
            variables = self.catalogue.upgrade_variables(self.catalogue.get(upgrade))
            names = UPGRADE_VARIABLE_SPELLINGS[spelling or self.settings.upgrade_variable_spelling]
            params.update({name: variables[canonical]
                           for name, canonical in zip(names, UPGRADE_VARIABLE_SPELLINGS["examples"], strict=True)
                           if canonical in variables})
        elif upgrade is not None:
            raise CCBillRequestInvalid("upgrade", "no upgrades are configured (BILLOPS_UPGRADE_CATALOGUE)")
        return params

    # --- helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _recurring_terms(price: Any, period: Any, rebills: Any) -> tuple[Decimal | None, int | None, int | None]:
        if price is None and period is None and rebills is None:
            return None, None, None
        if price is None:
            raise CCBillRequestInvalid("recurringPrice", "is required with recurringPeriod and rebills")
        if period is None:
            raise CCBillRequestInvalid("recurringPeriod", "is required with recurringPrice")
        if rebills is None:
            raise CCBillRequestInvalid("rebills", "is required with recurringPrice (99 for until cancelled)")
        return (check.price(price, "recurringPrice"), check.period_days(period, "recurringPeriod"),
                check.rebills(rebills))

    def _check_carried_credentials(self, destination: Any, facts: SubscriptionFacts | None) -> None:
        facts = facts or SubscriptionFacts()
        origin = None
        if facts.client_subacc is not None:
            origin_accnum = facts.client_accnum
            if origin_accnum is None:
                try:
                    origin_accnum = self._client_accnum()
                except CCBillCredentialsUnavailable:
                    origin_accnum = None  # the call itself will report the missing credentials as its outcome
            origin = self.subaccounts.get(origin_accnum, facts.client_subacc)
        destination.check_carried_credentials(username=facts.username, password_length=facts.password_length,
                                              origin=origin)


def _subacc(value: str | None) -> str | None:
    return None if value is None else check.client_subacc(value)
