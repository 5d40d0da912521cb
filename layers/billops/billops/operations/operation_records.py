"""Operation IDs, request hashes, timestamps and the record a new message becomes.

* The operation ID is derived from the sender's idempotency key (``op_`` + 26 characters of base32(sha256(key))),
  so every message carrying one key lands on one record, and the record's conditional creation
  (``attribute_not_exists``) is the arbiter of "the same request" - no lookup table, no race.
* ``request_hash`` is the sha256 of the canonical message without the idempotency key (run_at included): a second
  message with the key but another body is a conflict, recorded and dead-lettered, never executed.
* A message that cannot be read at all has no trustworthy key; its rejection record is keyed by the hash of the raw
  body (``op_rej_…``), so fixing the message and sending it again with the same key is not a "conflict".
* Timestamps are ISO-8601 UTC with microseconds and a ``Z`` (``2026-01-31T12:00:00.000000Z``): one fixed width,
  so DynamoDB's string comparison (due_at <= now in the by_due index) is time order.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from billops import operation_states as states
from billops.operations.operation_messages import AnyOperationMessage, canonical_json


def operation_id_for(idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    return "op_" + base64.b32encode(digest).decode("ascii").lower()[:26]


def rejection_id_for(raw_body: str | bytes) -> str:
    data = raw_body.encode("utf-8", errors="replace") if isinstance(raw_body, str) else raw_body
    return "op_rej_" + base64.b32encode(hashlib.sha256(data).digest()).decode("ascii").lower()[:26]


def request_hash(message: AnyOperationMessage) -> str:
    return hashlib.sha256(canonical_json(message, exclude={"idempotency_key"}).encode("utf-8")).hexdigest()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    value = str(text).strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_record(message: AnyOperationMessage, now: datetime, *, max_attempts: int) -> dict[str, Any]:
    """The record of a message seen for the first time: scheduled (run_at in the future) or queued."""
    run_at = message.run_at
    deferred = run_at is not None and run_at > now
    record: dict[str, Any] = {
        "operation_id": operation_id_for(message.idempotency_key),
        "idempotency_key": message.idempotency_key,
        "request_hash": request_hash(message),
        "operation_type": message.operation_type,
        "subscription_id": message.subscription_id,
        "client_subacc": message.client_subacc,
        "parameters": message.parameters.model_dump(mode="json", exclude_none=True),
        "message": canonical_json(message),
        "run_at": iso(run_at) if run_at is not None else None,
        "suppress_domain_events": message.suppress_domain_events,
        "status": states.SCHEDULED if deferred else states.QUEUED,
        "escalated": False,
        "attempt": 0,
        "max_attempts": max_attempts,
        "created_at": iso(now),
        "updated_at": iso(now),
    }
    if message.operation_type == "upgrade":
        record["upgrade_method"] = message.parameters.method
    if deferred:
        record["waiting"] = "1"
        record["due_at"] = iso(run_at)
    else:
        record["queued_at"] = iso(now)
    return record


def rejection_record(raw_body: str, reason: str, param: str | None, now: datetime,
                     hints: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of an unusable message: why, and the few identifying fields that could be read (no body)."""
    hints = hints or {}
    return {
        "operation_id": rejection_id_for(raw_body),
        "status": states.REJECTED,
        "escalated": False,
        "failure": {"reason": "message_invalid", "message": reason[:500], "param": param},
        "idempotency_key": _short_text(hints.get("idempotency_key")),
        "operation_type": _short_text(hints.get("operation_type")),
        "subscription_id": _short_text(hints.get("subscription_id")),
        "suppress_domain_events": hints.get("suppress_domain_events") is True,
        "body_sha256": hashlib.sha256(raw_body.encode("utf-8", errors="replace")).hexdigest(),
        "body_bytes": len(raw_body.encode("utf-8", errors="replace")),
        "attempt": 0,
        "created_at": iso(now),
        "updated_at": iso(now),
        "completed_at": iso(now),
    }


def _short_text(value: Any) -> str | None:
    return value[:128] if isinstance(value, str) and value else None


def outcome_summary(outcome: Any, attempt: int, at: datetime) -> dict[str, Any]:
    """What the record keeps of one CCBill answer (CCBillOutcome): nothing personal is in an outcome."""
    return {
        "attempt": attempt,
        "action": outcome.action,
        "status": outcome.status.value,
        "kind": outcome.kind.value,
        "code": outcome.code,
        "meaning": outcome.meaning,
        "param": outcome.param,
        "retryable": outcome.retryable,
        "http_status": outcome.http_status,
        "retry_after_seconds": outcome.retry_after_seconds,
        "elapsed_ms": outcome.elapsed_ms,
        "data": {str(k): str(v) for k, v in dict(outcome.data).items()},
        "at": iso(at),
    }
