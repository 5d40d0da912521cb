"""CCBill's side of the webhook reliability suite: subscription lifecycles, their deliveries, and a poster that behaves
like CCBill (concurrent, any order, both formats, delivers again after a 5xx or a timeout).

Each event's delivery is made by the CCBill sandbox's generator (billops_local/ccbill_sandbox/webhook_generator.py)
from CCBill's field table, varied by default (any format, any version of the event type, JSON numbers, bank
payments, blank fields, pass-through fields, Latin-1 names, stray ``&``), every choice drawn from the suite's seed.
A duplicate is the same delivery posted again, byte for byte, as CCBill's redelivery is.

And the reference: the same events run once, in order, without duplicates or faults, through the real intake
(``WebhookIntake``) and the real projection (``SubscriptionProjection``) over in-memory tables that keep DynamoDB's
types (every item goes through the same serialiser as moto's). The stack's records must equal that run's.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from billops_local.ccbill_sandbox.webhook_config import WebhookConfig
from billops_local.ccbill_sandbox.webhook_generator import GeneratedDelivery, WebhookGenerator
from billops_local.webhook_samples import webhook_query

BASE_TIME = datetime(2026, 3, 1, 8, 0, 0)
CURRENCIES = (("840", "USD", "19.95", "29.95"), ("978", "EUR", "17.95", "24.95"), ("826", "GBP", "14.95", "21.00"))
FAILURES = (("BE-900", "transaction declined"), ("BE-29", "Card Expired"), ("BE-51", "Insufficient Funds"))
EXCLUDED_TYPES = ("UserReactivation",)
"""Types CCBill sends without a ``timestamp``: they are ordered by our receipt time, which a shuffled run changes by
design, so "same state as an ordered run" cannot hold for them and they are left out of the lifecycles."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, eq=False)  # identity: duplicates are the same Event object
class Event:
    subscription_id: str
    event_type: str
    delivery: GeneratedDelivery

    @property
    def fields(self) -> dict[str, str]:
        """The event's fields as CCBill holds them (before JSON numbers drop a zero-filled field's zeros)."""
        return self.delivery.values


@dataclass
class Delivery:
    """One POST CCBill makes (an event, in a format); duplicates are further Delivery objects of the same event."""

    number: int
    event: Event
    body_format: str
    duplicate: bool
    attempts: int = 0
    statuses: list[int | str] = field(default_factory=list)
    answer: dict[str, Any] | None = None

    @property
    def answered_2xx(self) -> bool:
        return any(isinstance(status, int) and 200 <= status < 300 for status in self.statuses)


