"""The deliveries every benchmark uses: the 20 CCBill event types' sample payloads (billops_local.webhook_samples),
each made unique by its subscription and transaction IDs, and the Lambda events that carry them:

* ours: an API Gateway HTTP API event, payload format 2.0 (billops_local.http_api_events, as AWS builds it: a
  form body arrives base64-encoded);
* the baseline: an API Gateway REST API proxy event, payload format 1.0 (headers as sent, multi-value maps,
  ``requestContext.identity.sourceIp``; a REST API without binary media types passes a form body as text).

The same fields and the same body bytes go to both.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import EVENT_TYPES, encode_body, sample_fields, webhook_query

WEBHOOK_PATH = "/webhooks/ccbill"
CCBILL_SOURCE_IP = "64.38.241.3"
"""Inside CCBill's documented range 64.38.241.0/24."""
USER_AGENT = "CCBill-Webhooks/1.0 (billops bench)"
BODY_FORMATS = ("json", "urlencoded")


@dataclass(frozen=True)
class Delivery:
    event_type: str
    fields: dict[str, str]
    body_format: str

    @property
    def body(self) -> bytes:
        return encode_body(self.fields, self.body_format)[0]

    @property
    def content_type(self) -> str:
        return encode_body(self.fields, self.body_format)[1]

    def in_format(self, body_format: str) -> Delivery:
        return Delivery(self.event_type, self.fields, body_format)


def unique_fields(event_type: str, n: int, run: int = 0) -> dict[str, str]:
    """The sample payload of ``event_type`` with IDs of its own: the n-th delivery of a run never collides with
    another (19-digit IDs with a leading zero, as CCBill's)."""
    subscription_id = f"01{run % 100:02d}{n:015d}"
    overrides: dict[str, str | None] = {"subscriptionId": subscription_id}
    fields = sample_fields(event_type)
    if "transactionId" in fields:
        overrides["transactionId"] = f"02{run % 100:02d}{EVENT_TYPES.index(event_type) if event_type in EVENT_TYPES else 99:02d}{n:013d}"
    if "subscriptionId" not in fields:
        overrides.pop("subscriptionId")  # failures carry no subscription (CCBill sends none)
    return sample_fields(event_type, **overrides)


def delivery_mix(count: int, *, run: int = 0, body_format: str = "json", start: int = 0) -> Iterator[Delivery]:
    """``count`` distinct deliveries cycling through the 20 event types (an even mix)."""
    for n in range(start, start + count):
        event_type = EVENT_TYPES[n % len(EVENT_TYPES)]
        yield Delivery(event_type, unique_fields(event_type, n, run), body_format)


def _request_id(seed: str) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()[:11]).decode("ascii")


def http_api_v2_event(delivery: Delivery, token: str, source_ip: str = CCBILL_SOURCE_IP) -> dict:
    """Ours: what HTTP API gives the receiver for this delivery (route POST /webhooks/ccbill)."""
    body, content_type = encode_body(delivery.fields, delivery.body_format)
    query = urlencode(webhook_query(delivery.event_type, delivery.fields, token))
    return http_api_event("POST", WEBHOOK_PATH, query, {"content-type": content_type, "user-agent": USER_AGENT},
                          body, source_ip, route_key=f"POST {WEBHOOK_PATH}")


def rest_api_v1_event(delivery: Delivery, token: str, source_ip: str = CCBILL_SOURCE_IP,
                      stage: str = "Prod") -> dict:
    """The baseline: what a REST API (Lambda proxy integration, payload format 1.0) gives its handler."""
    body, content_type = encode_body(delivery.fields, delivery.body_format)
    query = webhook_query(delivery.event_type, delivery.fields, token)
    moment = datetime.now(UTC)
    request_id = _request_id(f"{delivery.event_type}{delivery.fields.get('transactionId')}{moment.timestamp()}")
    host = "b4s3l1ne00.execute-api.us-east-1.amazonaws.com"
    headers = {
        "Accept": "*/*",
        "Content-Type": content_type,
        "Host": host,
        "User-Agent": USER_AGENT,
        "X-Amzn-Trace-Id": f"Root=1-{int(moment.timestamp()):08x}-{hashlib.sha256(request_id.encode()).hexdigest()[:24]}",
        "X-Forwarded-For": source_ip,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "Content-Length": str(len(body)),
    }
    return {
        "resource": WEBHOOK_PATH,
        "path": WEBHOOK_PATH,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": dict(query),
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()},
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "b4s3l1ne00",
            "domainName": host,
            "domainPrefix": "b4s3l1ne00",
            "extendedRequestId": request_id,
            "httpMethod": "POST",
            "identity": {"sourceIp": source_ip, "userAgent": USER_AGENT, "accessKey": None, "accountId": None,
                         "caller": None, "cognitoAuthenticationProvider": None, "cognitoAuthenticationType": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None, "principalOrgId": None,
                         "user": None, "userArn": None},
            "path": f"/{stage}{WEBHOOK_PATH}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(moment.timestamp() * 1000),
            "resourceId": "abc123",
            "resourcePath": WEBHOOK_PATH,
            "stage": stage,
        },
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }
