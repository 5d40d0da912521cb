"""The CCBill sandbox on a free loopback port, a webhook receiver stub, and a client pointed at the sandbox."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from billops.ccbill.client import CCBillClient
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentials, StaticCredentials
from billops.ccbill.upgrade_encryption import UpgradeEncryptor, derive_key
from billops_local.ccbill_sandbox import (
    DEFAULT_ACCOUNTS,
    DEFAULT_DATALINK_PASSWORD,
    DEFAULT_DATALINK_USERNAME,
    client_subaccounts_setting,
    client_upgrade_catalogue_setting,
    start_sandbox,
)

UPGRADE_KEY = "0123456789abcdeffedcba987654321089abcdef01234567"
WEBHOOK_TOKEN = "sandbox-test-token"


@dataclass
class Delivery:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_ip: str

    @property
    def fields(self) -> dict[str, str]:
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(self.body)
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def event_type(self) -> str:
        return self.query["eventType"]


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; 200 once exhausted

    def of_type(self, event_type: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.event_type == event_type]

    def event_types(self) -> list[str]:
        return [d.event_type for d in self.deliveries]


@pytest.fixture
def receiver():
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            with lock:
                status = state.statuses.pop(0) if state.statuses else 200
                state.deliveries.append(Delivery(parts.path, dict(parse_qsl(parts.query)), dict(self.headers), body,
                                                 self.client_address[0]))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/ccbill?token={WEBHOOK_TOKEN}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox_factory(receiver):
    handles = []

    def start(webhook_format: str = "json", accounts=DEFAULT_ACCOUNTS, **kwargs: Any):
        kwargs.setdefault("upgrade_key", UPGRADE_KEY)
        kwargs.setdefault("webhook_retry_delays", (0.05, 0.1, 0.2))
        handle = start_sandbox("127.0.0.1", 0, receiver.url, webhook_format, accounts, **kwargs)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory()


@pytest.fixture
def post_sandbox(sandbox_factory):
    """The default accounts with the upgrade Security Type Backend HTTPS Post (allowUpgrade), from 127.0.0.1."""
    from billops_local.ccbill_sandbox import with_upgrade_security

    return sandbox_factory(accounts=with_upgrade_security(DEFAULT_ACCOUNTS, "backend_post", ("127.0.0.1/32",)))


@pytest.fixture
def new_subscription(sandbox) -> Callable[..., str]:
    """new_subscription(handle=None, **overrides): a $19.95/30-day recurring subscription in 900100/0000."""

    def create(handle: Any = None, **overrides: Any) -> str:
        fields = {"client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95",
                  "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30, "rebills": 99,
                  "currency_code": "840"}
        fields.update(overrides)
        return (handle or sandbox).create_subscription(**fields)

    return create


@pytest.fixture
def client_factory(sandbox) -> Callable[..., CCBillClient]:
    def make(handle=None, *, credentials: CCBillCredentials | None = None, accounts=DEFAULT_ACCOUNTS,
             **settings: Any) -> CCBillClient:
        handle = handle or sandbox
        settings.setdefault("read_timeout", 1.0)
        settings.setdefault("connect_timeout", 1.0)
        settings.setdefault("subaccounts", client_subaccounts_setting(accounts))
        settings.setdefault("upgrade_catalogue", client_upgrade_catalogue_setting(accounts))
        key = derive_key(UPGRADE_KEY)
        return CCBillClient(
            CCBillClientSettings(environment="local", sms_url=handle.sms_url, billing_api_url=handle.billing_api_url,
                                 upgrade_url=handle.upgrade_url, **settings),
            StaticCredentials(credentials or CCBillCredentials("900100", DEFAULT_DATALINK_USERNAME,
                                                               DEFAULT_DATALINK_PASSWORD)),
            encryptor=UpgradeEncryptor(lambda: key),
            sleep=lambda seconds: None,
        )

    return make


@pytest.fixture
def client(client_factory) -> CCBillClient:
    return client_factory()
