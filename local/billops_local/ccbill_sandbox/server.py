"""The sandbox's HTTP server: CCBill's three scripts, the admin API under /sandbox, and start_sandbox().

CCBill paths (GET or form POST, as CCBill accepts both):
    /utils/subscriptionManagement.cgi   viewSubscriptionStatus, cancel, discount, extend, refund, void, voidOrRefund
    /jpost/billingApi.cgi               chargeByPreviousTransactionId, upgradeSubscription
    /jpost/upgradeSubscription.cgi      allowUpgrade (backend post), the consumer's upgrade form (enc / action)

Admin API (JSON): see docs/ccbill-client.md, "The CCBill sandbox".
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from billops.reference.currencies import normalise_numeric

from billops_local.ccbill_sandbox import wire_format
from billops_local.ccbill_sandbox.accounts import DEFAULT_ACCOUNTS, SandboxAccount
from billops_local.ccbill_sandbox.faults import DATALINK_TEXT, Fault, FaultInjector, parse_fault
from billops_local.ccbill_sandbox.lifecycle import Lifecycle
from billops_local.ccbill_sandbox.rules import CCBILL_PATHS, UPGRADE_PATH, Answer, CCBillRules, action_of
from billops_local.ccbill_sandbox.state import ACTIVE, EXPIRED, SandboxState, iso
from billops_local.ccbill_sandbox.webhook_config import WebhookConfig, WebhookConfigError, new_seed
from billops_local.ccbill_sandbox.webhook_generator import WebhookGenerator
from billops_local.ccbill_sandbox.webhooks import WebhookDispatcher

logger = logging.getLogger("billops_local.ccbill_sandbox")

MAX_BODY = 64 * 1024
_MASKED = frozenset({"username", "password"})
_SUBSCRIPTION_PATH = re.compile(r"^/sandbox/subscriptions/(\d{1,20})(?:/(renew|cancel|expire|chargeback))?$")
_PRICE = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
ERROR_PAGE = ("<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1>"
              "<p>The server encountered an internal error.</p></body></html>\n")
REDIRECT_TARGET = "/login.cgi?reason=session"
"""Where the http_302 fault points: a login page, as a front end that dropped the request's session might."""
MAINTENANCE_PAGE = ("<html><head><title>Maintenance</title></head><body><h1>CCBill is down for maintenance"
                    "</h1></body></html>\n")


class AdminError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


