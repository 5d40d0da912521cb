"""Settings of the operations functions, from environment variables (docs/operations.md lists them).

Kept apart from billops.settings (the webhook path's settings) so the webhook receiver never needs to know about
queues, and a missing operations variable cannot break webhook intake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class OperationSettings:
    operations_table: str = "billops-operations"
    queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    event_bus_name: str | None = None
    max_attempts: int = 5
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0
    lease_seconds: float = 120.0
    """How long a claim holds: longer than CCBill's connect + read timeouts plus the writes around the call, shorter
    than the queue's visibility timeout (so a redelivered message finds a dead worker's lease expired)."""
    settle_window_seconds: float = 1800.0
    """How long an unknown outcome waits for evidence (a webhook) before a person is asked (escalation)."""
    upgrade_window_seconds: float = 1800.0
    """CCBill's allowUpgrade window: 30 minutes (ccbill-subscription-upgrade-system.txt)."""
    evidence_tolerance_seconds: float = 300.0
    """A webhook counts as evidence of a call if CCBill's timestamp or our receipt is at most this much earlier."""
    upgrade_repeat_window_seconds: float = 2592000.0
    """A second upgrade to a destination an upgrade succeeded to less than this long ago is refused unless forced
    (upgrade_guard.py)."""
    settle_by_failure_webhooks: bool = True
    """UpSaleFailure / UpgradeFailure deliveries settle a matching unknown upgrade as failed (settlement.py)."""
    refresh_stale_seconds: float = 86400.0
    refresh_limit: int = 20
    scheduler_batch: int = 100
    paused_recheck_seconds: float = 60.0
    """How long an operation waits before it looks again while CCBill calls are paused (circuit breaker open)."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return max(value, minimum)


def operation_settings_from_env(env: Mapping[str, str] | None = None) -> OperationSettings:
    env = os.environ if env is None else env
    return OperationSettings(
        operations_table=env.get("BILLOPS_OPERATIONS_TABLE") or "billops-operations",
        queue_url=(env.get("BILLOPS_OPERATIONS_QUEUE_URL") or "").strip() or None,
        dead_letter_queue_url=(env.get("BILLOPS_OPERATIONS_DLQ_URL") or "").strip() or None,
        event_bus_name=(env.get("BILLOPS_EVENT_BUS_NAME") or "").strip() or None,
        max_attempts=int(_number(env, "BILLOPS_OPERATION_MAX_ATTEMPTS", 5, minimum=1)),
        retry_base_seconds=_number(env, "BILLOPS_OPERATION_RETRY_BASE_SECONDS", 30.0),
        retry_cap_seconds=_number(env, "BILLOPS_OPERATION_RETRY_CAP_SECONDS", 3600.0),
        lease_seconds=_number(env, "BILLOPS_OPERATION_LEASE_SECONDS", 120.0, minimum=0.1),
        settle_window_seconds=_number(env, "BILLOPS_SETTLE_WINDOW_SECONDS", 1800.0),
        upgrade_window_seconds=_number(env, "BILLOPS_UPGRADE_WINDOW_SECONDS", 1800.0),
        evidence_tolerance_seconds=_number(env, "BILLOPS_EVIDENCE_TOLERANCE_SECONDS", 300.0),
        upgrade_repeat_window_seconds=_number(env, "BILLOPS_UPGRADE_REPEAT_WINDOW_SECONDS", 2592000.0),
        settle_by_failure_webhooks=(env.get("BILLOPS_SETTLE_BY_FAILURE_WEBHOOKS") or "true").strip().lower()
        != "false",
        refresh_stale_seconds=_number(env, "BILLOPS_REFRESH_STALE_SECONDS", 86400.0),
        refresh_limit=int(_number(env, "BILLOPS_RECONCILE_REFRESH_LIMIT", 20)),
        scheduler_batch=int(_number(env, "BILLOPS_SCHEDULER_BATCH", 100, minimum=1)),
        paused_recheck_seconds=_number(env, "BILLOPS_OPERATION_PAUSED_RECHECK_SECONDS", 60.0, minimum=0.0),
    )
