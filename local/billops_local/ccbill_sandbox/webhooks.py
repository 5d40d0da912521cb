"""The sandbox's webhook deliveries: CCBill's payloads, posted in the background, retried, recorded.

The functions below say what the sandbox knows about an event (the subscription's IDs, account, prices, dates and
consumer); ``webhook_generator.WebhookGenerator`` makes the delivery from CCBill's field table, in the version and
format configured (``POST /sandbox/config``, ``BILLOPS_SANDBOX_WEBHOOK_*``), with the variation and seed configured.
Deliveries go out one at a time, in the order the events happened, to ``{webhook_url}&eventType=...
&eventGroupType=Subscription&clientAccnum=...&clientSubacc=...`` as CCBill appends them (ccbill-facts.md 1.1), from
127.0.0.1 (the receiver allows loopback in local mode) with ``X-Forwarded-For: 64.38.240.10``, a CCBill Phoenix
address, for realism only.

A delivery that fails (connection refused, timeout, 5xx) is retried a few times; a 4xx is the receiver's final word
and is not. Nothing a delivery does ever reaches the API call that caused it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from billops.reference.currencies import alpha_for
from billops.webhooks.ccbill_time import ccbill_zone

from billops_local import webhook_samples
from billops_local.ccbill_sandbox.state import Subscription
from billops_local.ccbill_sandbox.webhook_config import FORMAT_CHOICES, WebhookConfig, new_seed
from billops_local.ccbill_sandbox.webhook_generator import GeneratedDelivery, WebhookGenerator

logger = logging.getLogger("billops_local.ccbill_sandbox")

CCBILL_SOURCE_ADDRESS = "64.38.240.10"
BODY_FORMATS = FORMAT_CHOICES
Values = dict[str, str | None]
"""Documented fields the sandbox knows for an event (None: leave the field out); the generator adds the rest."""


def ccbill_timestamp(moment: datetime) -> str:
    """CCBill's ``timestamp``: the moment in CCBill's time zone (BILLOPS_CCBILL_TIMEZONE, docs/ccbill-assumptions.md),
    without a zone, as CCBill writes it."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(ccbill_zone(os.environ.get("BILLOPS_CCBILL_TIMEZONE")))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def ccbill_date(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d")


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _price_description(sub: Subscription) -> tuple[str, str]:
    alpha = alpha_for(sub.currency_code) or sub.currency_code
    initial = f"{_money(sub.initial_price)}({alpha}) for {sub.initial_period} days"
    if not sub.is_recurring:
        return f"{initial} (non-recurring)", ""
    recurring = f"{_money(sub.recurring_price)}({alpha}) recurring every {sub.recurring_period} days"
    return f"{initial} then {recurring}", recurring


def account_fields(sub: Subscription) -> dict[str, str]:
    return {"subscriptionId": sub.subscription_id, "clientAccnum": sub.client_accnum,
            "clientSubacc": sub.client_subacc}


def sale_fields(event_type: str, sub: Subscription, now: datetime, *, transaction_id: str,
                original: Subscription | None = None, source: str | None = None) -> Values:
    """NewSaleSuccess / UpgradeSuccess / UpSaleSuccess for ``sub``."""
    alpha = alpha_for(sub.currency_code) or ""
    description, recurring_description = _price_description(sub)
    recurring_price = _money(sub.recurring_price) if sub.is_recurring else "0.00"
    values: Values = {
        **account_fields(sub),
        "transactionId": transaction_id,
        "timestamp": ccbill_timestamp(now),
        "email": sub.email,
        "username": sub.username,
        "password": sub.password,
        "priceDescription": description,
        "recurringPriceDescription": recurring_description,
        "billedInitialPrice": _money(sub.initial_price),
        "billedRecurringPrice": recurring_price,
        "billedCurrencyCode": sub.currency_code,
        "billedCurrency": alpha,
        "subscriptionInitialPrice": _money(sub.initial_price),
        "subscriptionRecurringPrice": recurring_price,
        "subscriptionCurrencyCode": sub.currency_code,
        "subscriptionCurrency": alpha,
        "accountingInitialPrice": _money(sub.initial_price),
        "accountingRecurringPrice": recurring_price,
        "accountingCurrencyCode": sub.currency_code,
        "accountingCurrency": alpha,
        "initialPeriod": str(sub.initial_period),
        "recurringPeriod": str(sub.recurring_period if sub.is_recurring else 0),
        "rebills": str(sub.rebills if sub.is_recurring else 0),
        "nextRenewalDate": ccbill_date(sub.next_billing_date),
        "subscriptionTypeId": sub.subscription_type_id,
        # CCBill's approval digest: MD5(subscriptionId + "1" + salt) (ccbill-facts.md 2.6).
        "dynamicPricingValidationDigest": hashlib.md5(
            (sub.subscription_id + "1" + webhook_samples.SAMPLE_SALT).encode("ascii"), usedforsecurity=False
        ).hexdigest(),
        **sub.passthrough,
    }
    if original is not None:
        values.update({
            "originalSubscriptionId": original.subscription_id,
            "originalClientAccnum": original.client_accnum,
            "originalClientSubacc": original.client_subacc,
            "source": source or "API",
        })
    return values