class Sandbox:
    """Everything one running sandbox holds; the HTTP handler and the SandboxHandle both work on it."""

    def __init__(self, accounts: Iterable[SandboxAccount], webhook_url: str | None, webhook_format: str, *,
                 upgrade_key: Any = None, enc_recipe: Any = None, clock: Callable[[], datetime] | None = None,
                 webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0),
                 webhook_config: WebhookConfig | None = None) -> None:
        self.state = SandboxState(accounts, clock)
        generator = WebhookGenerator(webhook_config or WebhookConfig(seed=new_seed(), format=webhook_format))
        self.dispatcher = WebhookDispatcher(webhook_url, generator.config.format, retry_delays=webhook_retry_delays,
                                            now=self.state.now, generator=generator)
        self.lifecycle = Lifecycle(self.state, self.dispatcher.enqueue)
        self.rules = CCBillRules(self.state, self.lifecycle, upgrade_key=upgrade_key, enc_recipe=enc_recipe)
        self.faults = FaultInjector()
        self.stopping = threading.Event()
        self._calls: list[dict[str, Any]] = []
        self._calls_lock = threading.Lock()

    # --- the record of API calls ------------------------------------------------------------------------------

    def record_call(self, method: str, path: str, action: str, params: dict[str, str], client_ip: str,
                    fault: Fault | None) -> dict[str, Any]:
        with self._calls_lock:
            call = {
                "seq": len(self._calls) + 1,
                "at": iso(self.state.now()),
                "method": method,
                "path": path,
                "action": action,
                "params": {k: ("***" if k in _MASKED and path != UPGRADE_PATH else v) for k, v in params.items()},
                "client_ip": client_ip,
                "fault": None if fault is None else fault.mode,
                "applied": False,
                "answer": None,
            }
            self._calls.append(call)
            return call

    def finish_call(self, call: dict[str, Any], answer: dict[str, Any], applied: bool) -> None:
        with self._calls_lock:
            call["answer"] = answer
            call["applied"] = applied

    def calls(self) -> list[dict[str, Any]]:
        with self._calls_lock:
            return json.loads(json.dumps(self._calls))

    def clear_calls(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    # --- admin operations -------------------------------------------------------------------------------------

    def create_subscription(self, body: dict[str, Any]) -> dict[str, Any]:
        accounts = self.state.accounts
        accnum = str(body.get("client_accnum") or next(iter(accounts))).strip()
        account = accounts.get(accnum)
        if account is None:
            raise AdminError(400, f"no sandbox account {accnum}", "client_accnum")
        subacc = str(body.get("client_subacc") or "0000").strip().zfill(4)
        if account.subaccount(subacc) is None:
            raise AdminError(400, f"account {accnum} has no subaccount {subacc}", "client_subacc")
        initial_price = _admin_price(body, "initial_price", required=True)
        initial_period = _admin_int(body, "initial_period", required=True, minimum=1)
        recurring_price = _admin_price(body, "recurring_price") or Decimal("0.00")
        recurring_period = _admin_int(body, "recurring_period", minimum=0) or 0
        recurring = recurring_price > 0 and recurring_period > 0
        if (recurring_price > 0) != (recurring_period > 0):
            raise AdminError(400, "recurring_price and recurring_period go together", "recurring_period")
        rebills = _admin_int(body, "rebills", minimum=0)
        rebills = (99 if recurring else 0) if rebills is None else rebills
        currency = normalise_numeric(body.get("currency_code", "840"))
        if currency is None:
            raise AdminError(400, f"unknown currency {body.get('currency_code')!r}", "currency_code")
        cancel_discount = _admin_price(body, "cancel_discount_price")
        passthrough = _admin_passthrough(body)
        with self.state.lock:
            sub = self.lifecycle.create_subscription(
                client_accnum=accnum, client_subacc=subacc, initial_price=initial_price,
                initial_period=initial_period, recurring_price=recurring_price, recurring_period=recurring_period,
                rebills=rebills, currency_code=currency, username=_admin_text(body, "username"),
                email=_admin_text(body, "email"), password=_admin_text(body, "password"),
                subscription_type_id=_admin_text(body, "subscription_type_id"),
                cancel_discount_price=cancel_discount, passthrough=passthrough,
            )
            return {"subscription_id": sub.subscription_id, "transaction_id": sub.charges[0].transaction_id}

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        with self.state.lock:
            sub = self.state.subscriptions.get(subscription_id)
            if sub is None:
                raise AdminError(404, f"no subscription {subscription_id}", "subscription_id")
            return sub.as_dict()

    def subscription_operation(self, subscription_id: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            sub = self.state.subscriptions.get(subscription_id)
            if sub is None:
                raise AdminError(404, f"no subscription {subscription_id}", "subscription_id")
            if operation == "renew":
                if sub.status != ACTIVE or not sub.is_recurring or sub.next_billing_date is None:
                    raise AdminError(409, f"subscription {subscription_id} is {sub.status} and has no renewal due "
                                          "(only an active recurring subscription with rebills left renews)")
                outcome = str(body.get("outcome") or "success")
                if outcome not in ("success", "failure"):
                    raise AdminError(400, "outcome must be success or failure", "outcome")
                result = self.lifecycle.renew(
                    sub, success=outcome == "success",
                    failure_code=str(body.get("failure_code") or "BE-140"),
                    failure_reason=str(body.get("failure_reason") or "Transaction Denied by Bank"))
            elif operation == "cancel":
                if sub.status != ACTIVE:
                    raise AdminError(409, f"subscription {subscription_id} is already {sub.status}")
                self.lifecycle.cancel(sub, reason=str(body.get("reason") or "Customer request"),
                                      source=str(body.get("source") or "customerSupport"))
                result = {}
            elif operation == "expire":
                if sub.status == EXPIRED:
                    raise AdminError(409, f"subscription {subscription_id} is already expired")
                self.lifecycle.expire(sub)
                result = {}
            else:
                wanted = _admin_text(body, "transaction_id")
                charges = [c for c in sub.charges if c.reversible_amount > 0
                           and (wanted is None or c.transaction_id == wanted)]
                if not charges:
                    raise AdminError(409, "no charge of this subscription can be charged back", "transaction_id")
                charge = charges[-1]
                amount = _admin_price(body, "amount") or charge.reversible_amount
                if amount > charge.reversible_amount:
                    raise AdminError(400, f"at most {charge.reversible_amount} can be charged back", "amount")
                reversal = self.lifecycle.reverse(sub, charge, "chargeback", amount,
                                                  str(body.get("reason") or f"Charged Back on "
                                                                            f"{self.state.now():%m/%d/%Y}"))
                result = {"transaction_id": reversal.transaction_id}
            return {**result, "subscription": sub.as_dict()}

    def advance_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        seconds = body.get("advance_seconds", 0)
        days = body.get("advance_days", 0)
        for name, value in (("advance_seconds", seconds), ("advance_days", days)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise AdminError(400, f"{name} must be a number of at least 0", name)
        with self.state.lock:
            return {"now": iso(self.state.clock.advance(timedelta(days=days, seconds=seconds)))}

    def accounts(self) -> list[dict[str, Any]]:
        result = []
        for account in self.state.accounts.values():
            result.append({
                "client_accnum": account.client_accnum,
                "subaccounts": [{**{k: (str(v) if isinstance(v, Decimal) else v) for k, v in vars(s).items()}}
                                for s in account.subaccounts],
                "datalink_users": [{"username": u.username, "client_subacc": u.subacc} for u in
                                   account.datalink_users],
                "upgrades": [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in vars(u).items()}
                             for u in account.upgrades],
                "upgrade_security": account.upgrade_security,
            })
        return result

    def set_upgrade_security(self, body: dict[str, Any]) -> dict[str, Any]:
        """Every account's upgrade Security Type, as a merchant switches it in CCBill's Admin Portal."""
        from billops_local.ccbill_sandbox.accounts import UPGRADE_SECURITY_TYPES, with_upgrade_security

        security = body.get("upgrade_security")
        if security not in UPGRADE_SECURITY_TYPES:
            raise AdminError(400, f"upgrade_security must be one of {', '.join(UPGRADE_SECURITY_TYPES)}",
                             "upgrade_security")
        allowed = body.get("allowed_ips")
        if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(i, str) for i in allowed)):
            raise AdminError(400, "allowed_ips must be a list of addresses or CIDR ranges", "allowed_ips")
        with self.state.lock:
            accounts = with_upgrade_security(tuple(self.state.accounts.values()), security,
                                             tuple(allowed) if allowed is not None else None)
            self.state.accounts = {account.client_accnum: account for account in accounts}
        return {"upgrade_security": security}

    def reset(self) -> None:
        self.state.reset()
        self.faults.clear()
        self.clear_calls()
        self.dispatcher.clear()


