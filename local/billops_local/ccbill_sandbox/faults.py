"""Fault injection: the next N calls of an action misbehave on purpose.

Modes (``POST /sandbox/faults`` with ``{"action", "mode", "count", "seconds"}``):

=================  =========================================================================================
``code:<n>``       answer result code n (e.g. ``code:-7``) without applying anything
``timeout_before`` hold the connection ``seconds`` (default 45, above the client's default read timeout), then
                   close it without an answer; nothing is applied
``timeout_after``  apply the change (charge, cancel...), then hold and close without an answer - the case that
                   makes a blind retry charge twice
``http_500``       answer HTTP 500 with an HTML error page; nothing is applied
``slow``           wait ``seconds`` (default 1) and then answer normally
``reset_before``   reset the TCP connection (RST) without applying
``reset_after``    apply, then reset the connection
``empty_body``     answer HTTP 200 with an empty body; nothing is applied
``html_200``       answer HTTP 200 with an HTML maintenance page; nothing is applied
``http_302``       apply the change, then answer HTTP 302 (a redirect to a login page) instead of the result: an
                   answer CCBill documents nowhere, after which only looking can tell what happened
``datalink_error:<nn>``  answer DataLink's ``Error: <nn> ...`` text (01 too many failed logins, 02 failed login,
                   03 inactive username, 04 check IP failed); nothing is applied
``decline``        chargeByPreviousTransactionId / upgradeSubscription: answer approved=0 with a decline
                   (and the UpSaleFailure / UpgradeFailure webhook)
``decline_timeout``  decline as ``decline`` (the failure webhook is sent), then hold and close without an answer:
                   an unknown outcome that only the failure webhook settles
=================  =========================================================================================

``action`` is CCBill's action name (``chargeByPreviousTransactionId``, ``allowUpgrade``...) or ``*`` for any.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

SIMPLE_MODES = frozenset({
    "timeout_before", "timeout_after", "http_500", "slow", "reset_before", "reset_after", "empty_body",
    "html_200", "decline", "http_302", "decline_timeout",
})
_CODE_MODE = re.compile(r"^code:(-?\d{1,4})$")
_DATALINK_MODE = re.compile(r"^datalink_error:(\d{2})$")
DEFAULT_SECONDS = {"slow": 1.0, "timeout_before": 45.0, "timeout_after": 45.0, "decline_timeout": 45.0}
DATALINK_TEXT = {
    "01": "Error: 01 Too many failed logins",
    "02": "Error: 02 Failed login",
    "03": "Error: 03 Inactive username",
    "04": "Error: 04 Check IP failed",
}


@dataclass
class Fault:
    action: str
    mode: str
    remaining: int
    seconds: float
    code: int | None = None
    datalink_code: str | None = None

    @property
    def applies_change(self) -> bool:
        return self.mode in ("timeout_after", "reset_after", "slow", "decline", "http_302", "decline_timeout")

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "mode": self.mode, "remaining": self.remaining, "seconds": self.seconds}


def parse_fault(spec: dict[str, Any]) -> Fault:
    """A Fault from the admin API's JSON; ValueError with a message naming the field otherwise."""
    action = str(spec.get("action") or "").strip()
    if not action:
        raise ValueError("action: give CCBill's action name, or * for any action")
    mode = str(spec.get("mode") or "").strip()
    code = datalink = None
    if (match := _CODE_MODE.match(mode)) is not None:
        code = int(match.group(1))
    elif (match := _DATALINK_MODE.match(mode)) is not None:
        datalink = match.group(1)
    elif mode not in SIMPLE_MODES:
        raise ValueError(f"mode: {mode!r} is not one of code:<n>, datalink_error:<nn>, {', '.join(sorted(SIMPLE_MODES))}")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("count: a whole number of calls, at least 1")
    seconds = spec.get("seconds", DEFAULT_SECONDS.get(mode, 0.0))
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0 or seconds > 600:
        raise ValueError("seconds: a number between 0 and 600")
    return Fault(action, mode, count, float(seconds), code, datalink)


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, action: str) -> Fault | None:
        """The fault for this call, if any (counting it down); faults apply in the order they were added."""
        with self._lock:
            for fault in self._faults:
                if fault.action in (action, "*") and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.as_dict() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
