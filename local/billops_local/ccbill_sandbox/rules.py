"""CCBill's API as the sandbox applies it: authentication, the actions, their documented rules and result codes.

Sources: ccbill-facts.md 2.1-2.4, ccbill-discount-subscription.txt, ccbill-api-error-7-and-upgrades.txt and
ccbill-subscription-upgrade-system.txt. Where CCBill documents a code, the sandbox answers it:

* no clientAccnum/username/password, an unknown account or subaccount scope -> -1; a wrong username or password
  -> -7 (the -7 article: "If an API request contains an incorrect username or password, the action is going to be
  denied and result in the -7 error code"), counted: from the third failure in an hour every login answers -12;
  DataLink not enabled -> -10; caller IP not allowed -> -8; action not granted to the user -> -9;
* unknown action -> -6; missing subscriptionId -> -5; a non-numeric one -> -2; no such subscription -> -3; a
  subscription of another account or outside the subaccount scope -> -4;
* discountSubscription: -2, -11, -18, -19, -20, -21, -22 as the addendum describes;
* non-numeric prices, periods or amounts -> -7; on billingApi.cgi, a missing argument, an unknown destination, a
  price or period outside the destination's range, a currency it does not take, and a username/password outside
  its User Management lengths -> -7 ('Password too short');
* an action that does not apply to the subscription's state (cancel an expired subscription, void a refunded
  charge...) -> 0, "the requested action failed"; cancel or discount a non-recurring one -> -2.

allowUpgrade's refusal values were lost from every public copy of the guide; the sandbox answers its own:
0 authorization denied, -1 username/subscriptionId not provided, -2 no active subscription, -3 invalid
subscription ID (docs/ccbill-client.md). The client does not depend on them: anything but 1 is a refusal.

The Subscription Upgrade System, strict where the guide is:
* an account accepts the one Security Type it is set up with (SandboxAccount.upgrade_security): ``encryption``
  reads ``enc`` and answers allowUpgrade 0 (authorization denied), ``backend_post`` answers allowUpgrade from its
  allowed IPs and refuses every ``enc``;
* the ``enc`` plaintext must be the subscriber's identity and nothing else - ``subscriptionId=<id>`` or
  ``username=<name>`` ("Will be inclusive of either the subscriptionId or username"; the bare value with the
  'bare' recipe); identity fields posted beside it are ignored, the upgrade variables are read from the form;
* the three upgrade variables are required when more than one upgrade is configured ("These three variables can
  be omitted if only one upgrade is configured"), in either of the guide's spellings (its tables write
  ``upgradeclientAccnum``/``upgradeTypeID`` for the backend post, its examples ``upgradeClientAccnum``/
  ``upgradeTypeId``).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from billops.reference.currencies import normalise_numeric

from billops_local.ccbill_sandbox.accounts import DataLinkUser, SandboxAccount, SandboxSubaccount
from billops_local.ccbill_sandbox.lifecycle import Lifecycle
from billops_local.ccbill_sandbox.state import ACTIVE, EXPIRED, SandboxState, Subscription

SMS_PATH = "/utils/subscriptionManagement.cgi"
BILLING_API_PATH = "/jpost/billingApi.cgi"
UPGRADE_PATH = "/jpost/upgradeSubscription.cgi"
CCBILL_PATHS = (SMS_PATH, BILLING_API_PATH, UPGRADE_PATH)

SMS_ACTIONS = frozenset({
    "viewSubscriptionStatus", "cancelSubscription", "discountSubscription", "extendSubscription",
    "refundTransaction", "voidTransaction", "voidOrRefundTransaction",
})
BILLING_ACTIONS = frozenset({"chargeByPreviousTransactionId", "upgradeSubscription"})
UPGRADE_FORM_ACTION = "upgradeSubscription"
ALLOW_UPGRADE = "allowUpgrade"

MIN_RECURRING_PRICE = Decimal("5.00")
LOGIN_LOCKOUT = timedelta(hours=1)
UPGRADE_WINDOW = timedelta(minutes=30)
VOID_WINDOW = timedelta(hours=24)
"""The sandbox's stand-in for settlement: a charge can be voided for a day, refunded after."""
DEFAULT_DECLINE = ("24", "Transaction Denied by Bank")  # decline code 24 of Appendix B

