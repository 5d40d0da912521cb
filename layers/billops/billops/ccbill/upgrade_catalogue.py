"""The upgrades CCBill has set up for the merchant, as configuration.

Upgrades through the Subscription Upgrade System are "set up entirely by CCBill Staff" from, for each subaccount
involved, the account, the subaccount and the pricing (a Subscription Type ID, or initial price/period, recurring
price/period, rebills) - ccbill-subscription-upgrade-system.txt. The same facts drive API upgrades
(``upgradeSubscription`` on billingApi.cgi needs upgradeTypeId/upgradeClientAccnum/upgradeClientSubacc) and
``chargeByPreviousTransactionId`` upgrades (newClientAccnum/newClientSubacc plus the price point). Each upgrade has
a key the rest of the project uses ("gold", "annual"...). ``BILLOPS_UPGRADE_CATALOGUE``:

    {"upgrades": [{"key": "gold", "client_accnum": "900100", "client_subacc": "0001",
                   "subscription_type_id": "0015",
                   "initial_price": "19.95", "initial_period": 30,
                   "recurring_price": "19.95", "recurring_period": 30, "rebills": 99,
                   "currency_code": "840"}]}

(JSON inline, or the path of a JSON file). When exactly one upgrade is configured, the three upgrade variables are
left out of upgradeSubscription.cgi requests and of ``enc``: "These three variables can be omitted if only one
upgrade is configured. In this case, that price point will be the one used for the upgrade."
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billops.ccbill import request_validation as check
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.subaccount_settings import load_json_setting


@dataclass(frozen=True)
class UpgradeOption:
    key: str
    client_accnum: str
    client_subacc: str
    subscription_type_id: str | None = None
    initial_price: Decimal | None = None
    initial_period: int | None = None
    recurring_price: Decimal | None = None
    recurring_period: int | None = None
    rebills: int | None = None
    currency_code: str | None = None

    @property
    def has_price_point(self) -> bool:
        return self.initial_price is not None and self.initial_period is not None

    @property
    def is_recurring(self) -> bool:
        return self.recurring_price is not None and self.recurring_period is not None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> UpgradeOption:
        key = str(raw.get("key") or "").strip()
        if not key:
            raise CCBillConfigurationError("BILLOPS_UPGRADE_CATALOGUE: every upgrade needs a key")
        try:
            type_id = raw.get("subscription_type_id")
            option = cls(
                key=key,
                client_accnum=check.client_accnum(raw.get("client_accnum"), "client_accnum"),
                client_subacc=check.client_subacc(raw.get("client_subacc"), "client_subacc"),
                subscription_type_id=None if type_id is None else check.subscription_id(type_id,
                                                                                         "subscription_type_id"),
                initial_price=_opt(raw, "initial_price", check.price),
                initial_period=_opt(raw, "initial_period", check.period_days),
                recurring_price=_opt(raw, "recurring_price", check.price),
                recurring_period=_opt(raw, "recurring_period", check.period_days),
                rebills=_opt(raw, "rebills", check.rebills),
                currency_code=_opt(raw, "currency_code", check.currency_code),
            )
        except CCBillRequestInvalid as exc:
            raise CCBillConfigurationError(f"BILLOPS_UPGRADE_CATALOGUE, upgrade {key!r}: {exc}") from None
        if option.subscription_type_id is None and not option.has_price_point:
            raise CCBillConfigurationError(f"BILLOPS_UPGRADE_CATALOGUE, upgrade {key!r}: give subscription_type_id "
                                           "or a price point (initial_price and initial_period)")
        if (option.recurring_price is None) != (option.recurring_period is None):
            raise CCBillConfigurationError(f"BILLOPS_UPGRADE_CATALOGUE, upgrade {key!r}: recurring_price and "
                                           "recurring_period go together")
        return option


def _opt(raw: Mapping[str, Any], name: str, validator: Any) -> Any:
    return None if raw.get(name) is None else validator(raw[name], name)


class UpgradeCatalogue:
    def __init__(self, options: Iterable[UpgradeOption] = ()) -> None:
        self._options: dict[str, UpgradeOption] = {}
        for option in options:
            if option.key in self._options:
                raise CCBillConfigurationError(f"BILLOPS_UPGRADE_CATALOGUE lists upgrade {option.key!r} twice")
            self._options[option.key] = option

    def __len__(self) -> int:
        return len(self._options)

    def __iter__(self):
        return iter(self._options.values())

    def get(self, key: str | None) -> UpgradeOption:
        """The upgrade called ``key``; with one upgrade configured, ``key`` may be left out."""
        if key is None:
            if len(self._options) == 1:
                return next(iter(self._options.values()))
            raise CCBillRequestInvalid("upgrade", f"name the upgrade: {len(self._options)} are configured "
                                                  f"({', '.join(self._options) or 'none'})")
        option = self._options.get(key)
        if option is None:
            raise CCBillRequestInvalid("upgrade", f"no upgrade {key!r} in the catalogue (configured: "
                                                  f"{', '.join(self._options) or 'none'})")
        return option

    def upgrade_variables(self, option: UpgradeOption, *, always: bool = False) -> dict[str, str]:
        """upgradeClientAccnum / upgradeClientSubacc / upgradeTypeId, or nothing when only one upgrade exists.

        ``always`` is for billingApi's upgradeSubscription, which identifies the upgrade by these variables.
        """
        if len(self._options) == 1 and not always:
            return {}
        if option.subscription_type_id is None:
            raise CCBillConfigurationError(f"BILLOPS_UPGRADE_CATALOGUE, upgrade {option.key!r}: several upgrades "
                                           "are configured, so each needs its subscription_type_id (upgradeTypeId)")
        return {
            "upgradeClientAccnum": option.client_accnum,
            "upgradeClientSubacc": option.client_subacc,
            "upgradeTypeId": option.subscription_type_id,
        }

    @classmethod
    def from_config(cls, value: str | None) -> UpgradeCatalogue:
        raw = load_json_setting(value, "BILLOPS_UPGRADE_CATALOGUE")
        if raw is None:
            return cls()
        if isinstance(raw, Mapping):
            raw = raw.get("upgrades", [])
        if not isinstance(raw, list):
            raise CCBillConfigurationError("BILLOPS_UPGRADE_CATALOGUE must hold a JSON list of upgrades")
        return cls(UpgradeOption.from_mapping(item) for item in raw)
