"""What the operations functions read (docs/operations.md lists them).

Kept apart from the webhook path's settings so the webhook receiver never needs to know about queues.
"""

from __future__ import annotations

from pydantic import Field

from billops.settings.base import Flag, Number, SettingsModel, Text, Whole


class OperationSettings(SettingsModel):
    operations_table: Text = Field("billops-operations", validation_alias="BILLOPS_OPERATIONS_TABLE")
    queue_url: Text = Field(None, validation_alias="BILLOPS_OPERATIONS_QUEUE_URL")
    dead_letter_queue_url: Text = Field(None, validation_alias="BILLOPS_OPERATIONS_DLQ_URL")
    event_bus_name: Text = Field(None, validation_alias="BILLOPS_EVENT_BUS_NAME")
    max_attempts: Whole = Field(5, ge=1, validation_alias="BILLOPS_OPERATION_MAX_ATTEMPTS")
    retry_base_seconds: Number = Field(30.0, ge=0, validation_alias="BILLOPS_OPERATION_RETRY_BASE_SECONDS")
    retry_cap_seconds: Number = Field(3600.0, ge=0, validation_alias="BILLOPS_OPERATION_RETRY_CAP_SECONDS")
    lease_seconds: Number = Field(120.0, ge=0.1, validation_alias="BILLOPS_OPERATION_LEASE_SECONDS")
    """How long a claim holds: longer than CCBill's connect + read timeouts plus the writes around the call, shorter
    than the queue's visibility timeout (so a redelivered message finds a dead worker's lease expired)."""
    settle_window_seconds: Number = Field(1800.0, ge=0, validation_alias="BILLOPS_SETTLE_WINDOW_SECONDS")
    """How long an unknown outcome waits for evidence (a webhook) before a person is asked (escalation)."""
    upgrade_window_seconds: Number = Field(1800.0, ge=0, validation_alias="BILLOPS_UPGRADE_WINDOW_SECONDS")
    """CCBill's allowUpgrade window: 30 minutes (ccbill-subscription-upgrade-system.txt)."""
    evidence_tolerance_seconds: Number = Field(300.0, ge=0, validation_alias="BILLOPS_EVIDENCE_TOLERANCE_SECONDS")
    """A webhook counts as evidence of a call if CCBill's timestamp or our receipt is at most this much earlier."""
    upgrade_repeat_window_seconds: Number = Field(2592000.0, ge=0,
                                                  validation_alias="BILLOPS_UPGRADE_REPEAT_WINDOW_SECONDS")
    """A second upgrade to a destination an upgrade succeeded to less than this long ago is refused unless forced
    (upgrade_guard.py)."""
    settle_by_failure_webhooks: Flag = Field(True, validation_alias="BILLOPS_SETTLE_BY_FAILURE_WEBHOOKS")
    """UpSaleFailure / UpgradeFailure deliveries settle a matching unknown upgrade as failed (settlement.py)."""
    refresh_stale_seconds: Number = Field(86400.0, ge=0, validation_alias="BILLOPS_REFRESH_STALE_SECONDS")
    refresh_limit: Whole = Field(20, ge=0, validation_alias="BILLOPS_RECONCILE_REFRESH_LIMIT")
    scheduler_batch: Whole = Field(100, ge=1, validation_alias="BILLOPS_SCHEDULER_BATCH")
    paused_recheck_seconds: Number = Field(60.0, ge=0, validation_alias="BILLOPS_OPERATION_PAUSED_RECHECK_SECONDS")
    """How long an operation waits before it looks again while CCBill calls are paused (circuit breaker open)."""