def _stamp(moment: datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def traffic_generator(seed: int, variation: str = "varied") -> WebhookGenerator:
    """The sandbox's generator as the suite drives it: any format, any version, ``variation``, ``seed``."""
    return WebhookGenerator(WebhookConfig(seed=seed, format="any", variation=variation, versions={"*": "any"}))


class LifecycleFactory:
    """Realistic lifecycles with unique IDs: a sale, renewals (some failing), date changes, data updates, and an end
    (cancellation, expiration, refund / void / chargeback / a bank payment's return as the sandbox plays them) - or
    none (still active)."""

    def __init__(self, rng: random.Random, generator: WebhookGenerator, id_prefix: str = "0126060") -> None:
        self.rng = rng
        self.generator = generator
        self.prefix = id_prefix
        self._transactions = 0

    def _transaction_id(self) -> str:
        self._transactions += 1
        return f"{self.prefix}3{self._transactions:011d}"

    def subscription_id(self, index: int) -> str:
        return f"{self.prefix}1{index:011d}"

    def lifecycle(self, index: int) -> list[Event]:
        rng = self.rng
        sid = self.subscription_id(index)
        moment = BASE_TIME + timedelta(seconds=index * 53)
        code, alpha, initial, recurring = rng.choice(CURRENCIES)
        period = rng.choice((30, 30, 60, 90))
        events: list[Event] = []

        def add(event_type: str, **values: str | None) -> None:
            nonlocal moment
            events.append(self.event(event_type, sid, _stamp(moment), **values))
            moment += timedelta(days=rng.choice((1, 2, 3)), seconds=rng.randrange(1, 3600))

        def renewal_success(**values: str) -> None:
            add("RenewalSuccess", transactionId=self._transaction_id(), billedAmount=recurring,
                billedCurrencyCode=code, billedCurrency=alpha, accountingAmount=recurring,
                accountingCurrencyCode=code, accountingCurrency=alpha, **values)

        next_renewal = (moment + timedelta(days=period)).strftime("%Y-%m-%d")
        if rng.random() < 0.97:  # a few are known only from later events (their sale never reaches us)
            prices = {f"{kind}{which}Price": price for kind in ("billed", "subscription", "accounting")
                      for which, price in (("Initial", initial), ("Recurring", recurring))}
            currencies = {f"{kind}CurrencyCode": code for kind in ("billed", "subscription", "accounting")}
            add("NewSaleSuccess", transactionId=sid, **prices, **currencies,
                **{f"{kind}Currency": alpha for kind in ("billed", "subscription", "accounting")},
                initialPeriod=str(period), recurringPeriod=str(period), nextRenewalDate=next_renewal,
                email=f"member{index}@example.com", username=f"member{index:05d}")
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            moment += timedelta(days=period)
            renewal = moment.strftime("%Y-%m-%d")
            if rng.random() < 0.2:
                failure_code, failure_reason = rng.choice(FAILURES)
                add("RenewalFailure", transactionId=self._transaction_id(), failureCode=failure_code,
                    failureReason=failure_reason, renewalDate=renewal,
                    nextRetryDate=(moment + timedelta(days=3)).strftime("%Y-%m-%d"))
            renewal_success(renewalDate=renewal, nextRenewalDate=(moment + timedelta(days=period)).strftime("%Y-%m-%d"))
        if rng.random() < 0.15:
            add("BillingDateChange", nextRenewalDate=(moment + timedelta(days=45)).strftime("%Y-%m-%d"))
        if rng.random() < 0.1:
            add("CustomerDataUpdate", email=f"member{index}+new@example.com", address1=f"{index} New Street")
        ending = rng.random()
        if ending < 0.25:
            add("Cancellation", reason=rng.choice(("Satisfied Customer", "Too expensive", "Other")),
                source=rng.choice(("customerSupport", "webAdmin")))
            if rng.random() < 0.6:
                add("Expiration")
        elif ending < 0.40:
            # A bank (ACH/check) payment can also come back as a Return (S2, Release 2: "check returns").
            banked = self.generator.consumer(sid).bank
            reversal = rng.choice(("Refund", "Void", "Chargeback", *(("Return",) if banked else ())))
            money = {"transactionId": self._transaction_id(), "amount": initial, "currencyCode": code,
                     "accountingAmount": initial, "accountingCurrencyCode": code}
            if reversal != "Return":  # Return has no alpha currency fields (Release 6 names the other three)
                money.update(currency=alpha, accountingCurrency=alpha)
            add(reversal, **money)
            add("Cancellation", reason={"Refund": "Customer Refunded", "Void": "Transaction Voided",
                                        "Chargeback": "Charged Back", "Return": "Check Returned"}[reversal],
                source="ccbill")
            add("Expiration")
        elif ending < 0.5:
            add("Expiration")
        if not events:  # no sale and nothing else: at least a renewal makes it known
            renewal_success(nextRenewalDate=next_renewal)
        return events

    def event(self, event_type: str, subscription_id: str, timestamp: str, **values: str | None) -> Event:
        delivery = self.generator.generate(event_type, {"subscriptionId": subscription_id, "clientAccnum": "900100",
                                                        "clientSubacc": "0000", "timestamp": timestamp, **values})
        return Event(subscription_id, event_type, delivery)

    def extra_renewal(self, events: list[Event]) -> Event:
        """One more RenewalSuccess after the last event (to reach an exact number of events)."""
        last = datetime.strptime(events[-1].fields["timestamp"], TIME_FORMAT) if events else BASE_TIME
        moment = last + timedelta(days=30, seconds=self.rng.randrange(1, 3600))
        sid = events[0].subscription_id
        return self.event("RenewalSuccess", sid, _stamp(moment), transactionId=self._transaction_id(),
                          renewalDate=moment.strftime("%Y-%m-%d"),
                          nextRenewalDate=(moment + timedelta(days=30)).strftime("%Y-%m-%d"))


def build_traffic(subscriptions: int, deliveries: int, duplicate_share: float, seed: int,
                  variation: str = "varied") -> tuple[dict[str, list[Event]], list[Delivery]]:
    """``subscriptions`` lifecycles holding exactly ``deliveries * (1 - duplicate_share)`` events, and the shuffled
    deliveries: every event once plus the duplicates (random events posted again, byte for byte)."""
    rng = random.Random(seed)  # nosec B311  # seeded test traffic
    factory = LifecycleFactory(rng, traffic_generator(seed, variation))
    duplicates = round(deliveries * duplicate_share)
    wanted = deliveries - duplicates
    lifecycles = {factory.subscription_id(i): factory.lifecycle(i) for i in range(subscriptions)}
    ids = list(lifecycles)
    total = sum(len(events) for events in lifecycles.values())
    while total > wanted:  # trim endings of random long lifecycles (never below one event)
        sid = rng.choice(ids)
        if len(lifecycles[sid]) > 1:
            lifecycles[sid].pop()
            total -= 1
    while total < wanted:
        sid = rng.choice(ids)
        events = lifecycles[sid]
        if events[-1].event_type in ("Expiration", "Cancellation"):
            continue
        events.append(factory.extra_renewal(events))
        total += 1
    events = [event for lifecycle in lifecycles.values() for event in lifecycle]
    traffic = [Delivery(0, event, event.delivery.body_format, duplicate=False) for event in events]
    traffic += [Delivery(0, event, event.delivery.body_format, duplicate=True)
                for event in (rng.choice(events) for _ in range(duplicates))]
    rng.shuffle(traffic)
    for number, delivery in enumerate(traffic):
        delivery.number = number
    return lifecycles, traffic


# --- CCBill posting -----------------------------------------------------------------------------------------------


@dataclass
class PostingReport:
    posts: int = 0
    redeliveries: int = 0
    statuses: Counter = field(default_factory=Counter)
    gave_up: list[Delivery] = field(default_factory=list)
    seconds: float = 0.0


def post_like_ccbill(webhook_url: str, token: str, traffic: Iterable[Delivery], *, threads: int = 4,
                     max_attempts: int = 10, timeout: float = 30.0, redelivery_delay: float = 0.05) -> PostingReport:
    """Post every delivery from ``threads`` connections; a 5xx, a timeout or a refused connection is delivered
    again later (appended to the work queue) up to ``max_attempts`` times, as CCBill redelivers. A 2xx or a 4xx is
    final."""
    import requests

    work: queue.Queue[Delivery | None] = queue.Queue()
    pending = 0
    for delivery in traffic:
        work.put(delivery)
        pending += 1
    report = PostingReport()
    lock = threading.Lock()
    outstanding = [pending]
    done = threading.Event()

    def finish_one() -> None:
        with lock:
            outstanding[0] -= 1
            if outstanding[0] == 0:
                done.set()

    def run() -> None:
        session = requests.Session()
        while True:
            delivery = work.get()
            if delivery is None:
                return
            event = delivery.event
            body, content_type = event.delivery.body, event.delivery.content_type
            query = urlencode(list(webhook_query(event.event_type, event.fields, token).items()))
            status: int | str
            try:
                answer = session.post(f"{webhook_url}?{query}", data=body, headers={"Content-Type": content_type},
                                      timeout=timeout)
                status = answer.status_code
                if 200 <= status < 300:
                    delivery.answer = answer.json()
            except requests.RequestException as error:
                status = type(error).__name__
                session = requests.Session()
            with lock:
                delivery.attempts += 1
                delivery.statuses.append(status)
                report.posts += 1
                report.statuses[status] += 1
            retry = not isinstance(status, int) or status >= 500
            if retry and delivery.attempts < max_attempts:
                with lock:
                    report.redeliveries += 1
                time.sleep(redelivery_delay)
                work.put(delivery)
                continue
            if retry:
                with lock:
                    report.gave_up.append(delivery)
            finish_one()

    started = time.monotonic()
    workers = [threading.Thread(target=run, name=f"ccbill-poster-{n}", daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    if pending:
        done.wait()
    for _ in workers:
        work.put(None)
    for worker in workers:
        worker.join(timeout=60)
    report.seconds = time.monotonic() - started
    return report


# --- the clean, ordered reference run -----------------------------------------------------------------------------


def _roundtrip(item: Mapping[str, Any]) -> dict[str, Any]:
    """What DynamoDB gives back for an item (None dropped, numbers as Decimal, sets...)."""
    from billops.storage.events_table import from_dynamodb, to_dynamodb

    return from_dynamodb(to_dynamodb(dict(item)))


class MemoryEvents:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def put_once(self, item: dict[str, Any]) -> bool:
        if item["pk"] in self.items:
            return False
        self.items[item["pk"]] = _roundtrip(item)
        return True


class MemorySubscriptions:
    """The subscriptions table and its history table (billops.storage.subscriptions_table's layout: a bounded state
    item, one item per history entry, one personal-data item), in memory, with their conditional writes."""

    history_table = "memory-subscription-history"

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.entries: dict[str, dict[str, dict[str, Any]]] = {}
        self.personal: dict[str, dict[str, Any]] = {}

    def get_state(self, subscription_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        item = self.items.get(subscription_id)
        return _roundtrip(item) if item is not None else None

    def get(self, subscription_id: str) -> dict[str, Any] | None:
        from billops.storage.subscriptions_table import assembled, is_bounded

        state = self.get_state(subscription_id)
        if state is None or not is_bounded(state):
            return state
        return assembled(state, *self.history(subscription_id))

    def history(self, subscription_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        from billops.subscriptions.state_rules import ordered

        entries = [_roundtrip(entry) for entry in ordered(self.entries.get(subscription_id, {}).values())]
        return entries, self.get_personal(subscription_id)

    def get_personal(self, subscription_id: str) -> dict[str, Any] | None:
        item = self.personal.get(subscription_id)
        return _roundtrip(item) if item is not None else None

    def put_entries(self, subscription_id: str, entries: Iterable[Mapping[str, Any]]) -> None:
        for entry in entries:
            self.entries.setdefault(subscription_id, {})[entry["key"]] = _roundtrip(entry)

    def put(self, item: dict[str, Any], expected_revision: int | None) -> None:
        from billops.storage.subscriptions_table import VIEW_ONLY_ATTRIBUTES

        state = {name: value for name, value in item.items() if name not in VIEW_ONLY_ATTRIBUTES}
        self._put(self.items, item["subscription_id"], state, expected_revision)

    def put_personal(self, subscription_id: str, personal: Mapping[str, Any], expected_revision: int | None) -> None:
        self._put(self.personal, subscription_id, dict(personal), expected_revision)

    @staticmethod
    def _put(items: dict[str, dict[str, Any]], subscription_id: str, item: dict[str, Any],
             expected_revision: int | None) -> None:
        from billops.storage.errors import RevisionConflict

        current = items.get(subscription_id)
        if (current is None) != (expected_revision is None) or (
                current is not None and int(current.get("revision", 0)) != expected_revision):
            raise RevisionConflict(subscription_id)
        items[subscription_id] = _roundtrip(item)


@dataclass
class ReferenceRun:
    keys: dict[Event, str]  # every event's delivery key
    subscriptions: dict[str, dict[str, Any]]
    events: dict[str, dict[str, Any]]


def clean_ordered_run(lifecycles: Mapping[str, list[Event]], token: str,
                      delivery_key_secret: str | None = None) -> ReferenceRun:
    """Every event once, in order, through WebhookIntake (as an HTTP API event from 127.0.0.1) and the projection.
    ``delivery_key_secret``: the stack's HMAC key of hashed delivery keys, so both runs key deliveries alike."""
    from billops.settings import settings_from_env
    from billops.subscriptions.projection import SubscriptionProjection
    from billops.webhooks.intake import WebhookIntake, WebhookRequest
    from billops_local.http_api_events import http_api_event

    settings = settings_from_env({"BILLOPS_ENV": "local", "BILLOPS_WEBHOOK_TOKEN": token,
                                  **({"BILLOPS_DELIVERY_KEY_SECRET": delivery_key_secret} if delivery_key_secret
                                     else {})})
    events_table = MemoryEvents()
    subscriptions = MemorySubscriptions()
    intake = WebhookIntake(settings, events_table)
    projection = SubscriptionProjection(subscriptions)  # type: ignore[arg-type]
    keys: dict[Event, str] = {}
    refused: list[str] = []
    for lifecycle in lifecycles.values():
        for event in lifecycle:
            delivery = event.delivery
            query = urlencode(list(webhook_query(event.event_type, event.fields, token).items()))
            request = http_api_event("POST", "/webhooks/ccbill", query, {"content-type": delivery.content_type},
                                     delivery.body, "127.0.0.1", route_key="POST /webhooks/ccbill")
            result = intake.receive(WebhookRequest.from_http_api_event(request))
            if result.status != 200 or result.outcome != "accepted":
                refused.append(f"{event.event_type} v{delivery.version} {delivery.body_format} "
                               f"{list(delivery.variations)}: {result.status} {result.outcome} {result.body!r:.300}")
                continue
            keys[event] = result.key
            projection.apply_delivery(events_table.items[result.key])
    assert not refused, f"the intake refused {len(refused)} deliveries of the clean run, e.g.:\n" + "\n".join(
        refused[:15])
    return ReferenceRun(keys, {sid: subscriptions.get(sid) for sid in subscriptions.items}, events_table.items)


VOLATILE = ("created_at", "updated_at", "revision", "subscriber_keys")
"""Our clocks, the revision counter, and the encrypted data keys of the personal fields (new ones every run)."""


def in_clear(item: Mapping[str, Any], cipher: Any = None) -> dict[str, Any]:
    """The item with its ``subscriber`` map in clear: once personal fields are encrypted field by field (values
    ``v1:<ref>:<b64>``, data keys in ``subscriber_keys``) the ciphertexts differ on every run, so runs are compared
    on the decrypted values. ``cipher``: a FieldCipher able to open the item's data keys."""
    from billops.privacy.field_encryption import is_encrypted

    subscriber = item.get("subscriber")
    if not subscriber or not any(is_encrypted(value) for value in subscriber.values()):
        return dict(item)
    assert cipher is not None, "personal fields are encrypted: a FieldCipher over the stack's KMS is needed"
    return {**item, "subscriber": cipher.decrypt_fields(subscriber, item.get("subscriber_keys") or {})}


def comparable(record: Mapping[str, Any], cipher: Any = None) -> dict[str, Any]:
    """A subscription record without what depends on when and how often it was written (our clocks, the revision
    counter, the data keys), personal fields decrypted: the history keeps every entry but its ``received_at``."""
    view = {name: value for name, value in in_clear(record, cipher).items() if name not in VOLATILE}
    view["history"] = [{name: value for name, value in entry.items() if name != "received_at"}
                       for entry in record.get("history") or []]
    return view


def differences(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    names = set(expected) | set(actual)
    return {name: (expected.get(name), actual.get(name)) for name in sorted(names)
            if expected.get(name) != actual.get(name)}
