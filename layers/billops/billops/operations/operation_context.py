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
    """The context's parts as attributes of the runner and the settler (``self.table``, ``self.clock`` ...).

    Plain attributes copied once at construction (the context is frozen), not properties: a property is a function
    call on every use, and the worker's path reads these on every step."""

    def __init__(self, context: OperationContext) -> None:
        self.context = context
        self.table: OperationsTable = context.table
        self.facts_store: SubscriptionFactsStore = context.facts_store
        self.client_factory: Callable[[], CCBillClient] = context.client_factory
        self.writer: OperationWriter = context.writer
        self.settings: OperationSettings = context.settings
        self.retry_policy: RetryPolicy = context.retry_policy
        self.clock: Callable[[], datetime] = context.clock
