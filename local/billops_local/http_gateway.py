"""An API Gateway HTTP API emulator: the template's HttpApi routes, served on 127.0.0.1, calling the real handlers.

What it reproduces of HTTP API (payload format 2.0, Lambda proxy integrations):
  * routes are the template's HttpApi events (``METHOD /path``, ``ANY``, ``{param}``, greedy ``{proxy+}``,
    ``$default``); the most specific route wins; no match answers 404 ``{"message":"Not Found"}``;
  * the event comes from ``billops_local.http_api_events.http_api_event`` with ``requestContext.http.sourceIp`` set to
    the TCP peer's address (X-Forwarded-For is only ever appended to, never believed);
  * the handler's result is mapped back the way HTTP API maps it: ``statusCode``/``headers``/``cookies``/``body``/
    ``isBase64Encoded``, or any other JSON value as a 200 ``application/json`` body; a handler that raises, or an
    unusable result, answers 500 ``{"message":"Internal Server Error"}`` (the traceback goes to stderr);
  * bodies above HTTP API's 10 MiB limit answer 413.
The request line is never logged as received: the webhook token travels in the query string.

Paths under ``/__local`` are not the API's: they go to the local stack's own endpoints (``control``, see
billops_local.local_control), e.g. ``POST /__local/schedules/<FunctionId>`` to run a schedule now.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from billops_local.aws_environment import LocalFunction, ensure_port_free
from billops_local.template_resources import HttpRouteSpec

log = logging.getLogger("billops_local.http")

# An upgrade link's token (billops.upgrade_page.link_tokens: base64url claims "." a 43-character HMAC-SHA256).
UPGRADE_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def loggable_path(raw_path: str) -> str:
    """The request path for the log: an upgrade link's token (whoever holds it may act on the consumer's upgrade
    page) is masked, as API Gateway's access log shows only the route key."""
    return "/".join("<upgrade token>" if UPGRADE_TOKEN.fullmatch(segment) else segment
                    for segment in raw_path.split("/"))

MAX_REQUEST_BYTES = 10 * 1024 * 1024
NOT_FOUND = {"message": "Not Found"}
INTERNAL_ERROR = {"message": "Internal Server Error"}
TOO_LARGE = {"message": "Request Entity Too Large"}
_PARAMETER = re.compile(r"^\{([A-Za-z0-9_.:-]+)(\+?)\}$")


