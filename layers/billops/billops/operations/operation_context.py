"""What the worker's runner and the settlement both work with, in one object built once per container.

The runner (operation_runner.py: claim -> call -> record) and the settler (settlement.py: unknown outcomes settled by
looking) read and write the same records through the same collaborators; ``wiring.build_services`` builds one
``OperationContext`` and hands it to both, so they cannot disagree about the table, the clock or the retry policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from billops.ccbill.client import CCBillClient
from billops.operations.operation_records import utc_now
from billops.operations.operation_settings import OperationSettings
from billops.operations.operation_writer import OperationWriter
from billops.operations.retry_policy import RetryPolicy
from billops.operations.subscription_facts_store import SubscriptionFactsStore
from billops.storage.operations_table import OperationsTable


@dataclass(frozen=True)
class OperationContext:
    table: OperationsTable
    facts_store: SubscriptionFactsStore
    client_factory: Callable[[], CCBillClient]
    """The container's CCBill client, built on first use (lazily: a batch that needs no call never reads the secret)."""
    writer: OperationWriter
    settings: OperationSettings
    retry_policy: RetryPolicy = field(default=None)  # type: ignore[assignment]  # None: the settings' policy
    clock: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        if self.retry_policy is None:
            object.__setattr__(self, "retry_policy", RetryPolicy(
                self.settings.retry_base_seconds, self.settings.retry_cap_seconds, self.settings.max_attempts))


class UsesOperationContext:
    """The context's parts as attributes of the runner and the settler (``self.table``, ``self.clock`` ...)."""

    context: OperationContext

    @property
    def table(self) -> OperationsTable:
        return self.context.table

    @property
    def facts_store(self) -> SubscriptionFactsStore:
        return self.context.facts_store

    @property
    def client_factory(self) -> Callable[[], CCBillClient]:
        return self.context.client_factory

    @property
    def writer(self) -> OperationWriter:
        return self.context.writer

    @property
    def settings(self) -> OperationSettings:
        return self.context.settings

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.context.retry_policy

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.context.clock
