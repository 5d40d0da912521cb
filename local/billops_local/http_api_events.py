"""API Gateway HTTP API events (payload format 2.0), built the way AWS builds them, and the sample events on disk.

What AWS does, and where that is written down:
- Shape, lower-cased header names, duplicate headers and duplicate query keys combined with commas, cookies moved
  from the Cookie header into ``cookies``: https://docs.aws.amazon.com/apigateway/latest/developerguide/
  http-api-develop-integrations-lambda.html ("Payload format version"), and the sample event
  aws-powertools/powertools-lambda-python tests/events/apiGatewayProxyV2Event.json. The Cookie header itself is not
  in ``headers`` (Kludex/mangum PR #153 shows a captured v2 event; hattipjs/hattip PR #159).
- Which bodies are base64-encoded: AWS does not list them. Measured against live AWS (ministackorg/ministack PR #766,
  function ``_v2_request_body_is_text``): bodies are passed as text only for ``text/*``, ``application/json``,
  ``application/xml`` and ``application/javascript``; everything else, including a missing Content-Type and
  ``application/x-www-form-urlencoded``, arrives base64-encoded with ``isBase64Encoded: true`` (the same is reported
  for Slack's form posts in middyjs/middy PR #603). ``sam local`` differs (it encodes only binaryMediaTypes): our
  emulator follows AWS.
- ``queryStringParameters``, ``pathParameters``, ``cookies`` and ``body`` are left out when there is nothing to put in
  them, as AWS does (an empty value would be ``null`` to strict parsers).

Run ``python -m billops_local.http_api_events --write events`` to regenerate events/webhooks/.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from billops_local.webhook_samples import EVENT_TYPES, encode_body, sample_fields, webhook_query

ACCOUNT_ID = "123456789012"
API_ID = "b1llops0ps"
REGION = "us-east-1"

WEBHOOK_PATH = "/webhooks/ccbill"
WEBHOOK_ROUTE_KEY = "POST /webhooks/ccbill"
SAMPLE_TOKEN = "local-webhook-token"  # nosec B105  # the local stack's made-up webhook token
SAMPLE_SOURCE_IP = "64.38.212.10"
"""Inside CCBill's documented range 64.38.212.0/24 (ccbill-facts.md 1.2)."""
SAMPLE_USER_AGENT = "billops-local/sample (CCBill webhook replay)"
SAMPLE_TIME = datetime(2026, 1, 15, 10, 30, 1, 250000, tzinfo=UTC)
"""One second after the samples' CCBill timestamp."""
BODY_FORMATS = ("urlencoded", "json")

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


def body_is_text(content_type: str | None) -> bool:
    """Whether HTTP API hands this content type's body to Lambda as text (else base64; see the module docstring)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in _TEXT_TYPES


def _header_pairs(headers: Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.extend((name, part) for part in value)
    return pairs


def _combined_headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers, cookies


def _query_parameters(raw_query: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    return parameters


def _request_id(seed: str | None) -> str:
    """HTTP API request ids look like "JKJaXmPLvHcESHA=" (11 bytes, base64)."""
    raw = hashlib.sha256(seed.encode()).digest()[:11] if seed is not None else os.urandom(11)
    return base64.b64encode(raw).decode("ascii")


def http_api_event(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]],
    body: bytes | None,
    source_ip: str,
    route_key: str | None = None,
    path_parameters: dict | None = None,
    stage: str = "$default",
    *,
    request_time: datetime | None = None,
    request_id: str | None = None,
) -> dict:
    """The event HTTP API passes to a Lambda proxy integration (payload format 2.0) for one request.

    ``headers`` may be a mapping (a list value means a repeated header) or (name, value) pairs. ``route_key`` is the
    matched route ("POST /webhooks/ccbill"), "$default" when None. AWS adds the forwarding headers
    (x-forwarded-for gets the source IP appended), host, content-length and a trace id, unless present already.
    ``request_time``/``request_id`` make the event reproducible (the sample files); by default: now, random.
    """
    moment = (request_time or datetime.now(UTC)).astimezone(UTC)
    epoch_ms = int(moment.timestamp() * 1000)
    request_id = request_id or _request_id(None)
    method = method.upper()
    header_map, cookies = _combined_headers(_header_pairs(headers))

    domain_name = header_map.get("host") or f"{API_ID}.execute-api.{REGION}.amazonaws.com"
    header_map.setdefault("host", domain_name)
    if body:
        header_map.setdefault("content-length", str(len(body)))
    forwarded_for = header_map.get("x-forwarded-for")
    header_map["x-forwarded-for"] = f"{forwarded_for}, {source_ip}" if forwarded_for else source_ip
    header_map.setdefault("x-forwarded-port", "443")
    header_map.setdefault("x-forwarded-proto", "https")
    trace_suffix = hashlib.sha256(request_id.encode()).hexdigest()[:24]
    header_map.setdefault("x-amzn-trace-id", f"Root=1-{epoch_ms // 1000:08x}-{trace_suffix}")

    route_key = route_key or "$default"
    event: dict = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = header_map
    query_parameters = _query_parameters(raw_query)
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": header_map.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": epoch_ms,
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        if body_is_text(header_map.get("content-type")):
            event["body"] = body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def sample_webhook_event(event_type: str, body_format: str) -> dict:
    """The HTTP API event of CCBill posting the sample payload of `event_type` in `body_format` to our webhook."""
    fields = sample_fields(event_type)
    body, content_type = encode_body(fields, body_format)
    query = urlencode(list(webhook_query(event_type, fields, SAMPLE_TOKEN).items()))
    headers = {
        "accept": "*/*",
        "content-type": content_type,
        "host": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "user-agent": SAMPLE_USER_AGENT,
    }
    return http_api_event(
        "POST",
        WEBHOOK_PATH,
        query,
        headers,
        body,
        SAMPLE_SOURCE_IP,
        route_key=WEBHOOK_ROUTE_KEY,
        request_time=SAMPLE_TIME,
        request_id=_request_id(f"{event_type}-{body_format}"),
    )


README = """\
# Sample webhook events

