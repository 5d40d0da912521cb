"""Settings CCBill holds per subaccount that an API upgrade into that subaccount must respect.

ccbill-api-error-7-and-upgrades.txt: an upgrade's initialPrice outside the destination subaccount's price range
answers -7; so does carrying the consumer's username/password into a subaccount whose User Management settings
require other lengths ("If the consumer has a username, which is 6 characters long, while the setting on the
destination has a 10-character minimum, it causes a -7 'Password too short' error"). CCBill offers no API to read
these settings, so the merchant copies them from the Admin Portal (Pricing Admin, User Management) into
``BILLOPS_CCBILL_SUBACCOUNTS``:

    [{"client_accnum": "900100", "client_subacc": "0001",
      "min_price": "2.95", "max_price": "100.00",
      "min_initial_period": 2, "max_initial_period": 365,
      "recurring_periods": [30, 60, 90],
      "currencies": ["840", "978"],
      "username_min_length": 6, "username_max_length": 16,
      "password_min_length": 6, "password_max_length": 16}]

Every key but the two identifiers is optional; an absent limit is not checked. The value is JSON, or the path of a
JSON file (for settings too long for a Lambda environment variable).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from billops.ccbill import request_validation as check
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid


@dataclass(frozen=True)
class SubaccountSettings:
    client_accnum: str
    client_subacc: str
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_initial_period: int | None = None
    max_initial_period: int | None = None
    recurring_periods: tuple[int, ...] | None = None
    currencies: tuple[str, ...] | None = None
    username_min_length: int | None = None
    username_max_length: int | None = None
    password_min_length: int | None = None
    password_max_length: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.client_accnum, self.client_subacc)

    @property
    def label(self) -> str:
        return f"{self.client_accnum}/{self.client_subacc}"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SubaccountSettings:
        try:
            def opt_price(name: str) -> Decimal | None:
                return None if raw.get(name) is None else check.price(raw[name], name)

            def opt_int(name: str) -> int | None:
                return None if raw.get(name) is None else check.whole_number(raw[name], name, minimum=0,
                                                                             maximum=100_000)

            periods = raw.get("recurring_periods")
            currencies = raw.get("currencies")
            return cls(
                client_accnum=check.client_accnum(raw.get("client_accnum"), "client_accnum"),
                client_subacc=check.client_subacc(raw.get("client_subacc"), "client_subacc"),
                min_price=opt_price("min_price"),
                max_price=opt_price("max_price"),
                min_initial_period=opt_int("min_initial_period"),
                max_initial_period=opt_int("max_initial_period"),
                recurring_periods=None if periods is None else tuple(
                    check.period_days(p, "recurring_periods") for p in periods),
                currencies=None if currencies is None else tuple(
                    check.currency_code(c, "currencies") for c in currencies),
                username_min_length=opt_int("username_min_length"),
                username_max_length=opt_int("username_max_length"),
                password_min_length=opt_int("password_min_length"),
                password_max_length=opt_int("password_max_length"),
            )
        except CCBillRequestInvalid as exc:
            raise CCBillConfigurationError(f"BILLOPS_CCBILL_SUBACCOUNTS: {exc}") from None

    def check_pricing(
        self,
        *,
        initial_price: Decimal,
        initial_period: int,
        recurring_price: Decimal | None,
        recurring_period: int | None,
        currency: str | None,
        price_params: tuple[str, str] = ("initialPrice", "recurringPrice"),
    ) -> None:
        """Refuse a price point this subaccount would answer -7 for."""
        initial_param, recurring_param = price_params
        for param, amount in ((initial_param, initial_price), (recurring_param, recurring_price)):
            if amount is None:
                continue
            if self.min_price is not None and amount < self.min_price:
                raise CCBillRequestInvalid(param, f"{amount} is below the minimum price {self.min_price} of "
                                                  f"subaccount {self.label} (CCBill would answer -7)")
            if self.max_price is not None and amount > self.max_price:
                raise CCBillRequestInvalid(param, f"{amount} is above the maximum price {self.max_price} of "
                                                  f"subaccount {self.label} (CCBill would answer -7)")
        if self.min_initial_period is not None and initial_period < self.min_initial_period or (
            self.max_initial_period is not None and initial_period > self.max_initial_period
        ):
            raise CCBillRequestInvalid("initialPeriod", f"{initial_period} days is outside the range "
                                                        f"{self.min_initial_period}-{self.max_initial_period} of "
                                                        f"subaccount {self.label} (CCBill would answer -7)")
        if recurring_period is not None and self.recurring_periods is not None and (
            recurring_period not in self.recurring_periods
        ):
            allowed = ", ".join(str(p) for p in self.recurring_periods)
            raise CCBillRequestInvalid("recurringPeriod", f"{recurring_period} days is not one of the recurring "
                                                          f"periods ({allowed}) of subaccount {self.label}")
        if currency is not None and self.currencies is not None and currency not in self.currencies:
            allowed = ", ".join(self.currencies)
            raise CCBillRequestInvalid("currencyCode", f"{currency} is not a currency of subaccount {self.label} "
                                                       f"({allowed}); CCBill would answer -7")

    def check_carried_credentials(
        self,
        *,
        username: str | None,
        password_length: int | None,
        origin: SubaccountSettings | None,
    ) -> None:
        """Refuse an upgrade whose carried-over username/password this subaccount would reject with -7.

        With the consumer's values known, they are checked against this subaccount's limits. Without them, the
        origin's limits must fall inside this subaccount's (CCBill: "the username/password requirements on both
        the originating and destination sub-account need to match"), or some consumer will hit -7.
        """
        for param, length, minimum, maximum in (
            ("username", None if username is None else len(username), self.username_min_length,
             self.username_max_length),
            ("password", password_length, self.password_min_length, self.password_max_length),
        ):
            if minimum is None and maximum is None:
                continue
            if length is not None:
                if minimum is not None and length < minimum:
                    raise CCBillRequestInvalid(param, f"the consumer's {param} has {length} characters; subaccount "
                                                      f"{self.label} requires at least {minimum} (CCBill would "
                                                      f"answer -7 'Password too short')")
                if maximum is not None and length > maximum:
                    raise CCBillRequestInvalid(param, f"the consumer's {param} has {length} characters; subaccount "
                                                      f"{self.label} allows at most {maximum} (CCBill would "
                                                      f"answer -7)")
                continue
            if origin is None:
                continue
            origin_min = getattr(origin, f"{param}_min_length")
            origin_max = getattr(origin, f"{param}_max_length")
            too_short = minimum is not None and (origin_min is None or origin_min < minimum)
            too_long = maximum is not None and (origin_max is None or origin_max > maximum)
            if too_short or too_long:
                raise CCBillRequestInvalid(
                    param,
                    f"subaccount {origin.label} allows {param}s of {origin_min or 'any'}-{origin_max or 'any'} "
                    f"characters but {self.label} requires {minimum or 'any'}-{maximum or 'any'}; pass the "
                    f"consumer's {param} length in SubscriptionFacts so it can be checked (CCBill would answer "
                    "-7 for one that does not fit)",
                )


class SubaccountDirectory:
    """The configured subaccounts, by (clientAccnum, clientSubacc)."""

    def __init__(self, settings: Iterable[SubaccountSettings] = ()) -> None:
        self._by_key: dict[tuple[str, str], SubaccountSettings] = {}
        for entry in settings:
            if entry.key in self._by_key:
                raise CCBillConfigurationError(f"BILLOPS_CCBILL_SUBACCOUNTS lists {entry.label} twice")
            self._by_key[entry.key] = entry

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[SubaccountSettings]:
        return iter(self._by_key.values())

    def get(self, client_accnum: str | None, client_subacc: str | None) -> SubaccountSettings | None:
        if client_accnum is None or client_subacc is None:
            return None
        return self._by_key.get((client_accnum, client_subacc.zfill(4)))

    @classmethod
    def from_config(cls, value: str | None) -> SubaccountDirectory:
        raw = load_json_setting(value, "BILLOPS_CCBILL_SUBACCOUNTS")
        if raw is None:
            return cls()
        if isinstance(raw, Mapping):
            raw = raw.get("subaccounts", [])
        if not isinstance(raw, list):
            raise CCBillConfigurationError("BILLOPS_CCBILL_SUBACCOUNTS must be a JSON list of subaccounts")
        return cls(SubaccountSettings.from_mapping(item) for item in raw)


def load_json_setting(value: str | None, name: str) -> Any:
    """A JSON setting given inline (starts with '{' or '[') or as the path of a JSON file; None when unset."""
    text = (value or "").strip()
    if not text:
        return None
    if not text.startswith(("{", "[")):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise CCBillConfigurationError(f"{name}: cannot read {value!r}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CCBillConfigurationError(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
