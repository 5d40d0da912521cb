"""The operation record's statuses and the only moves allowed between them.

Every write of a status is a conditional write naming the status(es) it moves from (operations_table.transition),
and this table is checked before each write: a move not listed here is a bug, refused before DynamoDB is asked.

    scheduled ──(due)──► queued ──claim──► in_progress ──► succeeded | failed
        │                  ▲                   │  │  │
        └──claim (due)─────┼───────────────────┘  │  └──► awaiting_consumer ──► succeeded | failed
                           │                      ▼            (allowUpgrade: the consumer's 30 minutes)
                      retry_wait ◄──────────── unknown ──► succeeded | failed
                     (certainly not applied)   (settled by looking; escalated=true when a person must decide)

``rejected``: the message itself was unusable (malformed, or an idempotency key reused with another body).

Why ``awaiting_consumer`` is its own status: after allowUpgrade CCBill has done its part and waits for the
consumer. Keeping the operation ``in_progress`` would make an expired lease look like a crashed worker (``unknown``,
then retried: a new window nobody asked for); a distinct status lets the reconciliation job end it as ``failed``
with the reason ``upgrade_window_expired`` instead. The merchant API shows it as ``in_progress``.

Why ``failed`` -> ``succeeded`` exists, once: an upgrade window that expired by our clock may still have been used
in its last seconds; the Approval post or the UpgradeSuccess webhook then proves it, and the record tells the truth.
"""

from __future__ import annotations

SCHEDULED = "scheduled"
QUEUED = "queued"
IN_PROGRESS = "in_progress"
AWAITING_CONSUMER = "awaiting_consumer"
RETRY_WAIT = "retry_wait"
UNKNOWN = "unknown"
SUCCEEDED = "succeeded"
FAILED = "failed"
REJECTED = "rejected"

ALL_STATUSES = frozenset({SCHEDULED, QUEUED, IN_PROGRESS, AWAITING_CONSUMER, RETRY_WAIT, UNKNOWN, SUCCEEDED, FAILED,
                          REJECTED})
FINAL = frozenset({SUCCEEDED, FAILED, REJECTED})
"""Nothing moves out of these (except the one evidence case above)."""
WAITING_FOR_TIME = frozenset({SCHEDULED, RETRY_WAIT})
"""Statuses that carry ``due_at`` and the sparse ``waiting`` key of the by_due index."""
CLAIMABLE = frozenset({QUEUED, SCHEDULED, RETRY_WAIT})
"""A worker may claim these (scheduled and retry_wait only once due_at has come)."""
OPEN = frozenset({SCHEDULED, QUEUED, IN_PROGRESS, AWAITING_CONSUMER, RETRY_WAIT, UNKNOWN})

TRANSITIONS: dict[str, frozenset[str]] = {
    SCHEDULED: frozenset({QUEUED, IN_PROGRESS, FAILED}),
    QUEUED: frozenset({IN_PROGRESS, FAILED}),
    RETRY_WAIT: frozenset({QUEUED, IN_PROGRESS, FAILED}),
    IN_PROGRESS: frozenset({SUCCEEDED, FAILED, UNKNOWN, RETRY_WAIT, AWAITING_CONSUMER}),
    AWAITING_CONSUMER: frozenset({SUCCEEDED, FAILED}),
    UNKNOWN: frozenset({SUCCEEDED, FAILED, RETRY_WAIT, UNKNOWN}),  # unknown -> unknown: escalation
    FAILED: frozenset({SUCCEEDED}),  # only an expired upgrade window proven used (see above)
    SUCCEEDED: frozenset(),
    REJECTED: frozenset(),
}

WINDOW_EXPIRED = "upgrade_window_expired"
"""failure_reason of an allowUpgrade operation whose 30 minutes passed without an Approval or Denial."""

API_STATUS = {
    SCHEDULED: QUEUED,
    QUEUED: QUEUED,
    RETRY_WAIT: QUEUED,
    IN_PROGRESS: IN_PROGRESS,
    AWAITING_CONSUMER: IN_PROGRESS,
    UNKNOWN: UNKNOWN,
    SUCCEEDED: SUCCEEDED,
    FAILED: FAILED,
    REJECTED: FAILED,
}
"""The merchant API's vocabulary (queued, in_progress, succeeded, failed, unknown) for each internal status."""


class IllegalTransition(RuntimeError):
    """A programming error: a write asked for a move the state machine does not have."""


def check_transition(sources: frozenset[str] | set[str] | tuple[str, ...], target: str) -> None:
    for source in sources:
        if target not in TRANSITIONS.get(source, frozenset()):
            raise IllegalTransition(f"{source} -> {target} is not a transition of the operation state machine")


def is_final(record: dict) -> bool:
    return record.get("status") in FINAL
