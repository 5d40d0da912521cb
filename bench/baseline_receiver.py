"""The baseline: a CCBill webhook receiver built the way the common Powertools tutorial builds one.

What a merchant would otherwise write, following Powertools for AWS Lambda (Python)'s documentation:
* a REST API (API Gateway v1) Lambda proxy integration routed with ``APIGatewayRestResolver``
  (docs: core/event_handler/api_gateway);
* ``@idempotent`` on the handler with ``DynamoDBPersistenceLayer`` and ``event_key_jmespath="body"`` (docs:
  utilities/idempotency, "Getting started" and the API reference's example ``IdempotencyConfig(
  event_key_jmespath="body")``): an idempotency table (key ``id``, TTL attribute ``expiration``), records valid for
  the default hour, in-progress record written before the handler runs and completed after it;
* one ``PutItem`` of the event into an events table through the boto3 resource API (the tutorials' ``table =
  boto3.resource("dynamodb").Table(...)``), keyed by a fresh UUID;
* ``Logger`` with ``inject_lambda_context`` and one info line, ``Metrics`` with one count per webhook;
* 512 MB, arm64, Python 3.11.

It is deliberately not improved: no source-address or token check, no validation, no privacy scrubbing, no
stream. It does less work per delivery than billops' receiver, which favours it in the timings.
"""

import json
import os
import time
import uuid
from urllib.parse import parse_qsl

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

MEMORY_SIZE_MB = 512

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()

persistence_layer = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"])
config = IdempotencyConfig(event_key_jmespath="body")
table = boto3.resource("dynamodb").Table(os.environ["EVENTS_TABLE_NAME"])


@app.post("/webhooks/ccbill")
def receive_webhook() -> dict:
    event = app.current_event
    query = event.query_string_parameters or {}
    body = event.decoded_body or ""
    if "json" in (event.headers.get("Content-Type") or event.headers.get("content-type") or ""):
        payload = json.loads(body)
    else:
        payload = dict(parse_qsl(body, keep_blank_values=True))
    item = {
        "id": str(uuid.uuid4()),
        "event_type": query.get("eventType"),
        "subscription_id": payload.get("subscriptionId"),
        "received_at": int(time.time()),
        "payload": payload,
    }
    table.put_item(Item=item)
    logger.info("webhook stored", extra={"event_type": item["event_type"], "id": item["id"]})
    metrics.add_metric(name="WebhookReceived", unit=MetricUnit.Count, value=1)
    return {"received": True, "id": item["id"]}


@logger.inject_lambda_context
@metrics.log_metrics
@idempotent(config=config, persistence_store=persistence_layer)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