@dataclass(frozen=True)
class Route:
    """One route: its key ("POST /things/{id}"), the function it integrates with, and how its path matches."""

    route_key: str
    method: str  # upper case or ANY; "" for $default
    path: str
    function: LocalFunction

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path.strip("/") else []

    @property
    def is_default(self) -> bool:
        return self.route_key == "$default"

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters when this route matches, else None."""
        if self.is_default:
            return {}
        if self.method not in ("ANY", method):
            return None
        wanted = self.segments
        got = raw_path.strip("/").split("/") if raw_path.strip("/") else []
        if raw_path.endswith("/") and raw_path != "/" and not self.path.endswith("/"):
            return None
        parameters: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            variable = _PARAMETER.match(segment)
            if variable and variable.group(2):  # {name+}: one or more remaining segments, must be last
                rest = got[index:]
                if not rest or not all(rest):
                    return None
                parameters[variable.group(1)] = unquote("/".join(rest))
                return parameters
            if index >= len(got):
                return None
            if variable:
                if not got[index]:
                    return None
                parameters[variable.group(1)] = unquote(got[index])
            elif segment != got[index]:
                return None
        return parameters if len(got) == len(wanted) else None

    def specificity(self) -> tuple[int, ...]:
        """Sort key, most specific first: literal segments before variables before greedy; $default last."""
        if self.is_default:
            return (2, 0, 0, 0)
        kinds = [_PARAMETER.match(segment) for segment in self.segments]
        greedy = any(kind and kind.group(2) for kind in kinds)
        variables = sum(1 for kind in kinds if kind)
        literals = len(kinds) - variables
        return (1 if greedy else 0, -literals, variables, 1 if self.method == "ANY" else 0)


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda route: route.specificity())
        keys = [route.route_key for route in self.routes]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise ValueError(f"duplicate routes: {sorted(duplicates)}")

    @classmethod
    def from_template(cls, routes: Iterable[HttpRouteSpec], functions: Mapping[str, LocalFunction]) -> RouteTable:
        return cls(
            Route(spec.route_key, "" if spec.path == "$default" else spec.method, spec.path,
                  functions[spec.function_logical_id])
            for spec in routes
        )

    @property
    def route_keys(self) -> set[str]:
        return {route.route_key for route in self.routes}

    def find(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            parameters = route.match(method.upper(), raw_path)
            if parameters is not None:
                return route, parameters
        return None


# ----------------------------------------------------------------------------------------------------------------
# Lambda result -> HTTP response
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, document: Any) -> HttpResponse:
    body = json.dumps(document, separators=(",", ":")).encode()  # {"message":"Not Found"}, byte for byte
    return HttpResponse(status, [("Content-Type", "application/json")], body)


class MalformedLambdaResponse(ValueError):
    pass


def response_from_lambda(result: Any) -> HttpResponse:
    """Map a payload-format-2.0 Lambda result to the HTTP response HTTP API would send."""
    if isinstance(result, dict) and "statusCode" in result:
        status = result["statusCode"]
        if isinstance(status, bool) or not isinstance(status, (int, str)) or not str(status).isdigit():
            raise MalformedLambdaResponse(f"statusCode {status!r} is not an integer")
        status = int(status)
        if not 100 <= status <= 599:
            raise MalformedLambdaResponse(f"statusCode {status} is out of range")
        headers: list[tuple[str, str]] = []
        raw_headers = result.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise MalformedLambdaResponse("headers is not an object")
        for name, value in raw_headers.items():
            if isinstance(value, (dict, list)):
                raise MalformedLambdaResponse(f"header {name} is not a string")
            headers.append((str(name), _header_text(value)))
        for cookie in result.get("cookies") or []:
            headers.append(("Set-Cookie", str(cookie)))
        body = result.get("body")
        if body is None:
            payload = b""
        elif not isinstance(body, str):
            raise MalformedLambdaResponse("body is not a string")
        elif result.get("isBase64Encoded"):
            try:
                payload = base64.b64decode(body, validate=True)
            except ValueError as error:
                raise MalformedLambdaResponse("isBase64Encoded body is not base64") from error
        else:
            payload = body.encode("utf-8")
        return HttpResponse(status, headers, payload)
    # Anything else is "valid JSON without a statusCode": 200, application/json, the value as the body.
    if isinstance(result, str):
        payload = result.encode("utf-8")
    else:
        try:
            payload = json.dumps(result).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise MalformedLambdaResponse("the result is not JSON serialisable") from error
    return HttpResponse(200, [("Content-Type", "application/json")], payload)


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ----------------------------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    route_table: RouteTable
    control: Any = None  # billops_local.local_control.LocalControl, or None


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "billops-local-http-api"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # The status line, headers and body leave in one segment, sent at once: written apart, with Nagle's algorithm
    # on, the body waited for the client's delayed ACK of the headers (~40 ms on every request over keep-alive).
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # handle_one_request flushes it after each request

    def handle_expect_100(self) -> bool:
        answered = super().handle_expect_100()
        self.wfile.flush()  # the client waits for "100 Continue" before it sends the body
        return answered

    def _dispatch(self) -> None:
        started = time.monotonic()
        raw_path, _, raw_query = self.path.partition("?")
        raw_query = raw_query.partition("#")[0]
        status = 500
        try:
            body = self._read_body()
            if body is None:
                response = json_response(413, TOO_LARGE)
                self.close_connection = True
            elif self.server.control is not None and self.server.control.handles(raw_path):
                response = self.server.control.handle(self.command, raw_path, body)
            else:
                found = self.server.route_table.find(self.command, raw_path)
                if found is None:
                    response = json_response(404, NOT_FOUND)
                else:
                    route, parameters = found
                    response = self._invoke(route, parameters, raw_path, raw_query, body)
            status = response.status
            self._send(response)
        finally:
            # Never the query string (it carries the webhook token), nor an upgrade link's token (the path is the
            # consumer's credential).
            log.info("%s %s -> %s (%d ms)", self.command, loggable_path(raw_path), status,
                     (time.monotonic() - started) * 1000)

    def _invoke(
        self, route: Route, parameters: dict[str, str], raw_path: str, raw_query: str, body: bytes
    ) -> HttpResponse:
        from billops_local.http_api_events import http_api_event

        event = http_api_event(
            self.command,
            raw_path,
            raw_query,
            list(self.headers.items()),
            body,
            self.client_address[0],
            route_key=route.route_key,
            path_parameters=parameters or None,
        )
        try:
            result = route.function.invoke(event)
        except Exception:  # noqa: BLE001 - whatever the handler raises, HTTP API answers 500
            log.error("%s raised; HTTP API answers 500:\n%s", route.function.logical_id, traceback.format_exc())
            return json_response(500, INTERNAL_ERROR)
        try:
            return response_from_lambda(result)
        except MalformedLambdaResponse as error:
            log.error("%s returned a response HTTP API cannot use (%s); answering 500", route.function.logical_id,
                      error)
            return json_response(500, INTERNAL_ERROR)

    def _read_body(self) -> bytes | None:
        """The request body (chunked or sized); None when it exceeds HTTP API's limit."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            self.send_header(name, value)
        if "apigw-requestid" not in names:
            self.send_header("Apigw-Requestid", base64.b64encode(os.urandom(11)).decode())
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        # BaseHTTPRequestHandler would log the request line, query string (and token) included: log nothing here;
        # _dispatch logs each request without its query, and protocol errors are answered without our help.
        return

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("HTTP protocol error from %s (code %s)", self.client_address[0], args[0] if args else "?")


class HttpGateway:
    """The HTTP API emulator. ``start()`` binds 127.0.0.1:port (0 = any free port) and serves in a thread."""

    def __init__(self, route_table: RouteTable, *, host: str = "127.0.0.1", port: int = 3000,
                 control: Any = None) -> None:
        self.route_table = route_table
        self.control = control
        self.host = host
        self.requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        ensure_port_free(self.host, self.requested_port, what="HTTP API (BILLOPS_API_PORT)")
        server = _Server((self.host, self.requested_port), _RequestHandler)
        server.route_table = self.route_table
        server.control = self.control
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="billops-http-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
