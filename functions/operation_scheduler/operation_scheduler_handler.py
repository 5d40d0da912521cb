"""Every minute (EventBridge schedule): operations whose run_at or retry time has come go back on the queue.

The sweep is billops.operations.scheduler (why a sweep and not per-operation schedules is written there).
"""

from aws_lambda_powertools.metrics import MetricUnit

from billops.composition.observability import observability
from billops.operations.wiring import build_services

logger, metrics, _count = observability()
services = build_services(on_metric=_count)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    result = services.scheduler.run()
    metrics.add_metric(name="DueOperationsEnqueued", unit=MetricUnit.Count, value=len(result.enqueued))
    if result.failed:
        metrics.add_metric(name="DueOperationsNotEnqueued", unit=MetricUnit.Count, value=len(result.failed))
    return result.as_dict()
