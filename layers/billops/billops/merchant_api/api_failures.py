"""The merchant API's error answers, in ChargeBee's model (billops.api_errors), plus what that module lacks.

Every error body is ``{"message", "type", "api_error_code", "param"}``. When a CCBill result code stands behind a
refusal (a discount CCBill would refuse with -18, say), the body adds ``ccbill_code`` and ``ccbill_meaning`` -
CCBill's own words for the code (billops.ccbill.result_codes). Extra response headers (``Retry-After``, ``Allow``)
travel with the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from billops.api_errors import INVALID_REQUEST, OPERATION_FAILED, ApiError


@dataclass(frozen=True)
class MerchantApiError(ApiError):
    ccbill_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields added to the body (e.g. ``operation_id``: the existing operation a 409 names)."""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().body())
        if self.ccbill_code is not None:
            from billops.ccbill.result_codes import result_code

            body["ccbill_code"] = self.ccbill_code
            body["ccbill_meaning"] = result_code(self.ccbill_code).meaning
        body.update(self.extra)
        return body


def error_headers(error: ApiError) -> dict[str, str]:
    return dict(error.headers) if isinstance(error, MerchantApiError) else {}


def authentication_failed(message: str = "Sorry, authentication failed. Invalid API Key.") -> MerchantApiError:
    # ChargeBee sends no "type" for authentication errors. WWW-Authenticate tells a browser / curl what to send.
    return MerchantApiError(401, message, "api_authentication_failed", None, None,
                            headers={"WWW-Authenticate": 'Basic realm="billops"'})


def request_limit_exceeded(retry_after_seconds: int) -> MerchantApiError:
    return MerchantApiError(
        429, "Sorry, access has been blocked temporarily due to repeated authentication failures. Please try after "
             "some time.", "api_request_limit_exceeded", OPERATION_FAILED, None,
        headers={"Retry-After": str(max(1, int(retry_after_seconds)))})


def authorization_failed(scope: str) -> MerchantApiError:
    return MerchantApiError(403, f"Sorry, authorization failed. The key does not have the {scope!r} scope this "
                                 "request needs.", "api_authorization_failed", None, None)


def param_wrong_value(message: str, param: str | None, ccbill_code: int | None = None) -> MerchantApiError:
    return MerchantApiError(400, message, "param_wrong_value", INVALID_REQUEST, param, ccbill_code)


def invalid_request(message: str, param: str | None = None) -> MerchantApiError:
    return MerchantApiError(400, message, "invalid_request", INVALID_REQUEST, param)


def invalid_state(message: str, ccbill_code: int | None = None) -> MerchantApiError:
    return MerchantApiError(409, message, "invalid_state_for_request", INVALID_REQUEST, None, ccbill_code)


def upgrade_already_requested(message: str, operation_id: str) -> MerchantApiError:
    """409: the subscription already has an upgrade to this destination (in flight or recently succeeded)."""
    return MerchantApiError(409, message, "invalid_state_for_request", INVALID_REQUEST, "force",
                            extra={"operation_id": operation_id})


def idempotency_conflict() -> MerchantApiError:
    return MerchantApiError(409, "This Idempotency-Key was already used for a different request; the first request "
                                 "is kept. Use a new key for a new request.", "idempotency_key_reused",
                            INVALID_REQUEST, "Idempotency-Key")


def not_found(message: str) -> MerchantApiError:
    # The ID is part of the URL, so there is no "param" (ChargeBee does the same).
    return MerchantApiError(404, message, "resource_not_found", INVALID_REQUEST, None)


def method_not_supported(method: str, allowed: list[str]) -> MerchantApiError:
    return MerchantApiError(405, f"Sorry, the http method {method} is not supported for this url.",
                            "http_method_not_supported", INVALID_REQUEST, None,
                            headers={"Allow": ", ".join(allowed)})


def service_unavailable() -> MerchantApiError:
    # No detail: the cause is in our logs. Repeating the request with the same Idempotency-Key is always safe.
    return MerchantApiError(500, "Sorry, something went wrong when trying to process the request. It is safe to "
                                 "repeat it with the same Idempotency-Key.", "internal_error", OPERATION_FAILED, None)
