"""The events table's stream -> subscription records (and the operations those deliveries settle, the daily figures).

The work (log the batch, count it, fold, settle, publish SubscriptionChanged) is billops.composition.projector's
Projector, which the CLI's ``billops replay projector`` runs too. Powertools' BatchProcessor reports only the failed
records back to Lambda (ReportBatchItemFailures), so one subscription that keeps conflicting does not hold back the
others; the stream retries it, then sends it to the dead-letter queue configured in the template.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from billops.composition.observability import observability
from billops.composition.projector import projector_from_env

logger, metrics, count = observability()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
projector = projector_from_env(on_metric=count, logger=logger)


def project_record(record: DynamoDBRecord) -> str:
    image = record.dynamodb.new_image if record.dynamodb else None
    if record.event_name is None or record.event_name.name not in ("INSERT", "MODIFY") or not image:
        return "skipped"
    outcome = projector.apply(image)
    logger.debug("stream record projected", extra={"outcome": outcome, "event_type": image.get("event_type")})
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    projector.record_batch(event.get("Records") or [])
    try:
        return process_partial_response(event=event, record_handler=project_record, processor=processor,
                                        context=context)
    finally:
        projector.flush_published()  # the batch's SubscriptionChanged events, 10 per PutEvents
