"""Building the operations objects from the environment, once per container (the handlers stay thin).

The CCBill client is built on first use, not at import: the scheduler and the postback receiver never call CCBill,
and a worker whose CCBill settings are broken should fail its messages (retried, then dead-lettered), not its cold
start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billops.ccbill.circuit_breaker import CircuitBreaker, threshold_from_env
from billops.ccbill.client import CCBillClient
from billops.domain_events.publishing import Publisher, publisher_for
from billops.operations.operation_context import OperationContext
from billops.operations.operation_queue import DeadLetters
from billops.operations.operation_records import utc_now
from billops.operations.operation_runner import OperationRunner
from billops.operations.operation_settings import OperationSettings, operation_settings_from_env
from billops.operations.operation_writer import OperationWriter
from billops.operations.reconciliation import Reconciler
from billops.operations.retry_policy import RetryPolicy
from billops.operations.scheduler import Scheduler
from billops.operations.settlement import Settler
from billops.operations.subscription_facts_store import SubscriptionFactsStore
from billops.settings import get_settings
from billops.storage.operations_table import OperationsTable
from billops.storage.subscriptions_table import SubscriptionsTable


def lazy_client(factory: Callable[[], CCBillClient] = CCBillClient.from_env) -> Callable[[], CCBillClient]:
    holder: list[CCBillClient] = []
    lock = threading.Lock()

    def get() -> CCBillClient:
        if not holder:
            with lock:
                if not holder:
                    holder.append(factory())
        return holder[0]

    return get


def ccbill_breaker(settings: OperationSettings, publisher: Publisher,
                   on_metric: Callable[[str], None] | None = None, dynamodb: Any = None) -> CircuitBreaker:
    """The CCBill circuit breaker every CCBill call of this container goes through (its item: the operations
    table); its domain events go on the operations bus."""
    from billops.domain_events.events import DomainEvent
    from billops.storage.ccbill_breaker_store import CCBillBreakerStore

    def publish(detail_type: str, detail: dict[str, Any]) -> None:
        # from_item: numbers read back from DynamoDB (Decimal) become plain JSON numbers again.
        publisher.publish([DomainEvent.from_item({"detail_type": detail_type, "detail": detail})])

    return CircuitBreaker(CCBillBreakerStore(settings.operations_table, dynamodb), threshold_from_env(),
                          publish=publish, on_metric=on_metric)


@dataclass
class OperationServices:
    settings: OperationSettings
    table: OperationsTable
    subscriptions: SubscriptionsTable
    facts_store: SubscriptionFactsStore
    writer: OperationWriter
    settler: Settler
    runner: OperationRunner
    scheduler: Scheduler
    reconciler: Reconciler
    breaker: CircuitBreaker | None = None


def build_services(
    settings: OperationSettings | None = None,
    *,
    client_factory: Callable[[], CCBillClient] | None = None,
    publisher: Publisher | None = None,
    clock: Callable[[], datetime] = utc_now,
    on_metric: Callable[[str], None] | None = None,
    dynamodb: Any = None,
    sqs: Any = None,
    on_ccbill_answered: Callable[[str | None], None] | None = None,
) -> OperationServices:
    settings = settings or operation_settings_from_env()
    publisher = publisher or publisher_for(settings.event_bus_name)
    breaker = None
    if client_factory is None:
        breaker = ccbill_breaker(settings, publisher, on_metric, dynamodb)
        client_factory = lazy_client(lambda: CCBillClient.from_env(breaker=breaker))
    table = OperationsTable(settings.operations_table, dynamodb)
    subscriptions = SubscriptionsTable(get_settings().subscriptions_table, dynamodb)
    facts_store = SubscriptionFactsStore(subscriptions)
    writer = OperationWriter(table, publisher, clock, on_metric)
    policy = RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds, settings.max_attempts)
    context = OperationContext(table, facts_store, client_factory, writer, settings, policy, clock)
    settler = Settler(context)
    runner = OperationRunner(context, settler, DeadLetters(settings.dead_letter_queue_url, sqs),
                             on_ccbill_answered=on_ccbill_answered)
    scheduler = Scheduler(table, writer, settings, sqs, clock)
    reconciler = Reconciler(table, subscriptions, settler, writer, settings, sqs, clock, breaker=breaker,
                            on_metric=on_metric)
    return OperationServices(settings, table, subscriptions, facts_store, writer, settler, runner, scheduler,
                             reconciler, breaker)
