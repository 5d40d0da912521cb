"""The upgrade offered by a link: chosen from the catalogue, described for the consumer, and CCBill's form for it.

The catalogue is the CCBill client's (``BILLOPS_UPGRADE_CATALOGUE``, billops.ccbill.upgrade_catalogue). Two optional
keys per upgrade are read here only, for the page: ``name`` (shown as the offer's title; default: the key,
capitalised) and ``description`` (one sentence under it). The client ignores both.

The form's fields come from the CCBill client's own ``upgrade_form`` (billops.ccbill.client), so a link carries
exactly what the worker's allowUpgrade step 2 or any other caller would send: ``clientAccnum``, ``clientSubacc``,
``enc`` (or ``action``/``subscriptionId``), and the three upgrade variables only when more than one upgrade is
configured ("These three variables can be omitted if only one upgrade is configured",
ccbill-subscription-upgrade-system.txt). The client is given an account-only credentials provider: the account
number comes from the subscription record, and neither the link API nor the public page needs (or may read) the
DataLink login. That client is never used to call CCBill.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from billops.api_errors import ApiError, invalid_request, param_wrong_value
from billops.ccbill import request_validation as check
from billops.ccbill.client import CCBillClient, UpgradeForm
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentials
from billops.ccbill.errors import CCBillRequestInvalid
from billops.ccbill.subaccount_settings import SubaccountDirectory, load_json_setting
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue, UpgradeOption
from billops.reference.currencies import alpha_for

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY"})


# --- configuration, once per container --------------------------------------------------------------------------


@dataclass(frozen=True)
class UpgradeConfiguration:
    """The catalogue, the names shown for its upgrades, the CCBill client's settings and the enc encryptor."""

    catalogue: UpgradeCatalogue
    names: Mapping[str, tuple[str, str | None]]
    client_settings: CCBillClientSettings
    encryptor: Any  # billops.ccbill.upgrade_encryption.UpgradeEncryptor, or None without an upgrade key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UpgradeConfiguration:
        from billops.ccbill.upgrade_encryption import UpgradeEncryptor

        env = os.environ if env is None else env
        settings = CCBillClientSettings.from_env(env)
        return cls(
            catalogue=UpgradeCatalogue.from_config(settings.upgrade_catalogue),
            names=offer_names(settings.upgrade_catalogue),
            client_settings=settings,
            encryptor=UpgradeEncryptor.from_env(env),
        )

    def form(self, client_accnum: str, client_subacc: str, subscription_id: str, upgrade: str | None,
             method: str, *, username: str | None = None, enc: str | None = None) -> UpgradeForm:
        """CCBill's upgrade form for ``method`` "enc" or "backend_post" (no call to CCBill is made); ``username``:
        the subscriber named by username instead (enc only here); ``enc``: one computed earlier."""
        client = CCBillClient(self.client_settings, _AccountOnly(client_accnum), session=_NO_SESSION,
                              catalogue=self.catalogue, subaccounts=_NO_SUBACCOUNTS, encryptor=self.encryptor)
        if username is not None:
            return client.upgrade_form(client_subacc, username=username, upgrade=upgrade, method=method, enc=enc)
        return client.upgrade_form(client_subacc, subscription_id=subscription_id, upgrade=upgrade, method=method,
                                   enc=enc)


_configuration: UpgradeConfiguration | None = None
_configuration_lock = threading.Lock()


def upgrade_configuration() -> UpgradeConfiguration:
    """The container's configuration (the enc key is decrypted once, at the first enc form)."""
    global _configuration
    if _configuration is None:
        with _configuration_lock:
            if _configuration is None:
                _configuration = UpgradeConfiguration.from_env()
    return _configuration


def reset_upgrade_configuration() -> None:
    """Forget the cached configuration (tests change the environment between cases)."""
    global _configuration
    with _configuration_lock:
        _configuration = None


class _AccountOnly:
    """Credentials that carry the account number only; CCBill would refuse them, and they are never sent."""

    def __init__(self, client_accnum: str) -> None:
        self._credentials = CCBillCredentials(client_accnum=check.client_accnum(client_accnum, "client_accnum"),
                                              username="", password="")  # nosec B106  # an empty placeholder: these credentials are never sent

    def get(self, *, force_refresh: bool = False) -> CCBillCredentials:
        return self._credentials


