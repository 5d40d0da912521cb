"""The local stack's own endpoints, served by the HTTP API emulator under ``/__local`` (a prefix the template may not
use for a route; the stack refuses a template that does). JSON in, JSON out; loopback only, like the gateway.

  GET  /__local                                     what runs: schedules, queue pollers, the domain events queue
  GET  /__local/schedules                           every schedule: expression, local period, counts
  POST /__local/schedules/<FunctionId>[/<EventId>]  invoke that schedule's function now, with a fresh scheduled
                                                    event (or the JSON object in the body, as a direct Invoke
                                                    would: the CLI's `billops ccbill check`), and answer when it
                                                    returns:
                                                    200 {"function", "event_id", "event", "result"} or
                                                    500 {"function", "event_id", "errorType", "errorMessage"};
                                                    404 {"message"} for an unknown schedule

Tests trigger the operation scheduler or the reconciliation job this way instead of waiting for the clock:
``requests.post(f"{api_url}/__local/schedules/OperationSchedulerFunction")``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from billops_local.http_gateway import HttpResponse, json_response
from billops_local.schedule_runner import ScheduleNotFound, ScheduleRunner
from billops_local.template_resources import LOCAL_CONTROL_PREFIX


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class LocalControl:
    def __init__(
        self,
        schedules: Callable[[], ScheduleRunner | None],
        overview: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._schedules = schedules
        self._overview = overview

    def handles(self, raw_path: str) -> bool:
        return raw_path == LOCAL_CONTROL_PREFIX or raw_path.startswith(LOCAL_CONTROL_PREFIX + "/")

    def handle(self, method: str, raw_path: str, body: bytes) -> HttpResponse:
        parts = [part for part in raw_path[len(LOCAL_CONTROL_PREFIX):].split("/") if part]
        runner = self._schedules()
        if not parts:
            if method != "GET":
                return json_response(405, {"message": "Method Not Allowed"})
            return json_response(200, self._overview() if self._overview else {})
        if parts[0] != "schedules" or len(parts) > 3:
            return json_response(404, {"message": "Not Found"})
        if runner is None:
            return json_response(404, {"message": "the schedule runner is not running"})
        if len(parts) == 1:
            if method != "GET":
                return json_response(405, {"message": "Method Not Allowed"})
            return json_response(200, {"schedules": runner.status()})
        if method != "POST":
            return json_response(405, {"message": "Method Not Allowed"})
        event = None
        if body.strip():
            try:
                event = json.loads(body)
            except ValueError:
                return json_response(400, {"message": "the body must be a JSON object (the event to invoke with)"})
            if not isinstance(event, dict):
                return json_response(400, {"message": "the body must be a JSON object (the event to invoke with)"})
        try:
            outcome = runner.trigger(parts[1], parts[2] if len(parts) == 3 else None, event=event)
        except ScheduleNotFound as error:
            return json_response(404, {"message": str(error)})
        if outcome.succeeded:
            return json_response(200, {"function": outcome.function_logical_id, "event_id": outcome.event_id,
                                       "event": outcome.event, "result": _jsonable(outcome.result)})
        return json_response(500, {"function": outcome.function_logical_id, "event_id": outcome.event_id,
                                   "errorType": outcome.error_type, "errorMessage": outcome.error_message})
