"""The events table's stream -> subscription records.

Powertools' BatchProcessor reports only the failed records back to Lambda (ReportBatchItemFailures), so one
subscription that keeps conflicting does not hold back the others; the stream retries it, then sends it to the
dead-letter queue configured in the template.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from billops.settings import get_settings
from billops.storage.subscriptions_table import SubscriptionsTable
from billops.subscriptions.projection import SubscriptionProjection

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
projection = SubscriptionProjection(SubscriptionsTable(get_settings().subscriptions_table))


def project_record(record: DynamoDBRecord) -> str:
    if record.event_name is None or record.event_name.name not in ("INSERT", "MODIFY"):
        return "skipped"
    image = record.dynamodb.new_image if record.dynamodb else None
    if not image:
        return "skipped"
    outcome = projection.apply_delivery(image)
    if outcome == "applied":
        metrics.add_metric(name="SubscriptionEventApplied", unit=MetricUnit.Count, value=1)
    logger.debug("stream record projected", extra={"outcome": outcome, "event_type": image.get("event_type")})
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=project_record, processor=processor, context=context)