class _RefusingSession:
    """The session of a client that only builds forms: any attempt to send is a bug."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def post(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("the upgrade page's CCBill client builds forms only; it never calls CCBill")


_NO_SESSION: Any = _RefusingSession()
_NO_SUBACCOUNTS = SubaccountDirectory()


def offer_names(catalogue_setting: str | None) -> dict[str, tuple[str, str | None]]:
    """key -> (name shown, description or None), from the catalogue's optional ``name`` / ``description``."""
    raw = load_json_setting(catalogue_setting, "BILLOPS_UPGRADE_CATALOGUE")
    if isinstance(raw, Mapping):
        raw = raw.get("upgrades", [])
    names: dict[str, tuple[str, str | None]] = {}
    for item in raw or []:
        if not isinstance(item, Mapping) or not item.get("key"):
            continue
        key = str(item["key"]).strip()
        name = str(item.get("name") or "").strip() or key.replace("_", " ").replace("-", " ").capitalize()
        description = str(item.get("description") or "").strip() or None
        names[key] = (name[:80], description[:300] if description else None)
    return names


# --- choosing the upgrade -------------------------------------------------------------------------------------------


def choose_upgrade(catalogue: UpgradeCatalogue, *, upgrade_client_accnum: str | None = None,
                   upgrade_client_subacc: str | None = None, upgrade_type_id: str | None = None) -> UpgradeOption:
    """The catalogue upgrade the three (optional) request parameters name; raises ApiError (400) otherwise.

    None given: the only configured upgrade. Some given: the one upgrade matching all of them.
    """
    if not len(catalogue):
        raise invalid_request("No upgrades are configured for this site (BILLOPS_UPGRADE_CATALOGUE is empty).")
    wanted: dict[str, str] = {}
    try:
        if upgrade_client_accnum is not None:
            wanted["upgrade_client_accnum"] = check.client_accnum(upgrade_client_accnum, "upgrade_client_accnum")
        if upgrade_client_subacc is not None:
            wanted["upgrade_client_subacc"] = check.client_subacc(upgrade_client_subacc, "upgrade_client_subacc")
        if upgrade_type_id is not None:
            wanted["upgrade_type_id"] = check.subscription_id(upgrade_type_id, "upgrade_type_id")
    except CCBillRequestInvalid as exc:
        raise param_wrong_value(f"{exc.param} {exc.message}", exc.param) from None
    options = list(catalogue)
    if not wanted:
        if len(options) == 1:
            return options[0]
        raise param_wrong_value(f"{len(options)} upgrades are configured: name one with upgrade_type_id "
                                "(and upgrade_client_accnum / upgrade_client_subacc).", "upgrade_type_id")
    matching = [option for option in options if _matches(option, wanted)]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        param = next(name for name in ("upgrade_type_id", "upgrade_client_subacc", "upgrade_client_accnum")
                     if name in wanted)
        raise param_wrong_value(f"No configured upgrade matches the given {', '.join(sorted(wanted))}.", param)
    missing = next(name for name in ("upgrade_type_id", "upgrade_client_subacc", "upgrade_client_accnum")
                   if name not in wanted)
    raise param_wrong_value(f"{len(matching)} configured upgrades match; give {missing} too.", missing)


def _matches(option: UpgradeOption, wanted: Mapping[str, str]) -> bool:
    if "upgrade_client_accnum" in wanted and option.client_accnum != wanted["upgrade_client_accnum"]:
        return False
    if "upgrade_client_subacc" in wanted and option.client_subacc != wanted["upgrade_client_subacc"]:
        return False
    return "upgrade_type_id" not in wanted or (
        option.subscription_type_id is not None
        and int(option.subscription_type_id) == int(wanted["upgrade_type_id"]))


def is_current_plan(record: Mapping[str, Any], option: UpgradeOption) -> bool:
    """True when the subscription already is what the upgrade would make it (same account, subaccount, type)."""
    type_id = record.get("subscription_type_id")
    if not type_id or option.subscription_type_id is None:
        return False
    try:
        same_type = int(str(type_id)) == int(option.subscription_type_id)
    except ValueError:
        return False
    return (same_type and str(record.get("client_accnum") or "") == option.client_accnum
            and str(record.get("client_subacc") or "").zfill(4) == option.client_subacc)


def require_upgradable(record: Mapping[str, Any]) -> None:
    """409 invalid_state_for_request unless the subscription may be upgraded now."""
    status = record.get("status")
    if status in ("expired", "cancelled", "declined"):
        raise ApiError(409, f"The subscription is {status}; only an active subscription can be upgraded.",
                       "invalid_state_for_request", "invalid_request", None)
    if not record.get("client_accnum") or not record.get("client_subacc"):
        raise ApiError(409, "The subscription's CCBill account and subaccount are not known yet (no sale webhook "
                            "has been received for it).", "invalid_state_for_request", "invalid_request", None)


