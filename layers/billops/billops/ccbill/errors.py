"""Exceptions of the CCBill client. Messages are written for a person and never contain a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billops.api_errors import ApiError
    from billops.ccbill.outcomes import CCBillOutcome


class CCBillError(Exception):
    """Base of every error raised by billops.ccbill."""


class CCBillRequestInvalid(CCBillError, ValueError):
    """A request was refused before it reached CCBill. ``param`` is CCBill's name of the offending parameter."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

    def api_error(self) -> ApiError:
        """The ChargeBee-style 400 the merchant API answers for this rejection."""
        from billops.api_errors import param_wrong_value

        return param_wrong_value(self.message, self.param)


class CCBillConfigurationError(CCBillError):
    """The client's settings are missing or inconsistent (a URL, the upgrade catalogue, the enc settings...)."""


class CCBillOutcomeError(CCBillError):
    """Raised by CCBillOutcome.raise_for_outcome(); carries the outcome."""

    def __init__(self, outcome: CCBillOutcome) -> None:
        code = "" if outcome.code is None else f" (code {outcome.code})"
        super().__init__(f"CCBill {outcome.action} {outcome.status.value}{code}: {outcome.meaning}")
        self.outcome = outcome


class CCBillActionFailed(CCBillOutcomeError):
    """CCBill certainly did not perform the action."""


class CCBillOutcomeUnknown(CCBillOutcomeError):
    """CCBill may have performed the action: find out before sending it again."""