def sale_failure_fields(event_type: str, original: Subscription, now: datetime, *, transaction_id: str,
                        client_accnum: str, client_subacc: str, initial_price: Decimal, initial_period: int,
                        currency_code: str, decline_code: str, decline_text: str) -> Values:
    alpha = alpha_for(currency_code) or ""
    return {
        "transactionId": transaction_id,
        "clientAccnum": client_accnum,
        "clientSubacc": client_subacc,
        "timestamp": ccbill_timestamp(now),
        "email": original.email,
        "username": original.username,
        "password": original.password,
        "billedInitialPrice": _money(initial_price),
        "billedCurrencyCode": currency_code,
        "billedCurrency": alpha,
        "initialPeriod": str(initial_period),
        "failureCode": decline_code,
        "failureReason": decline_text,
        "dynamicPricingValidationDigest": None,
    }


def renewal_fields(sub: Subscription, now: datetime, *, transaction_id: str, amount: Decimal) -> Values:
    alpha = alpha_for(sub.currency_code) or ""
    return {
        **account_fields(sub),
        "transactionId": transaction_id,
        "timestamp": ccbill_timestamp(now),
        "billedAmount": _money(amount),
        "billedCurrency": alpha,
        "billedCurrencyCode": sub.currency_code,
        "accountingAmount": _money(amount),
        "accountingCurrency": alpha,
        "accountingCurrencyCode": sub.currency_code,
        "nextRenewalDate": ccbill_date(sub.next_billing_date),
        "renewalDate": ccbill_date(now),
    }


def renewal_failure_fields(sub: Subscription, now: datetime, *, transaction_id: str, failure_code: str,
                           failure_reason: str, next_retry: datetime) -> Values:
    return {
        **account_fields(sub),
        "transactionId": transaction_id,
        "timestamp": ccbill_timestamp(now),
        "failureCode": failure_code,
        "failureReason": failure_reason,
        "nextRetryDate": ccbill_date(next_retry),
        "renewalDate": ccbill_date(now),
    }


def simple_fields(event_type: str, sub: Subscription, now: datetime, **extra: str) -> Values:
    """Cancellation, Expiration, BillingDateChange."""
    return {**account_fields(sub), "timestamp": ccbill_timestamp(now), **extra}


def reversal_fields(event_type: str, sub: Subscription, now: datetime, *, transaction_id: str, amount: Decimal,
                    reason: str) -> Values:
    """Refund, Void, Chargeback."""
    alpha = alpha_for(sub.currency_code) or ""
    return {
        **account_fields(sub),
        "transactionId": transaction_id,
        "timestamp": ccbill_timestamp(now),
        "amount": _money(amount),
        "currency": alpha,
        "currencyCode": sub.currency_code,
        "accountingAmount": _money(amount),
        "accountingCurrency": alpha,
        "accountingCurrencyCode": sub.currency_code,
        "reason": reason,
    }