def _admin_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)):
        raise AdminError(400, f"{name} must be text", name)
    return str(value)


def _admin_passthrough(body: dict[str, Any]) -> dict[str, str]:
    """``{"X-user_id": "1234"}``: the form's pass-through variables, which CCBill echoes on the sale's webhook."""
    value = body.get("passthrough") or {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k.startswith("X-") and len(k) > 2 and isinstance(v, (str, int))
            and not isinstance(v, bool) for k, v in value.items()):
        raise AdminError(400, "passthrough must be an object of X-... names to text values", "passthrough")
    return {name: str(text) for name, text in value.items()}


def _admin_price(body: dict[str, Any], name: str, required: bool = False) -> Decimal | None:
    value = body.get(name)
    if value is None:
        if required:
            raise AdminError(400, f"{name} is required", name)
        return None
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not _PRICE.match(text):
        raise AdminError(400, f"{name} must be a price like 19.95", name)
    return Decimal(text).quantize(Decimal("0.01"))


def _admin_int(body: dict[str, Any], name: str, required: bool = False, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise AdminError(400, f"{name} is required", name)
        return None
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) < minimum:
        raise AdminError(400, f"{name} must be a whole number of at least {minimum}", name)
    return int(text)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxRequestHandler)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, like CCBill's front ends, so the client's pool is exercised
    timeout = 30  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out without waiting for the client's delayed ACK
    server_version = "CCBillSandbox/1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.client_address[0], format % args)

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        try:
            body = self._read_body()
        except AdminError as exc:
            self._send_json(exc.status, {"message": exc.message, "param": exc.param})
            return
        if parts.path in CCBILL_PATHS and method in ("GET", "POST"):
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if body:
                params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
            self._ccbill(method, parts.path, params)
            return
        if parts.path.startswith("/sandbox"):
            try:
                status, payload = self._admin(method, parts.path, body)
            except AdminError as exc:
                status, payload = exc.status, {"message": exc.message, "param": exc.param}
            self._send_json(status, payload)
            return
        self._send(404, "Not Found\n", "text/plain; charset=utf-8")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise AdminError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    # --- CCBill's scripts -------------------------------------------------------------------------------------

    def _ccbill(self, method: str, path: str, params: dict[str, str]) -> None:
        sandbox = self.sandbox
        action = action_of(path, params)
        fault = sandbox.faults.take(action)
        call = sandbox.record_call(method, path, action, params, self.client_address[0], fault)
        mode = fault.mode if fault else None

        if fault is not None and mode not in ("slow", "decline", "decline_timeout") and not fault.applies_change:
            self._fault_without_change(fault, call)
            return
        if mode == "slow":
            sandbox.stopping.wait(fault.seconds)
        answer = sandbox.rules.handle(path, params, self.client_address[0],
                                      decline=mode in ("decline", "decline_timeout"), http_method=method)
        if mode in ("timeout_after", "decline_timeout"):
            sandbox.finish_call(call, {"dropped": "timeout", "would_have_answered": _describe(answer, params)},
                                answer.applied)
            sandbox.stopping.wait(fault.seconds)
            self._drop()
            return
        if mode == "reset_after":
            sandbox.finish_call(call, {"dropped": "reset", "would_have_answered": _describe(answer, params)},
                                answer.applied)
            self._reset()
            return
        if mode == "http_302":
            sandbox.finish_call(call, {"http_status": 302, "location": REDIRECT_TARGET,
                                       "would_have_answered": _describe(answer, params)}, answer.applied)
            self._send(302, "", "text/plain; charset=utf-8", {"Location": REDIRECT_TARGET})
            return
        status, text, content_type = _render(answer, params)
        sandbox.finish_call(call, {"http_status": status, "body": text}, answer.applied)
        self._send(status, text, content_type)

    def _fault_without_change(self, fault: Fault, call: dict[str, Any]) -> None:
        sandbox = self.sandbox
        params_xml = wire_format.wants_xml(call["params"])
        if fault.mode == "timeout_before":
            sandbox.finish_call(call, {"dropped": "timeout"}, False)
            sandbox.stopping.wait(fault.seconds)
            self._drop()
            return
        if fault.mode == "reset_before":
            sandbox.finish_call(call, {"dropped": "reset"}, False)
            self._reset()
            return
        if fault.mode == "http_500":
            status, text, content_type = 500, ERROR_PAGE, "text/html; charset=utf-8"
        elif fault.mode == "empty_body":
            status, text, content_type = 200, "", "text/plain; charset=utf-8"
        elif fault.mode == "html_200":
            status, text, content_type = 200, MAINTENANCE_PAGE, "text/html; charset=utf-8"
        elif fault.datalink_code is not None:
            message = DATALINK_TEXT.get(fault.datalink_code, f"Error: {fault.datalink_code}")
            status, text, content_type = 200, message + "\n", "text/plain; charset=utf-8"
        else:
            if fault.code is None:
                raise ValueError("a code fault needs its code")
            if call["path"] == UPGRADE_PATH:
                text, content_type = wire_format.render_bare(str(fault.code))
            else:
                text, content_type = wire_format.render_code(fault.code, params_xml)
            status = 200
        sandbox.finish_call(call, {"http_status": status, "body": text}, False)
        self._send(status, text, content_type)

    def _drop(self) -> None:
        """Close without an answer (after a timeout): the client sees a read timeout or a closed connection."""
        self.close_connection = True

    def _reset(self) -> None:
        """Reset the TCP connection (RST instead of FIN): the client sees 'connection reset by peer'."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # --- admin API --------------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        sandbox = self.sandbox
        body: dict[str, Any] = {}
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                raise AdminError(400, "the body must be JSON") from None
            if not isinstance(body, dict):
                raise AdminError(400, "the body must be a JSON object")
        path = path.rstrip("/") or "/"
        routes: dict[tuple[str, str], Callable[[], tuple[int, Any]]] = {
            ("GET", "/sandbox/health"): lambda: (200, {"status": "ok", "now": iso(sandbox.state.now())}),
            ("POST", "/sandbox/subscriptions"): lambda: (201, sandbox.create_subscription(body)),
            ("GET", "/sandbox/subscriptions"): lambda: (200, self._all_subscriptions()),
            ("GET", "/sandbox/calls"): lambda: (200, sandbox.calls()),
            ("DELETE", "/sandbox/calls"): lambda: (sandbox.clear_calls(), (200, {"cleared": True}))[1],
            ("GET", "/sandbox/webhooks"): lambda: (200, sandbox.dispatcher.records()),
            ("DELETE", "/sandbox/webhooks"): lambda: (sandbox.dispatcher.clear(), (200, {"cleared": True}))[1],
            ("GET", "/sandbox/faults"): lambda: (200, sandbox.faults.pending()),
            ("POST", "/sandbox/faults"): lambda: self._add_fault(body),
            ("DELETE", "/sandbox/faults"): lambda: (sandbox.faults.clear(), (200, {"cleared": True}))[1],
            ("GET", "/sandbox/ledger"): lambda: (200, list(sandbox.state.ledger)),
            ("GET", "/sandbox/clock"): lambda: (200, {"now": iso(sandbox.state.now())}),
            ("POST", "/sandbox/clock"): lambda: (200, sandbox.advance_clock(body)),
            ("GET", "/sandbox/accounts"): lambda: (200, sandbox.accounts()),
            ("POST", "/sandbox/accounts/upgrade_security"): lambda: (200, sandbox.set_upgrade_security(body)),
            ("POST", "/sandbox/reset"): lambda: (sandbox.reset(), (200, {"reset": True}))[1],
            ("GET", "/sandbox/config"): lambda: (200, sandbox.dispatcher.generator.config.as_dict()),
            ("POST", "/sandbox/config"): lambda: self._configure_webhooks(body),
        }
        route = routes.get((method, path))
        if route is not None:
            return route()
        match = _SUBSCRIPTION_PATH.match(path)
        if match and method == "GET" and match.group(2) is None:
            return 200, sandbox.subscription(match.group(1))
        if match and method == "POST" and match.group(2) is not None:
            return 200, sandbox.subscription_operation(match.group(1), match.group(2), body)
        if any(p == path for (_, p) in routes) or match:
            raise AdminError(405, f"{method} is not supported for {path}")
        raise AdminError(404, f"no admin endpoint {path}")

    def _all_subscriptions(self) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return [sub.as_dict() for sub in self.sandbox.state.subscriptions.values()]

    def _configure_webhooks(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Version per event type, format, variation and seed of the deliveries to come (webhook_config.py)."""
        try:
            config = self.sandbox.dispatcher.generator.configure(body)
        except WebhookConfigError as exc:
            raise AdminError(400, exc.message, exc.param) from None
        logger.info("CCBill sandbox %s", config.describe())
        return 200, config.as_dict()

    def _add_fault(self, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            fault = parse_fault(body)
        except ValueError as exc:
            param, _, message = str(exc).partition(": ")
            raise AdminError(400, message or str(exc), param) from None
        self.sandbox.faults.add(fault)
        return 201, fault.as_dict()

    # --- writing ----------------------------------------------------------------------------------------------

    def _send(self, status: int, text: str, content_type: str, headers: dict[str, str] | None = None) -> None:
        payload = text.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client went away (it timed out); nothing to do

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, indent=None, default=str) + "\n", "application/json")


