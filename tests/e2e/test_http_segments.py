"""The HTTP API emulator and moto's server answer each request in one write, buffered (billops_local.http_gateway,
billops_local.moto_speed): a client that asks ``Expect: 100-continue`` still gets its "100 Continue" before it sends
the body, and then the answer, over the same kept-alive connection."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.e2e


def _read_head(connection: socket.socket, buffer: bytearray) -> bytes:
    while b"\r\n\r\n" not in buffer:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection after {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


def _answer(connection: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    head = _read_head(connection, buffer)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(buffer) < length:
        chunk = connection.recv(65536)
        assert chunk
        buffer += chunk
    body, buffer[:] = bytes(buffer[:length]), buffer[length:]
    return head.split(b"\r\n", 1)[0], body


def _continued_then_answered(url: str, path: str, headers: dict[str, str], body: bytes) -> list[tuple[bytes, bytes]]:
    address = urlparse(url)
    answers = []
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        buffer = bytearray()
        for _ in range(2):  # twice over one connection: kept alive
            lines = [f"POST {path} HTTP/1.1", f"Host: {address.netloc}", f"Content-Length: {len(body)}",
                     "Expect: 100-continue", *(f"{name}: {value}" for name, value in headers.items())]
            connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            assert _read_head(connection, buffer).split(b"\r\n", 1)[0] == b"HTTP/1.1 100 Continue"
            connection.sendall(body)
            answers.append(_answer(connection, buffer))
    return answers


def test_the_http_api_emulator_continues_then_answers(local_stack):
    answers = _continued_then_answered(local_stack.api_url, "/webhooks/ccbill?eventType=NewSaleSuccess",
                                       {"Content-Type": "application/json"}, b'{"subscriptionId": "1"}')
    assert [status.split(b" ")[1] for status, _ in answers] == [b"403", b"403"]  # no webhook token: refused


def test_moto_continues_then_answers(local_stack):
    answers = _continued_then_answered(local_stack.aws_endpoint, "/", {
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0"}, b"{}")
    for status, body in answers:
        assert status == b"HTTP/1.1 200 OK"
        assert "billops-local-EventsTable" in json.loads(body)["TableNames"]
