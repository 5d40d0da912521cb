"""OperationsQueue (SQS FIFO) -> operations carried out against CCBill, each exactly once.

Thin by design: the decisions are in billops.operations.operation_runner. Powertools' SqsFifoPartialProcessor
reports failed messages back (ReportBatchItemFailures) and, with skip_group_on_error, hands back only the rest of a
failed message's group, so other subscriptions in the batch go ahead while one subscription's order is kept.
A message is "failed" only when it must come back: DynamoDB or the dead-letter queue did not answer, or too little
time was left for a CCBill call. Everything else (succeeded, failed at CCBill, unknown, rejected) is recorded on
the operation and the message is done. Message bodies are never logged (the record has what is needed).
"""

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from billops.composition.observability import observability
from billops.operations.wiring import build_services

logger, metrics, _count = observability()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
services = build_services(on_metric=_count)


def process_message(record: SQSRecord, lambda_context: object = None) -> str:
    result = services.runner.handle(
        record.body,
        request_id=getattr(lambda_context, "aws_request_id", None),
        remaining_ms=getattr(lambda_context, "get_remaining_time_in_millis", None),
    )
    for name in result.metrics:
        _count(name)
    logger.info("operation message handled", extra={"outcome": result.outcome, "operation_id": result.operation_id,
                                                    "status": result.status, "sqs_message_id": record.message_id})
    return result.outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=process_message, processor=processor,
                                    context=context)
