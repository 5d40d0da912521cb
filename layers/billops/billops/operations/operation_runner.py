"""The worker's job for one message: record it, claim it, call CCBill once, record what came back.

1. Read the message. Unusable -> a ``rejected`` record (keyed by the body's hash) and the dead-letter queue.
2. Create the record (conditional put on the ID derived from the idempotency key). It exists already: the same
   request (a redelivery, a second message with the key) continues from the record's state; another request under
   the key is a conflict - noted on the record, dead-lettered, never executed.
3. Decide from the record's status: final or escalated -> nothing; waiting for a time -> nothing (the scheduler
   sends it again when due); ``in_progress`` under a live lease -> another worker has it; under an expired lease ->
   the worker died: ``unknown``, then settled by looking (settlement.py) - never called again blindly; ``unknown``
   -> settled by looking; claimable -> 4.
4. Plan the request (operation_actions.py: validation against CCBill's rules and the known subscription; a refusal
   is ``failed`` naming the parameter, and nothing is sent).
5. Claim: one conditional write ``queued|due -> in_progress``, attempt + 1, lease, ``call_started_at``, the plan.
   This write is the intent: it happens before CCBill is called, so a crash after the call leaves evidence that a
   call may have been made.
6. Call CCBill (once; the client never repeats an action that changes anything).
7. Write the outcome conditionally on ``in_progress`` and the claimed attempt: succeeded / failed / retry_wait
   (certainly not applied, retryable) / unknown (then settled by looking at once) / awaiting_consumer
   (allowUpgrade). If the condition fails someone else settled it first (a webhook): the record is re-read.

Any exception (DynamoDB unreachable...) propagates: the message is retried by SQS and step 3 takes over.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billops.ccbill.client import CCBillClient
from billops.ccbill.errors import CCBillRequestInvalid
from billops.ccbill.outcomes import CCBillOutcome, OutcomeKind
from billops import operation_states as states
from billops.domain_events import events
from billops.operations.operation_actions import (
    ALLOW_UPGRADE,
    CHARGE_UPGRADE,
    ActionRefused,
    Plan,
    plan_for,
    upgrade_form_for,
)
from billops.operations.operation_context import OperationContext, UsesOperationContext
from billops.operations.operation_messages import MessageInvalid, parse_message
from billops.operations.operation_queue import DeadLetters
from billops.operations.operation_records import (
    iso,
    new_record,
    outcome_summary,
    parse_iso,
    rejection_record,
    request_hash,
)
from billops.operations.settlement import Settler
from billops.operations.upgrade_guard import DUPLICATE_UPGRADE, UpgradeGuard, refusal_message
from billops.storage.operations_table import Condition

logger = logging.getLogger(__name__)

MAX_ATTEMPTS_LOG = 10
MAX_CONFLICTS_KEPT = 20
AMBIGUOUS_REFUSALS = frozenset({("discount", -20), ("discount", -21)})
"""Refusals of a re-send (after an unknown outcome) that the first attempt having applied would also explain."""


PRE_CALL_VIEW_TYPES = frozenset({"extend", "refund", "void"})
"""Operations whose unknown outcome is settled by comparing viewSubscriptionStatus before and after the call (the
billing date; the refundsIssued / voidsIssued counters), so it is read just before the call (``pre_call_view``)."""


class NotEnoughTime(RuntimeError):
    """Too little of the invocation is left for a CCBill call: the message is handed back unclaimed."""


@dataclass
class RunResult:
    outcome: str
    operation_id: str | None = None
    status: str | None = None
    metrics: list[str] = field(default_factory=list)


class OperationRunner(UsesOperationContext):
    def __init__(self, context: OperationContext, settler: Settler, dead_letters: DeadLetters, *,
                 on_ccbill_answered: Callable[[str | None], None] | None = None) -> None:
        super().__init__(context)
        self.settler = settler
        self.dead_letters = dead_letters
        # Called with the CCBill action once CCBill answered, before the outcome is written: the one moment a crash
        # leaves a call made and unrecorded. None in production; the local stack injects its fault there.
        self.on_ccbill_answered = on_ccbill_answered

    # --- 1-2: the message and its record -------------------------------------------------------------------------

    def handle(self, body: str, *, request_id: str | None = None,
               remaining_ms: Callable[[], int] | None = None) -> RunResult:
        try:
            message = parse_message(body)
        except MessageInvalid as problem:
            return self._reject(body, problem.message, problem.param)
        now = self.clock()
        record = new_record(message, now, max_attempts=self.settings.max_attempts)
        if self.table.create(record):
            logger.info("operation recorded", extra={"operation_id": record["operation_id"],
                                                     "operation_type": record["operation_type"],
                                                     "status": record["status"]})
            if record["status"] == states.SCHEDULED:
                return RunResult("scheduled", record["operation_id"], record["status"], ["OperationScheduled"])
        else:
            existing = self.table.get(record["operation_id"])
            if existing is None:  # created and deleted in between: nothing deletes records, so a storage fault
                raise RuntimeError(f"{record['operation_id']} vanished")
            if existing.get("request_hash") != request_hash(message):
                return self._conflict(existing, body, message.suppress_domain_events)
            record = existing
            logger.info("operation seen again", extra={"operation_id": record["operation_id"],
                                                       "status": record["status"]})
        return self.advance(record, request_id=request_id, remaining_ms=remaining_ms)

    def _reject(self, body: str, reason: str, param: str | None) -> RunResult:
        hints: dict[str, Any] = {}
        try:
            raw = json.loads(body)
            if isinstance(raw, dict):
                hints = raw
        except (ValueError, TypeError):
            pass
        record = rejection_record(body, reason, param, self.clock(), hints)
        if self.table.create(record):
            if not record["suppress_domain_events"]:
                item = events.operation_event(events.OPERATION_REJECTED, record, record["created_at"]).as_item()
                written = self.table.update_fields(record["operation_id"], values={"pending_events": [item]},
                                                   expect={"pending_events": None}, now=record["created_at"])
                if written is not None:
                    self.writer.flush(written)
        else:
            existing = self.table.get(record["operation_id"])
            if existing and existing.get("pending_events"):
                self.writer.flush(existing)
        group = record.get("subscription_id") or "rejected"
        self.dead_letters.send(body, reason=f"message_invalid: {reason}", group=group,
                               operation_id=record["operation_id"])
        logger.warning("operation message rejected", extra={"operation_id": record["operation_id"], "param": param})
        return RunResult("rejected", record["operation_id"], states.REJECTED, ["OperationRejected"])

    def _conflict(self, existing: dict[str, Any], body: str, suppress: bool) -> RunResult:
        body_hash = hashlib.sha256(body.encode("utf-8", errors="replace")).hexdigest()
        now = iso(self.clock())
        conflicts = list(existing.get("conflicts") or [])
        if not any(c.get("body_sha256") == body_hash for c in conflicts) and len(conflicts) < MAX_CONFLICTS_KEPT:
            entry = {"body_sha256": body_hash, "received_at": now,
                     "reason": "idempotency key reused with a different request"}
            pending: list[dict[str, Any]] = []
            if not suppress:
                detail = events.operation_event(events.OPERATION_REJECTED, existing, now).detail
                detail.update({"event_id": f"{existing['operation_id']}:conflict:{body_hash[:16]}",
                               "status": "failed", "record_status": states.REJECTED,
                               "failure_reason": "idempotency_key_conflict", "ccbill_code": None,
                               "ccbill_meaning": None})
                pending = [events.DomainEvent(events.OPERATION_REJECTED, detail).as_item()]
            written = self.table.update_fields(existing["operation_id"], values={},
                                               expect={}, now=now,
                                               append={"conflicts": [entry], **({"pending_events": pending}
                                                                                if pending else {})})
            if written is not None:
                self.writer.flush(written)
        self.dead_letters.send(body, reason="idempotency_key_conflict: the key was already used for another "
                                            "request, which is not replaced", group=str(existing.get(
                                                "subscription_id") or "rejected"),
                               operation_id=existing["operation_id"])
        logger.warning("idempotency key reused with another request",
                       extra={"operation_id": existing["operation_id"]})
        return RunResult("conflict", existing["operation_id"], existing.get("status"), ["OperationConflict"])

    # --- 3: what the record's state calls for ----------------------------------------------------------------------

    def advance(self, record: dict[str, Any], *, request_id: str | None = None,
                remaining_ms: Callable[[], int] | None = None) -> RunResult:
        for _ in range(4):
            if record.get("pending_events"):
                record = self.writer.flush(record)
            status = record.get("status")
            op_id = record["operation_id"]
            now = self.clock()
            if status in states.FINAL:
                return RunResult("already_final", op_id, status, ["OperationDuplicate"])
            if status == states.UNKNOWN:
                if record.get("escalated") and (record.get("parameters") or {}).get("method") != CHARGE_UPGRADE:
                    return RunResult("escalated", op_id, status)
                settled = self.settler.settle(record)
                if settled.get("status") == states.RETRY_WAIT and self._due(settled, now):
                    record = settled
                    continue
                return RunResult("settlement", op_id, settled.get("status"))
            if status == states.AWAITING_CONSUMER:
                return RunResult("awaiting_consumer", op_id, status)
            if status == states.IN_PROGRESS:
                lease = parse_iso(record.get("lease_expires_at"))
                if lease is not None and lease > now:
                    return RunResult("busy", op_id, status)
                marked = self.settler.mark_unknown(record, "the worker stopped between its claim and its outcome "
                                                           "write (lease expired); CCBill may have been called")
                record = marked or (self.table.get(op_id) or record)
                continue
            if status in states.WAITING_FOR_TIME and not self._due(record, now):
                return RunResult("waiting", op_id, status)
            if status in states.CLAIMABLE:
                result = self._attempt(record, request_id, remaining_ms)
                if result is not None:
                    return result
                record = self.table.get(op_id) or record
                continue
            return RunResult("ignored", op_id, status)
        return RunResult("contended", record["operation_id"], record.get("status"))

    @staticmethod
    def _due(record: dict[str, Any], now: datetime) -> bool:
        due = parse_iso(record.get("due_at"))
        return due is None or due <= now

    # --- 4-7: plan, claim, call, record -----------------------------------------------------------------------------

    def _attempt(self, record: dict[str, Any], request_id: str | None,
                 remaining_ms: Callable[[], int] | None) -> RunResult | None:
        op_id = record["operation_id"]
        client = self.client_factory()
        subscription = self.facts_store.get(str(record["subscription_id"]))
        facts = self.facts_store.facts(str(record["subscription_id"]), subscription)
        current_price = self.facts_store.current_recurring_price(subscription)
        try:
            plan = plan_for(record, client, facts, current_price)
        except ActionRefused as refusal:
            moved = self._refuse(record, refusal, sources=(record["status"],))
            return None if moved is None else RunResult("refused", op_id, states.FAILED, ["OperationRefused"])
        if record.get("operation_type") == "upgrade" and not int(record.get("attempt") or 0):
            # The merchant API checked this before recording; a message put on the queue directly was not.
            blocking = UpgradeGuard(self.table, self.settings.upgrade_repeat_window_seconds, self.clock).admit(
                op_id, str(record["subscription_id"]), record.get("parameters") or {}, client.catalogue,
                plan.details)
            if blocking is not None:
                moved = self._refuse(record, ActionRefused(
                    "force", refusal_message(str(record["subscription_id"]), blocking)), sources=(record["status"],),
                    reason=DUPLICATE_UPGRADE, extra={"existing_operation_id": str(blocking.get("operation_id"))})
                return None if moved is None else RunResult("refused", op_id, states.FAILED, ["OperationRefused"])
        self._check_time(client, remaining_ms)

        now = self.clock()
        attempt = int(record.get("attempt") or 0)
        claimed = self.writer.move(
            record, target=states.IN_PROGRESS,
            sources=(record["status"],),
            values={"attempt": attempt + 1, "lease_expires_at": iso(now + timedelta(
                        seconds=self.settings.lease_seconds)),
                    "call_started_at": iso(now), "claimed_at": iso(now), "worker_request_id": request_id or "",
                    "plan": plan.details, "pre_call_view": None, "retry_reason": None},
            remove=("waiting", "due_at"),
            condition=Condition(equals={"attempt": attempt}, due_by=iso(now)),
        )
        if claimed is None:
            return None  # someone else moved it: re-read and decide again
        logger.info("operation claimed", extra={"operation_id": op_id, "attempt": attempt + 1,
                                                "operation_type": record.get("operation_type")})

        if record.get("operation_type") in PRE_CALL_VIEW_TYPES:
            snapshot = client.view_subscription_status(str(record["subscription_id"]),
                                                       client_subacc=record.get("client_subacc") or None)
            if not snapshot.succeeded:
                # Nothing was changed yet: a failed or unknown *read* means "not applied", whatever its kind.
                return self._record(claimed, plan, _as_not_applied(snapshot))
            noted = self.table.update_fields(op_id, values={"pre_call_view": dict(snapshot.data)},
                                             expect={"status": states.IN_PROGRESS, "attempt": attempt + 1},
                                             now=iso(self.clock()))
            if noted is None:
                return RunResult("lost_claim", op_id, None)
            claimed = noted
        try:
            outcome = plan.send()
        except ActionRefused as refusal:
            moved = self._refuse(claimed, refusal, sources=(states.IN_PROGRESS,))
            return RunResult("refused", op_id, states.FAILED if moved else None, ["OperationRefused"])
        except CCBillRequestInvalid as invalid:
            refusal = ActionRefused(invalid.param, invalid.message, getattr(invalid, "ccbill_code", None))
            moved = self._refuse(claimed, refusal, sources=(states.IN_PROGRESS,))
            return RunResult("refused", op_id, states.FAILED if moved else None, ["OperationRefused"])
        if self.on_ccbill_answered is not None:
            self.on_ccbill_answered(plan.details.get("action"))
        return self._record(claimed, plan, outcome)

    def _check_time(self, client: CCBillClient, remaining_ms: Callable[[], int] | None) -> None:
        if remaining_ms is None:
            return
        needed = (client.settings.connect_timeout + client.settings.read_timeout) * 1000 + 5000
        if remaining_ms() < needed:
            raise NotEnoughTime("not enough time left in this invocation for a CCBill call")

    def _refuse(self, record: dict[str, Any], refusal: ActionRefused, *, sources: tuple[str, ...],
                reason: str = "request_invalid", extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        now = self.clock()
        condition = Condition(equals={"attempt": int(record.get("attempt") or 0)}, due_by=iso(now))
        moved = self.writer.move(
            record, target=states.FAILED, sources=sources, condition=condition,
            values={"failure": {"reason": reason, "message": refusal.message[:500],
                                "param": refusal.param, "code": refusal.code, **(extra or {})},
                    "failure_reason": reason, "ccbill_called": False, "completed_at": iso(now)},
            remove=("waiting", "due_at", "lease_expires_at"),
            event_types=[events.OPERATION_FAILED])
        if moved is not None:
            logger.info("operation refused before calling CCBill",
                        extra={"operation_id": record["operation_id"], "param": refusal.param})
        return moved

    def _record(self, claimed: dict[str, Any], plan: Plan, outcome: CCBillOutcome) -> RunResult:
        op_id = claimed["operation_id"]
        attempt = int(claimed["attempt"])
        now = self.clock()
        summary = outcome_summary(outcome, attempt, now)
        log = list(claimed.get("attempts_log") or [])[-(MAX_ATTEMPTS_LOG - 1):] + [summary]
        values: dict[str, Any] = {"ccbill": summary, "attempts_log": log, "call_finished_at": iso(now),
                                  "ccbill_called": True}
        remove = ["lease_expires_at"]
        event_types: list[str] = []
        kind = claimed.get("operation_type")
        method = (claimed.get("parameters") or {}).get("method")

        if outcome.succeeded:
            if kind == "upgrade" and method == ALLOW_UPGRADE:
                target = states.AWAITING_CONSUMER
                started = parse_iso(claimed.get("call_started_at")) or now
                values["window_expires_at"] = iso(started + timedelta(seconds=self.settings.upgrade_window_seconds))
                values["upgrade_form"] = upgrade_form_for(claimed, self.client_factory())
                event_types.append(events.OPERATION_AWAITING_CONSUMER)
            else:
                target = states.SUCCEEDED
                values["completed_at"] = iso(now)
                if kind == "upgrade" and outcome.data.get("subscriptionId"):
                    values["new_subscription_id"] = str(outcome.data["subscriptionId"])
                event_types.append(events.OPERATION_SUCCEEDED)
        elif outcome.failed and outcome.kind is OutcomeKind.CIRCUIT_OPEN:
            # Not sent: CCBill calls are paused (circuit_breaker.py). The operation waits, and the attempt it
            # claimed does not count against it (max_attempts grows by one).
            target = states.RETRY_WAIT
            due = now + timedelta(seconds=self.settings.paused_recheck_seconds)
            values.update({"waiting": "1", "due_at": iso(due), "retry_reason": outcome.meaning[:300],
                           "paused_by_breaker": True,
                           "max_attempts": int(claimed.get("max_attempts") or self.settings.max_attempts) + 1})
        elif outcome.failed and claimed.get("resend_after_unknown") and (kind, outcome.code) in AMBIGUOUS_REFUSALS:
            # The re-send was refused in a way the first attempt having applied would explain: a person decides.
            target = states.UNKNOWN
            values.update({"unknown_since": iso(now), "escalated": True, "escalated_at": iso(now),
                           "unknown_reason": f"the re-send after an unknown outcome was refused ({outcome.code}: "
                                             f"{outcome.meaning[:200]}); the first attempt probably applied"})
            event_types.append(events.OPERATION_ESCALATED)
        elif outcome.failed:
            limit = int(claimed.get("max_attempts") or self.settings.max_attempts)
            if outcome.retryable and self.retry_policy.may_retry(attempt, limit):
                target = states.RETRY_WAIT
                due = self.retry_policy.due_at(now, attempt, outcome.retry_after_seconds)
                values.update({"waiting": "1", "due_at": iso(due), "retry_reason": outcome.meaning[:300]})
            else:
                target = states.FAILED
                reason = "retries_exhausted" if outcome.retryable else "ccbill_refused"
                values.update({"failure": {"reason": reason, "code": outcome.code, "message": outcome.meaning[:500],
                                           "meaning": outcome.meaning[:500], "param": outcome.param,
                                           "decline_code": outcome.data.get("declineCode"),
                                           "denial_id": outcome.data.get("denialId")},
                               "failure_reason": reason, "completed_at": iso(now)})
                event_types.append(events.OPERATION_FAILED)
        else:
            target = states.UNKNOWN
            values.update({"unknown_since": iso(now), "unknown_reason": outcome.meaning[:300]})

        written = self.writer.move(claimed, target=target, values=values, remove=remove,
                                   sources=(states.IN_PROGRESS,),
                                   condition=Condition(equals={"attempt": attempt}),
                                   event_types=event_types)
        if written is None:
            current = self.table.get(op_id) or claimed
            logger.info("outcome not written: the operation was settled meanwhile",
                        extra={"operation_id": op_id, "status": current.get("status")})
            return RunResult("settled_meanwhile", op_id, current.get("status"))
        logger.info("operation attempt recorded", extra={"operation_id": op_id, "status": target,
                                                         "ccbill_code": outcome.code, "attempt": attempt})
        if target == states.SUCCEEDED:
            self._note_on_subscription(written, outcome)
            written = dict(self.settler.follow_ups.after_success(written))
        if target == states.UNKNOWN:
            # Look at once: a status read settles a cancel or an extension now, a webhook may already be stored.
            written = self.settler.settle(written)
        return RunResult("attempted", op_id, written.get("status"))

    def _note_on_subscription(self, record: dict[str, Any], outcome: CCBillOutcome) -> None:
        """What no webhook will tell the subscription record: a discount's new price, a refresh's view."""
        subscription_id = str(record["subscription_id"])
        at = iso(self.clock())
        try:
            if record.get("operation_type") == "discount":
                plan = record.get("plan") or {}
                price = plan.get("resulting_price") or (plan.get("value") if plan.get("param") == "newRecurringPrice"
                                                        else None)
                if price:
                    self.facts_store.record_discount(subscription_id, Decimal(str(price)), record["operation_id"], at)
            elif record.get("operation_type") == "refresh":
                self.facts_store.record_view(subscription_id, dict(outcome.data), record["operation_id"], at)
        except Exception:  # noqa: BLE001 - the operation is done; a missed note is logged, not retried
            logger.warning("could not note the operation's result on the subscription record",
                           extra={"operation_id": record["operation_id"]})


def _as_not_applied(outcome: CCBillOutcome) -> CCBillOutcome:
    from dataclasses import replace

    from billops.ccbill.outcomes import OutcomeStatus

    if outcome.unknown:
        return replace(outcome, status=OutcomeStatus.FAILED, retryable=True,
                       meaning=f"viewSubscriptionStatus before the extension failed ({outcome.meaning}); nothing "
                               "was changed")
    return outcome
