"""Every 15 minutes (EventBridge schedule): settle unknown and stuck operations, expire allowUpgrade windows,
publish domain events still pending, and queue refreshes of stale subscriptions (billops.operations.reconciliation).

Invoked by the CLI with ``{"billops_command": ...}`` it runs an operator command instead (``billops ccbill check`` /
``resume``: billops.operations.operator_commands), from this function's egress address and with its grants.
"""

from aws_lambda_powertools.metrics import MetricUnit

from billops.composition.observability import observability
from billops.operations import operator_commands
from billops.operations.wiring import build_services

logger, metrics, _count = observability()
services = build_services(on_metric=_count)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    if operator_commands.is_command(event):
        answer = operator_commands.run(services, event)
        logger.info("operator command run", extra={"billops_command": event.get("billops_command"),
                                                   "summary": answer.get("summary"), "error": answer.get("error")})
        return answer
    result = services.reconciler.run()
    metrics.add_metric(name="ReconciliationErrors", unit=MetricUnit.Count, value=result.errors)
    return result.as_dict()