def _render(answer: Answer, params: dict[str, str]) -> tuple[int, str, str]:
    xml = wire_format.wants_xml(params)
    if answer.kind == "code":
        if answer.code is None:
            raise ValueError("a code answer needs its code")
        text, content_type = wire_format.render_code(answer.code, xml)
    elif answer.kind == "document":
        text, content_type = wire_format.render_document(answer.fields, xml)
    elif answer.kind == "bare":
        text, content_type = wire_format.render_bare(str(answer.code))
    else:
        text, content_type = wire_format.render_page(answer.title, answer.message, answer.fields)
    return HTTPStatus.OK, text, content_type


def _describe(answer: Answer, params: dict[str, str]) -> str:
    return _render(answer, params)[1]


class SandboxHandle:
    """A running sandbox: its URL, its state for in-process tests, and stop()."""

    def __init__(self, server: SandboxHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.sandbox = server.sandbox
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"

    @property
    def sms_url(self) -> str:
        return self.url + "/utils/subscriptionManagement.cgi"

    @property
    def billing_api_url(self) -> str:
        return self.url + "/jpost/billingApi.cgi"

    @property
    def upgrade_url(self) -> str:
        return self.url + UPGRADE_PATH

    def create_subscription(self, **fields: Any) -> str:
        return self.sandbox.create_subscription(fields)["subscription_id"]

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.sandbox.subscription(subscription_id)

    def add_fault(self, action: str, mode: str, count: int = 1, seconds: float | None = None) -> None:
        spec: dict[str, Any] = {"action": action, "mode": mode, "count": count}
        if seconds is not None:
            spec["seconds"] = seconds
        self.sandbox.faults.add(parse_fault(spec))

    def calls(self) -> list[dict[str, Any]]:
        return self.sandbox.calls()

    def set_upgrade_security(self, security: str, allowed_ips: tuple[str, ...] | None = None) -> None:
        """Switch every account's upgrade Security Type ("encryption" | "backend_post")."""
        self.sandbox.set_upgrade_security({"upgrade_security": security,
                                           "allowed_ips": list(allowed_ips) if allowed_ips is not None else None})

    def webhooks(self) -> list[dict[str, Any]]:
        return self.sandbox.dispatcher.records()

    def ledger(self) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return list(self.sandbox.state.ledger)

    def configure_webhooks(self, **changes: Any) -> dict[str, Any]:
        """As ``POST /sandbox/config``: format, versions, variation, seed (webhook_config.py)."""
        return self.sandbox.dispatcher.generator.configure(changes).as_dict()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every webhook queued so far has been delivered or given up."""
        return self.sandbox.dispatcher.wait_idle(timeout)

    def reset(self) -> None:
        self.sandbox.reset()

    def stop(self) -> None:
        self.sandbox.stopping.set()  # wakes handlers holding a connection for a timeout fault
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.sandbox.dispatcher.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 4000,
    webhook_url: str | None = None,
    webhook_format: str = "json",
    accounts: Iterable[SandboxAccount] = DEFAULT_ACCOUNTS,
    *,
    upgrade_key: Any = None,
    enc_recipe: Any = None,
    clock: Callable[[], datetime] | None = None,
    webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0),
    webhook_config: WebhookConfig | None = None,
) -> SandboxHandle:
    """Start the sandbox on ``host:port`` (0 = a free port) in a background thread.

    ``upgrade_key``: the account's TripleDES key text (as Merchant Support hands it out, as BILLOPS_UPGRADE_KEY) or
    an UpgradeKey, so the upgrade form can read ``enc``; ``enc_recipe``: an upgrade_encryption.EncRecipe (default
    recipe otherwise).
    ``webhook_config``: versions, format, variation and seed of the webhooks (default: ``webhook_format``, the
    newest versions, no variation, a random seed).
    """
    if isinstance(upgrade_key, str):
        from billops.ccbill.upgrade_encryption import EncRecipe, derive_key

        encoding = (enc_recipe or EncRecipe()).key_encoding
        upgrade_key = derive_key(upgrade_key, encoding)
    sandbox = Sandbox(accounts, webhook_url, webhook_format, upgrade_key=upgrade_key, enc_recipe=enc_recipe,
                      clock=clock, webhook_retry_delays=webhook_retry_delays, webhook_config=webhook_config)
    try:
        server = SandboxHTTPServer((host, port), sandbox)
    except BaseException:
        sandbox.dispatcher.stop()
        raise
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"ccbill-sandbox-{port}", daemon=True)
    thread.start()
    handle = SandboxHandle(server, thread)
    # The webhook URL carries the receiver's token: never logged.
    logger.info("CCBill sandbox listening on %s (webhooks: %s, %s)", handle.url,
                re.sub(r"(?i)(token=)[^&]*", r"\1***", webhook_url) if webhook_url else "none",
                sandbox.dispatcher.generator.config.describe())
    return handle