# --- what the consumer is shown -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSummary:
    """A plan as the page shows it: a title and one or two plain sentences. No personal data."""

    title: str
    price_text: str
    description: str | None = None
    note: str | None = None


def money(amount: Any, currency: str | None) -> str | None:
    """``$19.95`` / ``€19.95`` / ``19.95`` (currency unknown); None when there is no amount."""
    if amount in (None, ""):
        return None
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return None
    alpha = alpha_for(currency) if currency else None
    text = f"{value:.0f}" if alpha in ZERO_DECIMAL_CURRENCIES else f"{value:.2f}"
    if alpha is None:
        return text
    return f"{CURRENCY_SYMBOLS.get(alpha, '')}{text}" if alpha in CURRENCY_SYMBOLS else f"{text} {alpha}"


def _days(period: Any) -> str | None:
    try:
        days = int(period)
    except (TypeError, ValueError):
        return None
    return "1 day" if days == 1 else f"{days} days"


def price_sentence(initial_price: Any, initial_period: Any, recurring_price: Any, recurring_period: Any,
                   currency: str | None, *, recurring: bool | None = None) -> str | None:
    """"$19.95 every 30 days", "$2.95 for the first 3 days, then $19.95 every 30 days", "$19.95 for 30 days"."""
    first, first_days = money(initial_price, currency), _days(initial_period)
    then, then_days = money(recurring_price, currency), _days(recurring_period)
    renews = recurring if recurring is not None else bool(then and then_days)
    if renews and then and then_days:
        try:
            same = (Decimal(str(initial_price)) == Decimal(str(recurring_price))
                    and int(initial_period) == int(recurring_period))
        except (InvalidOperation, ValueError, TypeError):
            same = False
        if same or not (first and first_days):
            return f"{then} every {then_days}"
        return f"{first} for the first {first_days}, then {then} every {then_days}"
    if first and first_days:
        return f"{first} for {first_days}, without renewal"
    return first


def human_date(text: str) -> str:
    """"2026-02-01" -> "1 February 2026" (left as it is when it is not such a date)."""
    try:
        moment = date.fromisoformat(text[:10])
    except ValueError:
        return text
    return f"{moment.day} {moment.strftime('%B %Y')}"


def current_plan(record: Mapping[str, Any]) -> PlanSummary:
    """The subscription as the consumer knows it: price and period, renewal date. Nothing personal."""
    currency = record.get("currency_code") or record.get("currency")
    price = price_sentence(record.get("initial_price"), record.get("initial_period"),
                           record.get("recurring_price"), record.get("recurring_period"), currency,
                           recurring=record.get("recurring"))
    facts = record.get("operation_facts") or {}
    if facts.get("recurring_price") and record.get("recurring"):
        # A discount applied through an operation (no webhook tells of it): the price the consumer now pays.
        price = f"{money(facts['recurring_price'], currency)} every {_days(record.get('recurring_period'))}"
    note = None
    if record.get("next_renewal_date") and record.get("status") == "active" and record.get("recurring"):
        note = f"Renews on {human_date(str(record['next_renewal_date']))}."
    subscription_id = str(record.get("subscription_id") or "")
    return PlanSummary(title=f"Subscription ending in {subscription_id[-4:]}" if subscription_id else "Your plan",
                       price_text=price or "Price not available", note=note)


def offer_summary(option: UpgradeOption, names: Mapping[str, tuple[str, str | None]],
                  fallback_currency: str | None = None) -> PlanSummary:
    name, description = names.get(option.key) or (option.key.capitalize(), None)
    price = None
    if option.has_price_point:
        price = price_sentence(option.initial_price, option.initial_period, option.recurring_price,
                               option.recurring_period, option.currency_code or fallback_currency)
    return PlanSummary(
        title=name,
        price_text=price or "The price is shown on CCBill’s secure page before you confirm.",
        description=description,
    )


__all__ = [
    "PlanSummary",
    "UpgradeConfiguration",
    "choose_upgrade",
    "current_plan",
    "is_current_plan",
    "money",
    "offer_names",
    "offer_summary",
    "price_sentence",
    "require_upgradable",
    "reset_upgrade_configuration",
    "upgrade_configuration",
]
