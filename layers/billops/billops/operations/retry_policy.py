"""When to try again an operation that certainly did not take effect: exponential backoff with full jitter.

delay = random(0, min(cap, base * 2^(attempt-1))), or CCBill's own wait when it named one (-12: an hour after three
failed logins) - whichever is longer. Full jitter ("Exponential Backoff and Jitter", AWS Architecture Blog) spreads
the retries of many operations that failed together (a CCBill outage, -23/-24 velocity limits) instead of sending
them back in one wave. Only ``failed`` outcomes marked retryable, and ``unknown`` ones proven not applied, come here;
the attempt limit ends the operation as failed with CCBill's last answer.

FIFO queues cannot delay one message, so a retry is a record in ``retry_wait`` with ``due_at``; the scheduler's
sweep puts it back on the queue when that time comes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 5
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False, compare=False)

    def may_retry(self, attempts_made: int, max_attempts: int | None = None) -> bool:
        return attempts_made < (max_attempts or self.max_attempts)

    def delay_seconds(self, attempts_made: int, retry_after_seconds: float | None = None) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(attempts_made - 1, 0)))
        delay = self.uniform(0.0, ceiling) if ceiling > 0 else 0.0
        if retry_after_seconds:
            delay = max(delay, float(retry_after_seconds))
        return delay

    def due_at(self, now: datetime, attempts_made: int, retry_after_seconds: float | None = None) -> datetime:
        return now + timedelta(seconds=self.delay_seconds(attempts_made, retry_after_seconds))
