"""The due sweep (OperationSchedulerFunction, every minute): operations whose time has come go back on the queue.

Two kinds of record wait for a time, both in the sparse ``by_due`` index (``waiting`` = "1", ``due_at``):
``scheduled`` (a message's ``run_at`` was in the future) and ``retry_wait`` (a retry's backoff). SQS FIFO queues
cannot delay a single message (DelaySeconds is per queue, at most 15 minutes), and EventBridge Scheduler would add
one schedule per operation to create, clean up and pay for; a one-minute sweep over an index is one query per
minute, keeps every pending operation visible in one table, and its granularity (a minute) is far below anything
a subscription operation needs.

Order per record: send first, then mark it ``queued``. If the mark fails (someone claimed it, or DynamoDB erred)
the message is still on its way, and the worker's claim accepts a due ``scheduled`` / ``retry_wait`` record as well
as a ``queued`` one; a second send (next sweep) reaches a record that is no longer claimable and is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billops import operation_states as states
from billops.operations.operation_queue import QueueNotConfigured, resend_stored
from billops.operations.operation_records import iso, utc_now
from billops.operations.operation_settings import OperationSettings
from billops.operations.operation_writer import OperationWriter
from billops.storage.operations_table import Condition, OperationsTable

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    enqueued: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"enqueued": len(self.enqueued), "skipped": len(self.skipped), "failed": len(self.failed)}


class Scheduler:
    def __init__(self, table: OperationsTable, writer: OperationWriter, settings: OperationSettings,
                 sqs: Any = None, clock: Callable[[], datetime] = utc_now) -> None:
        self.table = table
        self.writer = writer
        self.settings = settings
        self.sqs = sqs
        self.clock = clock

    def run(self) -> SweepResult:
        if not self.settings.queue_url:
            raise QueueNotConfigured("BILLOPS_OPERATIONS_QUEUE_URL is not set")
        now = iso(self.clock())
        result = SweepResult()
        for indexed in self.table.due(now, limit=self.settings.scheduler_batch):
            op_id = str(indexed["operation_id"])
            record = self.table.get(op_id)  # the index is eventually consistent: read the record itself
            if record is None or record.get("status") not in states.WAITING_FOR_TIME or str(
                    record.get("due_at") or "") > now:
                result.skipped.append(op_id)
                continue
            try:
                resend_stored(record, queue_url=self.settings.queue_url, sqs=self.sqs)
            except Exception:
                logger.exception("could not enqueue a due operation", extra={"operation_id": op_id})
                result.failed.append(op_id)
                continue
            moved = self.writer.move(record, target=states.QUEUED,
                                     values={"queued_at": now},
                                     remove=("waiting", "due_at"),
                                     condition=Condition(equals={"attempt": int(record.get("attempt") or 0)},
                                                         due_by=now),
                                     flush=False)  # publishing is the reconciliation job's (no PutEvents here)
            (result.enqueued if moved is not None else result.skipped).append(op_id)
        if result.enqueued or result.failed:
            logger.info("due operations enqueued", extra=result.as_dict())
        return result