class WebhookDispatcher:
    """A single background worker posting deliveries in order, with retries; every attempt is recorded."""

    def __init__(
        self,
        webhook_url: str | None,
        body_format: str = "json",
        *,
        retry_delays: Sequence[float] = (0.2, 0.5, 1.0),
        timeout: float = 5.0,
        now: Callable[[], datetime] | None = None,
        generator: WebhookGenerator | None = None,
    ) -> None:
        if body_format not in BODY_FORMATS:
            raise ValueError(f"webhook format must be one of {', '.join(BODY_FORMATS)}, not {body_format!r}")
        self.webhook_url = webhook_url
        self.generator = generator or WebhookGenerator(WebhookConfig(seed=new_seed(), format=body_format))
        self._retry_delays = tuple(retry_delays)
        self._timeout = timeout
        self._now = now or datetime.now
        self._pending: deque[dict[str, Any]] = deque()
        self._records: list[dict[str, Any]] = []
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._busy = False
        # No proxies: deliveries go to the local receiver, whatever HTTP_PROXY says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread = threading.Thread(target=self._run, name="ccbill-sandbox-webhooks", daemon=True)
        self._thread.start()

    @property
    def body_format(self) -> str:
        return self.generator.config.format

    def enqueue(self, event_type: str, fields: Mapping[str, str | None]) -> dict[str, Any]:
        delivery: GeneratedDelivery | None = None
        error: str | None = None
        try:
            delivery = self.generator.generate(event_type, fields)
        except Exception as exc:  # noqa: BLE001 - a generator bug must not break the API call that emitted the event
            logger.exception("could not generate the %s webhook", event_type)
            error = f"{type(exc).__name__}: {exc}"
        with self._condition:
            record: dict[str, Any] = {
                "id": len(self._records) + 1,
                "event_type": event_type,
                "subscription_id": fields.get("subscriptionId"),
                "transaction_id": fields.get("transactionId"),
                "client_accnum": fields.get("clientAccnum"),
                "client_subacc": fields.get("clientSubacc"),
                "body_format": delivery.body_format if delivery else None,
                "version": delivery.version if delivery else None,
                "variations": list(delivery.variations) if delivery else [],
                "fields": {k: ("***" if k == "password" else v) for k, v in (delivery.fields if delivery else
                                                                              {}).items()},
                "state": "pending",
                "attempts": [],
            }
            self._records.append(record)
            if delivery is None:
                record["state"] = "failed"
                record["detail"] = f"the delivery could not be generated: {error}"
            elif self.webhook_url is None:
                record["state"] = "skipped"
                record["detail"] = "no webhook URL configured"
            else:
                self._pending.append({"record": record, "delivery": delivery, "fields": dict(fields)})
                self._condition.notify_all()
            return record

    def records(self) -> list[dict[str, Any]]:
        with self._condition:
            return [dict(record, attempts=list(record["attempts"])) for record in self._records]

    def clear(self) -> None:
        with self._condition:
            self._records = [r for r in self._records if r["state"] == "pending"]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery has been delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def stop(self) -> None:
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._condition:
                while not self._pending and not self._stopping.is_set():
                    self._condition.wait()
                if self._stopping.is_set():
                    return
                item = self._pending.popleft()
                self._busy = True
            try:
                self._deliver(item["record"], item["delivery"], item["fields"])
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def _target(self, event_type: str, fields: Mapping[str, str | None]) -> str:
        if self.webhook_url is None:
            raise RuntimeError("the sandbox has no webhook URL to deliver to")
        parts = urlsplit(self.webhook_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        present = {name for name, _ in query}
        known = {name: value for name, value in fields.items() if value is not None}
        query += [(k, v) for k, v in webhook_samples.webhook_query(event_type, known, None).items()
                  if k not in present]
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))

    def _deliver(self, record: dict[str, Any], delivery: GeneratedDelivery, fields: Mapping[str, str | None]) -> None:
        body, content_type = delivery.body, delivery.content_type
        url = self._target(record["event_type"], fields)
        headers = {"Content-Type": content_type, "X-Forwarded-For": CCBILL_SOURCE_ADDRESS,
                   "User-Agent": "CCBill-Webhooks-Sandbox/1"}
        for attempt, delay in enumerate((0.0, *self._retry_delays), start=1):
            if delay and self._stopping.wait(delay):
                record["state"] = "abandoned"
                return
            status: int | None = None
            error: str | None = None
            try:
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with self._opener.open(request, timeout=self._timeout) as response:
                    status = response.status
                    response.read()
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.read()
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                error = f"{type(reason).__name__}: {reason}"
            with self._condition:
                record["attempts"].append({"attempt": attempt, "at": self._now().isoformat(), "status": status,
                                           "error": error})
                if status is not None and 200 <= status <= 299:
                    record["state"] = "delivered"
                    return
                if status is not None and 400 <= status <= 499:
                    record["state"] = "rejected"  # the receiver's final word: no retry
                    return
        record["state"] = "failed"
