"""The typed answer of every CCBill call: succeeded, failed, or unknown.

A call to CCBill ends in one of three states, and the difference between the last two is what keeps a subscriber
from being charged twice:

* ``succeeded`` - CCBill said it did it.
* ``failed`` - CCBill certainly did not do it (it said so with a code that means "refused", or the request never
  left this process). ``retryable`` says whether sending the same request again may give another answer.
* ``unknown`` - the request may have been applied: result code -7, a read timeout, a connection reset after the
  request was written, an HTTP 5xx, a body nobody can read. The caller must find out what happened (webhooks,
  ``viewSubscriptionStatus``) before it sends the request again; ``retryable`` then says whether doing so may help.

The client never retries an action that can move money; it hands this object back and the caller decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class OutcomeKind(StrEnum):
    """Where the outcome came from, so that logs and metrics can tell a decline from a timeout."""

    RESULT_CODE = "result_code"  # CCBill answered a code of its table (1, 0, -1 ... -24)
    UNDOCUMENTED_CODE = "undocumented_code"  # a number CCBill's table does not list (-13, -14, -17, ...)
    DATA = "data"  # a document: subscription status, or approved=1 with the new subscriptionId
    DECLINED = "declined"  # approved=0 with declineCode / declineText / denialId
    DATALINK_ERROR = "datalink_error"  # "Error: 02 ..." text from the DataLink layer in front of the API
    UNREADABLE_RESPONSE = "unreadable_response"  # empty, HTML, non-numeric: nobody can say what happened
    HTTP_STATUS = "http_status"  # a 3xx/4xx/5xx before any CCBill answer
    TRANSPORT = "transport"  # DNS, refused, TLS, timeouts, resets
    CREDENTIALS_UNAVAILABLE = "credentials_unavailable"  # Secrets Manager did not give us the DataLink login
    CIRCUIT_OPEN = "circuit_open"  # not sent: calls are paused after a run of -7 (circuit_breaker.py)


@dataclass(frozen=True)
class CCBillOutcome:
    """What one call to CCBill came to. Never holds a credential; ``data`` is CCBill's answer, field by field."""

    action: str
    status: OutcomeStatus
    meaning: str
    retryable: bool
    kind: OutcomeKind
    code: int | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    param: str | None = None
    http_status: int | None = None
    retry_after_seconds: int | None = None
    attempts: int = 1
    elapsed_ms: int | None = None

    def __post_init__(self) -> None:
        # A read-only copy: an outcome is a record of what CCBill said, nobody edits it afterwards.
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    @property
    def succeeded(self) -> bool:
        return self.status is OutcomeStatus.SUCCEEDED

    @property
    def failed(self) -> bool:
        return self.status is OutcomeStatus.FAILED

    @property
    def unknown(self) -> bool:
        return self.status is OutcomeStatus.UNKNOWN

    def raise_for_outcome(self) -> CCBillOutcome:
        """Return self if it succeeded; otherwise raise CCBillActionFailed or CCBillOutcomeUnknown carrying self."""
        from billops.ccbill.errors import CCBillActionFailed, CCBillOutcomeUnknown

        if self.succeeded:
            return self
        if self.unknown:
            raise CCBillOutcomeUnknown(self)
        raise CCBillActionFailed(self)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for logs and API answers (there is nothing secret in an outcome)."""
        return {
            "action": self.action,
            "status": self.status.value,
            "kind": self.kind.value,
            "code": self.code,
            "meaning": self.meaning,
            "retryable": self.retryable,
            "param": self.param,
            "http_status": self.http_status,
            "retry_after_seconds": self.retry_after_seconds,
            "attempts": self.attempts,
            "elapsed_ms": self.elapsed_ms,
            "data": dict(self.data),
        }
