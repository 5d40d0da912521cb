"""Error bodies in ChargeBee's error model: {"message", "type", "api_error_code", "param"}.

Every 4xx this project answers (webhooks, merchant API) uses this one shape, so a client handles all errors alike.
Source: ../shared/reference/chargebee-api-conventions.txt ("Error Handling").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

INVALID_REQUEST = "invalid_request"
OPERATION_FAILED = "operation_failed"


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    message: str
    api_error_code: str
    type: str | None = INVALID_REQUEST
    param: str | None = None

    def body(self) -> dict[str, str | None]:
        return {"message": self.message, "type": self.type, "api_error_code": self.api_error_code, "param": self.param}

    def json(self) -> str:
        return json.dumps(self.body())


def param_wrong_value(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "param_wrong_value", INVALID_REQUEST, param)


def invalid_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request", INVALID_REQUEST, param)


def authorization_failed(message: str) -> ApiError:
    # ChargeBee sends no "type" for authentication/authorization errors.
    return ApiError(403, message, "api_authorization_failed", None, None)


def resource_not_found(message: str, param: str | None = None) -> ApiError:
    return ApiError(404, message, "resource_not_found", INVALID_REQUEST, param)


def method_not_supported(method: str) -> ApiError:
    return ApiError(405, f"The http method {method} is not supported for this url.", "http_method_not_supported")


def internal_error() -> ApiError:
    # No detail: the cause is in our logs, not in the answer to a stranger.
    return ApiError(500, "Sorry, something went wrong when trying to process the request.", "internal_error",
                    OPERATION_FAILED, None)