_PRICE = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
_DIGITS = re.compile(r"^\d+$")


@dataclass
class Answer:
    """What to send back: a result code, a document, a bare value (allowUpgrade) or an HTML page (upgrade form)."""

    kind: str  # code | document | bare | page
    code: int | None = None
    fields: dict[str, str] = field(default_factory=dict)
    title: str = ""
    message: str = ""
    applied: bool = False

    @classmethod
    def result(cls, code: int, applied: bool = False) -> Answer:
        return cls("code", code=code, applied=applied)


def _price(text: str | None) -> Decimal | None:
    value = (text or "").strip()
    return Decimal(value) if _PRICE.match(value) else None


def _whole(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if _DIGITS.match(value) else None


def action_of(path: str, params: dict[str, str]) -> str:
    """The action a request asks for (the upgrade form with ``enc`` counts as upgradeSubscription)."""
    action = (params.get("action") or "").strip()
    if path == UPGRADE_PATH and not action and params.get("enc"):
        return UPGRADE_FORM_ACTION
    return action or "(none)"


class CCBillRules:
    def __init__(self, state: SandboxState, lifecycle: Lifecycle, *, upgrade_key: Any = None,
                 enc_recipe: Any = None) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.upgrade_key = upgrade_key  # billops.ccbill.upgrade_encryption.UpgradeKey, to read enc
        self.enc_recipe = enc_recipe

    def handle(self, path: str, params: dict[str, str], client_ip: str, *, decline: bool = False,
               http_method: str = "POST") -> Answer:
        with self.state.lock:
            if path == UPGRADE_PATH:
                return self._upgrade_system(params, client_ip, perform=http_method != "GET")
            action = (params.get("action") or "").strip()
            allowed = SMS_ACTIONS if path == SMS_PATH else BILLING_ACTIONS
            auth = self._authenticate(params, client_ip, action)
            if isinstance(auth, Answer):
                return auth
            account, scope = auth
            if action not in allowed:
                return Answer.result(-6)
            return getattr(self, f"_{action}")(params, account, scope, decline)

    # --- authentication ---------------------------------------------------------------------------------------

    def _authenticate(self, params: dict[str, str], client_ip: str,
                      action: str) -> Answer | tuple[SandboxAccount, str | None]:
        accnum = (params.get("clientAccnum") or "").strip()
        username = params.get("username") or ""
        password = params.get("password") or ""
        if not accnum or not username or not password:
            return Answer.result(-1)
        account = self.state.accounts.get(accnum)
        if account is None:
            return Answer.result(-1)
        if not account.datalink_enabled:
            return Answer.result(-10)
        now = self.state.now()
        failures = [t for t in self.state.failed_logins.get(accnum, []) if now - t < LOGIN_LOCKOUT]
        self.state.failed_logins[accnum] = failures
        if len(failures) >= 3:
            return Answer.result(-12)
        user = self._match_user(account, username, password)
        if user is None:
            failures.append(now)
            return Answer.result(-7)
        if user.allowed_ips is not None and not _ip_allowed(client_ip, user.allowed_ips):
            return Answer.result(-8)
        if user.permissions is not None and action not in user.permissions:
            return Answer.result(-9)
        client_subacc = (params.get("clientSubacc") or "").strip() or None
        using_subacc = (params.get("usingSubacc") or "").strip() or None
        if user.subacc is not None:
            if client_subacc is None or client_subacc.zfill(4) != user.subacc:
                return Answer.result(-1)
            scope: str | None = user.subacc
        else:
            scope = using_subacc or client_subacc
        if scope is not None:
            if not _DIGITS.match(scope) or account.subaccount(scope) is None:
                return Answer.result(-1)
            scope = scope.zfill(4)
        return account, scope

    @staticmethod
    def _match_user(account: SandboxAccount, username: str, password: str) -> DataLinkUser | None:
        for user in account.datalink_users:
            same_name = hmac.compare_digest(user.username.encode(), username.encode())
            same_password = hmac.compare_digest(user.password.encode(), password.encode())
            if same_name and same_password:
                return user
        return None

    def _subscription(self, params: dict[str, str], account: SandboxAccount, scope: str | None,
                      *, missing: int = -5) -> Answer | Subscription:
        subscription_id = (params.get("subscriptionId") or "").strip()
        if not subscription_id:
            return Answer.result(missing)
        if not _DIGITS.match(subscription_id):
            return Answer.result(-2)
        sub = self.state.subscriptions.get(subscription_id)
        if sub is None:
            return Answer.result(-3)
        if sub.client_accnum != account.client_accnum or (scope is not None and sub.client_subacc != scope):
            return Answer.result(-4)
        return sub

    # --- Subscription Management ------------------------------------------------------------------------------

    def _viewSubscriptionStatus(self, params, account, scope, decline) -> Answer:
        sub = self._subscription(params, account, scope)
        if isinstance(sub, Answer):
            return sub

        def stamp(moment: Any, fmt: str = "%Y%m%d%H%M%S") -> str:
            return "" if moment is None else moment.strftime(fmt)

        fields = {
            "cancelDate": stamp(sub.cancel_date),
            "signupDate": stamp(sub.signup_date),
            "chargebacksIssued": str(sum(1 for r in sub.reversals if r.kind == "chargeback")),
            "expirationDate": stamp(sub.expiration_date),
            "nextBillingDate": stamp(sub.next_billing_date, "%Y%m%d"),
            "recurringSubscription": "1" if sub.is_recurring else "0",
            "refundsIssued": str(sum(1 for r in sub.reversals if r.kind == "refund")),
            "subscriptionStatus": sub.status_code,
            "timesRebilled": str(sub.times_rebilled),
            "voidsIssued": str(sum(1 for r in sub.reversals if r.kind == "void")),
        }
        return Answer("document", fields=fields)

    def _cancelSubscription(self, params, account, scope, decline) -> Answer:
        sub = self._subscription(params, account, scope)
        if isinstance(sub, Answer):
            return sub
        if not sub.is_recurring:
            return Answer.result(-2)
        if sub.status != ACTIVE:
            return Answer.result(0)
        self.lifecycle.cancel(sub, reason="Cancelled by merchant", source="API")
        return Answer.result(1, applied=True)

    def _discountSubscription(self, params, account, scope, decline) -> Answer:
        sub = self._subscription(params, account, scope)
        if isinstance(sub, Answer):
            return sub
        given = [name for name in ("discountAmount", "newRecurringPrice") if (params.get(name) or "").strip()]
        if len(given) != 1:
            return Answer.result(-5)
        param = given[0]
        value = _price(params[param])
        if value is None:
            return Answer.result(-7)
        if param == "discountAmount" and value < Decimal("0.01"):
            return Answer.result(-19)
        if param == "newRecurringPrice" and not sub.is_recurring:
            return Answer.result(-2)
        if sub.status != ACTIVE or not (sub.is_recurring or sub.in_trial):
            return Answer.result(-22)
        current = sub.recurring_price
        if current < MIN_RECURRING_PRICE:
            return Answer.result(-11)
        resulting = value if param == "newRecurringPrice" else current - value
        if resulting < MIN_RECURRING_PRICE:
            return Answer.result(-18)
        if param == "newRecurringPrice" and value > current:
            return Answer.result(-20)
        if sub.cancel_discount_price is not None and resulting >= sub.cancel_discount_price:
            return Answer.result(-21)
        self.lifecycle.discount(sub, param, value, resulting)
        return Answer.result(1, applied=True)

    def _extendSubscription(self, params, account, scope, decline) -> Answer:
        sub = self._subscription(params, account, scope)
        if isinstance(sub, Answer):
            return sub
        raw = (params.get("extendLength") or "").strip()
        if not raw:
            return Answer.result(-5)
        days = _whole(raw)
        if days is None:
            return Answer.result(-7)
        if days < 1:
            return Answer.result(-5)
        if sub.status == EXPIRED:
            return Answer.result(0)
        self.lifecycle.extend(sub, days)
        return Answer.result(1, applied=True)

    def _money_back(self, params, account, scope, kind: str) -> Answer:
        transaction_id = (params.get("subscriptionId") or "").strip()
        if not transaction_id:
            return Answer.result(-5)
        if not _DIGITS.match(transaction_id):
            return Answer.result(-2)
        sub = self.state.subscriptions.get(transaction_id)
        charge = sub.charge(transaction_id) if sub else None
        if sub is None:
            # Not a subscription ID: the ID of one of its charges (a renewal's transactionId).
            for candidate in self.state.subscriptions.values():
                charge = candidate.charge(transaction_id)
                if charge is not None:
                    sub = candidate
                    break
        if sub is None or charge is None:
            return Answer.result(-3)
        if sub.client_accnum != account.client_accnum or (scope is not None and sub.client_subacc != scope):
            return Answer.result(-4)
        raw_amount = (params.get("amount") or "").strip()
        amount = None
        if raw_amount:
            amount = _price(raw_amount)
            if amount is None:
                return Answer.result(-7)
        remaining = charge.reversible_amount
        if remaining <= 0:
            return Answer.result(0)
        now = self.state.now()
        if kind == "voidOrRefund":
            kind = "void" if now - charge.at < VOID_WINDOW and charge.refunded == 0 else "refund"
        if kind == "void":
            if now - charge.at >= VOID_WINDOW or charge.refunded > 0:
                return Answer.result(0)
            # A void cancels the whole transaction, whatever amount was asked for.
            self.lifecycle.reverse(sub, charge, "void", charge.amount, "Voided by merchant")
            return Answer.result(1, applied=True)
        amount = remaining if amount is None else amount
        if amount <= 0 or amount > remaining:
            return Answer.result(-5)
        self.lifecycle.reverse(sub, charge, "refund", amount, "Refunded by merchant")
        return Answer.result(1, applied=True)

    def _refundTransaction(self, params, account, scope, decline) -> Answer:
        return self._money_back(params, account, scope, "refund")

    def _voidTransaction(self, params, account, scope, decline) -> Answer:
        return self._money_back(params, account, scope, "void")

    def _voidOrRefundTransaction(self, params, account, scope, decline) -> Answer:
        return self._money_back(params, account, scope, "voidOrRefund")

    # --- billingApi.cgi --------------------------------------------------------------------------------------

    def _chargeByPreviousTransactionId(self, params, account, scope, decline) -> Answer:
        original = self._subscription(params, account, scope, missing=-7)
        if isinstance(original, Answer):
            return original
        dest_accnum = (params.get("newClientAccnum") or "").strip()
        dest_subacc = (params.get("newClientSubacc") or "").strip()
        destination_account = self.state.accounts.get(dest_accnum)
        destination = destination_account.subaccount(dest_subacc) if destination_account and _DIGITS.match(
            dest_subacc or "x") else None
        if destination is None:
            return Answer.result(-7)
        initial_price = _price(params.get("initialPrice"))
        initial_period = _whole(params.get("initialPeriod"))
        recurring_price = _price(params.get("recurringPrice") or "0")
        recurring_period = _whole(params.get("recurringPeriod") or "0")
        rebills = _whole(params.get("rebills") or "0")
        if None in (initial_price, initial_period, recurring_price, recurring_period, rebills):
            return Answer.result(-7)
        currency = normalise_numeric(params["currencyCode"]) if params.get("currencyCode") else "840"
        if currency is None or currency not in destination.currencies:
            return Answer.result(-7)
        if not _price_point_fits(destination, initial_price, initial_period, recurring_price, recurring_period):
            return Answer.result(-7)
        if not _credentials_fit(destination, original):
            return Answer.result(-7)  # 'Password too short'
        if decline:
            return self._decline("UpSaleFailure", original, dest_accnum, destination.subacc, initial_price,
                                 initial_period, currency)
        new = self.lifecycle.upgrade(
            original, event_type="UpSaleSuccess", client_accnum=dest_accnum, client_subacc=destination.subacc,
            initial_price=initial_price, initial_period=initial_period, recurring_price=recurring_price,
            recurring_period=recurring_period, rebills=rebills, currency_code=currency, subscription_type_id=None,
            source="API", replaces_original=False)
        return Answer("document", fields={"approved": "1", "subscriptionId": new.subscription_id}, applied=True)

    def _upgradeSubscription(self, params, account, scope, decline) -> Answer:
        original = self._subscription(params, account, scope, missing=-7)
        if isinstance(original, Answer):
            return original
        upgrade = _configured_upgrade(account, params)
        if upgrade is None:
            return Answer.result(-7)
        if original.status == EXPIRED:
            return Answer.result(0)
        destination = self.state.accounts[upgrade.client_accnum].subaccount(upgrade.client_subacc)
        if destination is None or not _credentials_fit(destination, original):
            return Answer.result(-7)
        if decline:
            return self._decline("UpgradeFailure", original, upgrade.client_accnum, upgrade.client_subacc,
                                 upgrade.initial_price, upgrade.initial_period, upgrade.currency_code)
        new = self._perform_upgrade(original, upgrade, source="API")
        return Answer("document", fields={"approved": "1", "subscriptionId": new.subscription_id}, applied=True)

    def _perform_upgrade(self, original: Subscription, upgrade: Any, source: str) -> Subscription:
        return self.lifecycle.upgrade(
            original, event_type="UpgradeSuccess", client_accnum=upgrade.client_accnum,
            client_subacc=upgrade.client_subacc, initial_price=upgrade.initial_price,
            initial_period=upgrade.initial_period, recurring_price=upgrade.recurring_price,
            recurring_period=upgrade.recurring_period, rebills=upgrade.rebills, currency_code=upgrade.currency_code,
            subscription_type_id=upgrade.subscription_type_id, source=source, replaces_original=True)

    def _decline(self, event_type: str, original: Subscription, accnum: str, subacc: str, price: Decimal,
                 period: int, currency: str) -> Answer:
        from billops_local.ccbill_sandbox import webhooks

        transaction_id = self.state.new_id()
        code, text = DEFAULT_DECLINE
        fields = webhooks.sale_failure_fields(
            event_type, original, self.state.now(), transaction_id=transaction_id, client_accnum=accnum,
            client_subacc=subacc, initial_price=price, initial_period=period, currency_code=currency,
            decline_code=code, decline_text=text)
        # As the success events do (the guide's UpSaleSuccess table; assumed for the failures,
        # docs/ccbill-assumptions.md): which subscription the declined upgrade was for.
        fields.update({"originalSubscriptionId": original.subscription_id,
                       "originalClientAccnum": original.client_accnum, "originalClientSubacc": original.client_subacc})
        self.lifecycle.emit(event_type, fields)
        return Answer("document", fields={"approved": "0", "denialId": transaction_id, "declineCode": code,
                                          "declineText": text})

    # --- Subscription Upgrade System -------------------------------------------------------------------------

    def _upgrade_system(self, params: dict[str, str], client_ip: str, *, perform: bool = True) -> Answer:
        """``perform=False`` (a GET: a link opened in a browser, e.g. ``billops ccbill check``'s test link): the
        same checks, then CCBill's upgrade form is shown instead of upgrading - the sandbox's stand-in for the
        form the guide says CCBill shows the consumer ("Upgrades require an upgrade form"); its POST upgrades."""
        action = (params.get("action") or "").strip()
        account = self.state.accounts.get((params.get("clientAccnum") or "").strip())
        if params.get("enc") and not action:
            return self._upgrade_form_enc(account, params, perform=perform)
        if action == ALLOW_UPGRADE:
            return self._allow_upgrade(account, params, client_ip)
        if action == UPGRADE_FORM_ACTION:
            return self._upgrade_form_allowed(account, params, perform=perform)
        return _page("Upgrade Denied", "Unknown request.")

    def _upgrade_target(self, account: SandboxAccount | None, params: dict[str, str]) -> Any:
        """(subscription, configured upgrade) or an allowUpgrade refusal value."""
        if account is None or not account.upgrades:
            return "0"
        subacc = (params.get("clientSubacc") or "").strip()
        if not _DIGITS.match(subacc or "x") or account.subaccount(subacc) is None:
            return "0"
        subscription_id = (params.get("subscriptionId") or "").strip()
        username = (params.get("username") or "").strip()
        if not subscription_id and not username:
            return "-1"
        upgrade = _configured_upgrade(account, params)
        if upgrade is None:
            return "-1"
        if subscription_id:
            if not _DIGITS.match(subscription_id):
                return "-3"
            sub = self.state.subscriptions.get(subscription_id)
            if sub is None or sub.client_accnum != account.client_accnum:
                return "-3"
        else:
            sub = next((s for s in self.state.subscriptions.values()
                        if s.username == username and s.client_accnum == account.client_accnum
                        and s.status != EXPIRED), None)
            if sub is None:
                return "-2"
        if sub.client_subacc != subacc.zfill(4) or sub.status == EXPIRED:
            return "-2"
        return sub, upgrade

    def _allow_upgrade(self, account: SandboxAccount | None, params: dict[str, str], client_ip: str) -> Answer:
        if account is not None and account.upgrade_security != "backend_post":
            return Answer("bare", code=0)  # "Authorization Denied (Either account is not setup to upgrade, ...)"
        if account is not None and account.upgrade_allowed_ips is not None and not _ip_allowed(
                client_ip, account.upgrade_allowed_ips):
            return Answer("bare", code=0)
        target = self._upgrade_target(account, params)
        if isinstance(target, str):
            return Answer("bare", code=int(target))
        sub, upgrade = target
        self.state.upgrade_allowances[(sub.subscription_id, upgrade.key)] = self.state.now() + UPGRADE_WINDOW
        return Answer("bare", code=1, applied=True)

    def _upgrade_form_allowed(self, account: SandboxAccount | None, params: dict[str, str], *,
                              perform: bool = True) -> Answer:
        target = self._upgrade_target(account, params)
        if isinstance(target, str):
            return _page("Upgrade Denied", f"The upgrade is not available ({target}).")
        sub, upgrade = target
        allowances = self.state.upgrade_allowances
        key = (sub.subscription_id, upgrade.key)
        until = allowances.pop(key, None) if perform else allowances.get(key)
        if until is None or self.state.now() > until:
            return _page("Upgrade Denied", "No allowUpgrade was received for this subscription in the last 30 "
                                           "minutes.")
        return self._consumer_upgrade(sub, upgrade) if perform else _upgrade_form_page(upgrade)

    def _upgrade_form_enc(self, account: SandboxAccount | None, params: dict[str, str], *,
                          perform: bool = True) -> Answer:
        if account is not None and account.upgrade_security != "encryption":
            return _page("Upgrade Denied", "This account's upgrade security type is Backend HTTPS Post: an enc "
                                           "value is not accepted.")
        if self.upgrade_key is None:
            return _page("Upgrade Denied", "The sandbox has no upgrade key (BILLOPS_UPGRADE_KEY).")
        from billops.ccbill.upgrade_encryption import EncRecipe, decrypt, identity_from_plaintext

        recipe = self.enc_recipe or EncRecipe()
        try:
            plaintext = decrypt(self.upgrade_key, params["enc"], recipe)
        except (ValueError, UnicodeDecodeError):
            return _page("Upgrade Denied", "The enc value could not be decrypted with the account's key.")
        identity = identity_from_plaintext(plaintext, recipe)
        if identity is None:
            return _page("Upgrade Denied", "The enc value must hold the subscriber's subscriptionId or username "
                                           "and nothing else.")
        # The identity is the enc's alone: a subscriptionId or username posted beside it is not read.
        merged = {name: value for name, value in params.items() if name not in ("subscriptionId", "username")}
        merged[identity[0]] = identity[1]
        target = self._upgrade_target(account, merged)
        if isinstance(target, str):
            return _page("Upgrade Denied", f"The upgrade is not available ({target}).")
        sub, upgrade = target
        return self._consumer_upgrade(sub, upgrade) if perform else _upgrade_form_page(upgrade)

    def _consumer_upgrade(self, sub: Subscription, upgrade: Any) -> Answer:
        destination = self.state.accounts[upgrade.client_accnum].subaccount(upgrade.client_subacc)
        if destination is None or not _credentials_fit(destination, sub):
            return _page("Upgrade Denied", "Your username or password does not meet the requirements of the "
                                           "upgraded subscription.")
        new = self._perform_upgrade(sub, upgrade, source="FORM")
        return Answer("page", title="Upgrade Approved", message="Your subscription has been upgraded.",
                      fields={"subscriptionId": new.subscription_id, "originalSubscriptionId": sub.subscription_id},
                      applied=True)


def _page(title: str, message: str) -> Answer:
    return Answer("page", title=title, message=message)


def _upgrade_form_page(upgrade: Any) -> Answer:
    """CCBill's upgrade form, shown and not submitted: nothing is charged."""
    return Answer("page", title="Upgrade Your Subscription",
                  message="Confirm the upgrade (CVV2) to be charged; nothing has been charged yet.",
                  fields={"upgradeTypeId": upgrade.subscription_type_id,
                          "price": f"{upgrade.initial_price} for {upgrade.initial_period} days"})


def _ip_allowed(client_ip: str, allowed: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allowed)


def _configured_upgrade(account: SandboxAccount, params: dict[str, str]) -> Any:
    """The upgrade the request names, or the only one configured when the three variables are left out."""
    names = ("upgradeClientAccnum", "upgradeClientSubacc", "upgradeTypeId")
    values = [(params.get(n) or params.get(n.replace("Client", "client")) or params.get(n.replace("Id", "ID"))
               or "").strip() for n in names]
    if not any(values):
        return account.upgrades[0] if len(account.upgrades) == 1 else None
    accnum, subacc, type_id = values
    for upgrade in account.upgrades:
        if (upgrade.client_accnum == accnum and upgrade.client_subacc == subacc.zfill(4)
                and upgrade.subscription_type_id == type_id):
            return upgrade
    return None


def _price_point_fits(sub: SandboxSubaccount, initial_price: Decimal, initial_period: int,
                      recurring_price: Decimal, recurring_period: int) -> bool:
    if not sub.min_price <= initial_price <= sub.max_price:
        return False
    if not sub.min_initial_period <= initial_period <= sub.max_initial_period:
        return False
    if recurring_price > 0 or recurring_period > 0:
        if not sub.min_price <= recurring_price <= sub.max_price:
            return False
        if recurring_period not in sub.recurring_periods:
            return False
    return True


def _credentials_fit(destination: SandboxSubaccount, sub: Subscription) -> bool:
    return (destination.username_min_length <= len(sub.username) <= destination.username_max_length
            and destination.password_min_length <= len(sub.password) <= destination.password_max_length)


__all__ = ["CCBILL_PATHS", "Answer", "CCBillRules", "action_of"]