Generated by `python -m billops_local.http_api_events --write events` (do not edit by hand: a unit test checks
that these files are exactly what the generator produces).

For each of CCBill's 20 webhook event types there are two files:

- `<EventType>-urlencoded.json`: CCBill posting the event URL-encoded (its original format). API Gateway's HTTP API
  hands such bodies to Lambda **base64-encoded** (`isBase64Encoded: true`).
- `<EventType>-json.json`: the same fields posted as JSON (passed as text, `isBase64Encoded: false`).

Each file is a complete API Gateway HTTP API event (payload format 2.0) for `POST /webhooks/ccbill` from source IP
`64.38.212.10` (inside CCBill's range 64.38.212.0/24) with the query string
`token=local-webhook-token&clientAccnum=900100&clientSubacc=0000&eventType=<EventType>&eventGroupType=Subscription`.
The payloads are the newest documented version of each type, with fake personal data (example.com, 203.0.113.0/24);
the purchase samples (sales, upgrades, up-sales, cross-sales; approved or declined), CustomerDataUpdate and
UserReactivation carry a `password`, which must never be stored.

Invoke the receiver with one of them:

```sh
sam build
sam local invoke WebhookReceiverFunction -e events/webhooks/NewSaleSuccess-json.json
```

`sam local invoke` needs Docker. The receiver reads its token from Secrets Manager (BILLOPS_WEBHOOK_TOKEN_SECRET_ARN),
as in AWS: point it (with `--env-vars <file>.json`) at a secret of yours whose value is `local-webhook-token`, or
edit the `token` in the event. Without Docker, `make run` serves the same receiver at
http://127.0.0.1:3000/webhooks/ccbill.
In tests and the local stack the same events are built in memory by `billops_local.http_api_events`.
"""


def write_sample_events(directory: Path) -> list[Path]:
    """Write <directory>/webhooks/<EventType>-{urlencoded,json}.json for all 20 types, plus a README."""
    target = Path(directory) / "webhooks"
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for event_type in EVENT_TYPES:
        for body_format in BODY_FORMATS:
            path = target / f"{event_type}-{body_format}.json"
            text = json.dumps(sample_webhook_event(event_type, body_format), indent=2, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    readme = target / "README.md"
    readme.write_text(README, encoding="utf-8")
    written.append(readme)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billops_local.http_api_events", description=__doc__.split("\n")[0])
    parser.add_argument("--write", metavar="DIRECTORY", type=Path, required=True,
                        help="write DIRECTORY/webhooks/*.json (the repository's sample events live in events/)")
    arguments = parser.parse_args(argv)
    for path in write_sample_events(arguments.write):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
