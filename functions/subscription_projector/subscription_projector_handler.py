"""The events table's stream -> subscription records (and the operations those deliveries settle).

Powertools' BatchProcessor reports only the failed records back to Lambda (ReportBatchItemFailures), so one
subscription that keeps conflicting does not hold back the others; the stream retries it, then sends it to the
dead-letter queue configured in the template.

Two additions for operations (issue 4), both only when their environment is configured:
* a sale webhook naming an original subscription (UpgradeSuccess, UpSaleSuccess, CrossSaleSuccess) settles the
  matching upgrade operation at once (billops.operations.settlement.Settler.settle_from_delivery). It runs for
  "already_applied" deliveries too, so a settlement that failed is retried with the stream record; a storage
  failure fails the record, and the stream delivers it again;
* a fold that changed a subscription's state publishes SubscriptionChanged on the domain event bus (best effort:
  a failed put is logged and counted, never retried - the record itself is the truth).

Before folding, the batch's inserts are written to the delivery log (billops.storage.delivery_log_table: what the
API's recent deliveries, the CLI's quarantine list and its dead-letter replay read), so a batch that then fails to
fold is still logged. If the log cannot be written the whole batch fails and the stream retries it: the fold is
idempotent, and the log item of a delivery is always the same item.

Then the batch is counted into the daily figures (billops.reports.batch_counting, issue 16), from the deliveries'
images, exactly once whatever the stream redelivers; a failure there fails the batch too, for the same reason.
"""

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from billops.settings import get_settings
from billops.storage.delivery_log_table import DeliveryLogTable, entries_from_stream
from billops.storage.subscriptions_table import SubscriptionsTable
from billops.subscriptions.projection import SubscriptionProjection

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def _domain_events():
    bus = (os.environ.get("BILLOPS_EVENT_BUS_NAME") or "").strip()
    if not bus:
        return None
    from billops.operations.domain_events import EventBridgePublisher

    return EventBridgePublisher(bus)


def _settler():
    if not (os.environ.get("BILLOPS_OPERATIONS_TABLE") or "").strip():
        return None
    from billops.operations.wiring import build_services

    return build_services(on_metric=_count).settler


def _report_counter():
    """The daily figures (billops.reports), counted from each batch, when BILLOPS_REPORTS_TABLE is configured."""
    from billops.reports.batch_counting import ReportCounter

    return ReportCounter.from_env()


publisher = _domain_events()
settler = _settler()
report_counter = _report_counter()


def publish_change(previous, current) -> None:
    if publisher is None:
        return
    from billops.operations.domain_events import (
        DomainEventsUnavailable,
        subscription_changed_event,
        subscription_changes,
    )

    changed = subscription_changes(previous, current)
    if not changed:
        return
    try:
        publisher.publish([subscription_changed_event(previous, current, changed, str(current.get("updated_at")))])
        _count("SubscriptionChangedPublished")
    except DomainEventsUnavailable:
        logger.warning("SubscriptionChanged not published", extra={"subscription_id": current.get("subscription_id")})
        _count("DomainEventPublishFailed")


projection = SubscriptionProjection(SubscriptionsTable(get_settings().subscriptions_table), on_change=publish_change,
                                    customer_reference_field=get_settings().customer_reference_field)
delivery_log = DeliveryLogTable(get_settings().delivery_log_table)


def project_record(record: DynamoDBRecord) -> str:
    if record.event_name is None or record.event_name.name not in ("INSERT", "MODIFY"):
        return "skipped"
    image = record.dynamodb.new_image if record.dynamodb else None
    if not image:
        return "skipped"
    outcome = projection.apply_delivery(image)
    if outcome == "applied":
        metrics.add_metric(name="SubscriptionEventApplied", unit=MetricUnit.Count, value=1)
    if settler is not None:
        for settled in settler.settle_from_delivery(image):
            logger.info("operation settled by webhook", extra={"operation_id": settled.get("operation_id"),
                                                                       "status": settled.get("status")})
    logger.debug("stream record projected", extra={"outcome": outcome, "event_type": image.get("event_type")})
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    delivery_log.record(entries_from_stream(event.get("Records") or []))
    if report_counter is not None:
        report_counter.count_stream_batch(event.get("Records") or [])
    return process_partial_response(event=event, record_handler=project_record, processor=processor, context=context)
