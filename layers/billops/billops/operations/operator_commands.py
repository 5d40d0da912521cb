"""Commands an operator runs inside the stack (``billops ccbill check|resume``), through the reconciliation function.

Why there: it is the function that calls CCBill's DataLink besides the worker, from the same fixed egress IP when the
stack has one (template.yaml, WorkerFixedEgressIp), with the DataLink login and the upgrade key's KMS grant - so the
check sees what CCBill sees of billops, and the operator needs only lambda:InvokeFunction. The event:

    {"billops_command": "ccbill_check", "subscription_id": "...", "upgrade_subscription_id": "..." (optional)}
    {"billops_command": "ccbill_resume", "by": "who", "reason": "why"}

Anything else is refused with ``{"error": ...}`` (never an exception: the CLI prints it).
"""

from __future__ import annotations

import re
from typing import Any

SUBSCRIPTION_ID = re.compile(r"^\d{1,20}$")
COMMANDS = ("ccbill_check", "ccbill_resume")


def is_command(event: Any) -> bool:
    return isinstance(event, dict) and "billops_command" in event


def run(services: Any, event: dict[str, Any], *, client_factory: Any = None) -> dict[str, Any]:
    command = event.get("billops_command")
    if command == "ccbill_check":
        return _check(services, event, client_factory)
    if command == "ccbill_resume":
        return _resume(services, event)
    return {"error": f"unknown billops_command {str(command)[:40]!r} (known: {', '.join(COMMANDS)})"}


def _check(services: Any, event: dict[str, Any], client_factory: Any) -> dict[str, Any]:
    from billops.ccbill.account_check import run_check
    from billops.ccbill.client import CCBillClient

    subscription_id = str(event.get("subscription_id") or "").strip()
    upgrade_subscription_id = str(event.get("upgrade_subscription_id") or "").strip() or None
    for name, value in (("subscription_id", subscription_id), ("upgrade_subscription_id", upgrade_subscription_id)):
        if value is not None and not SUBSCRIPTION_ID.match(value):
            return {"error": f"{name} must be CCBill's subscription ID (digits)"}
    # This status read is the check call itself: a client without the breaker's refusal (run_check tells the breaker
    # what CCBill answered, and closes it when the login passes).
    client = (client_factory or CCBillClient.from_env)()
    record = services.facts_store.get(subscription_id) or {}
    upgrade_record = services.facts_store.get(upgrade_subscription_id) if upgrade_subscription_id else None
    result = run_check(client, subscription_id=subscription_id, client_subacc=record.get("client_subacc") or None,
                       upgrade_subscription_id=upgrade_subscription_id,
                       upgrade_client_subacc=(upgrade_record or {}).get("client_subacc") or None,
                       breaker=services.breaker)
    result["known_to_billops"] = bool(record)
    return result


def _resume(services: Any, event: dict[str, Any]) -> dict[str, Any]:
    breaker = services.breaker
    if breaker is None:
        return {"error": "this function has no CCBill circuit breaker"}
    by = str(event.get("by") or "billops ccbill resume")[:100]
    reason = str(event.get("reason") or "an operator resumed CCBill calls")[:300]
    resumed = breaker.close(by=by, reason=reason)
    status = breaker.status()
    return {"resumed": resumed, "was_open": resumed, "open": status.open,
            "consecutive_minus7": status.consecutive_minus7, "threshold": status.threshold}
