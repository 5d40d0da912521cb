"""One upgrade per subscription and destination, whatever the idempotency keys.

An idempotency key makes one *request* happen once; it cannot tell two requests apart that mean the same upgrade
(a merchant retrying with a fresh key, two systems asking at once, a message put on the queue by hand). Two
chargeByPreviousTransactionId calls charge the subscriber twice and leave two new subscriptions and the original
all billing. So before an upgrade is recorded (merchant API) and again before the worker calls CCBill (a queue
message cannot bypass it), ``UpgradeGuard.admit`` refuses it when the subscription already has, to the same
destination account and subaccount:

* an upgrade by API (chargeByPreviousTransactionId) that is not finished (scheduled, queued, in progress, waiting
  for a retry, or of unknown outcome - it may have charged);
* for an upgrade by API: an allowUpgrade window the consumer may still be using (``awaiting_consumer``);
* an upgrade that succeeded less than ``BILLOPS_UPGRADE_REPEAT_WINDOW_SECONDS`` ago (30 days),

unless the request says ``force: true``. The refusal names the existing operation.

Reading the subscription's operations (the by_subscription index, each re-read consistently) is not enough when two
requests arrive at once: both would find nothing. Upgrades by API therefore also take a *guard item* in the
operations table - key ``guard_upgrade#<subscription>#<accnum>#<subacc>``, naming its holder operation - with a
conditional put: of two requests racing, one writes it and the other finds it held. A holder that failed, was
rejected, or succeeded longer ago than the window releases it implicitly (the next upgrade replaces the item,
conditionally on the holder it read); a holder whose record was never written (its request died between the guard
and the record) after ``GUARD_CREATION_GRACE_SECONDS``. The guard item has no ``subscription_id`` and no ``status``,
so it is in none of the table's indexes. allowUpgrade operations take no guard: they charge nothing themselves, and
the consumer's own page already refuses a subscription upgraded to its offer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billops import operation_states as states
from billops.operations.operation_records import iso, parse_iso, utc_now
from billops.storage.operations_table import OperationsTable

logger = logging.getLogger(__name__)

CHARGE_UPGRADE = "charge_by_previous_transaction"
ALLOW_UPGRADE = "allow_upgrade"
GUARD_PREFIX = "guard_upgrade#"
GUARD_CREATION_GRACE_SECONDS = 120
"""How long a guard whose holder has no record yet counts as held (the API writes the record right after)."""
UNFINISHED_CHARGES = frozenset({states.SCHEDULED, states.QUEUED, states.IN_PROGRESS, states.RETRY_WAIT,
                                states.UNKNOWN})
DUPLICATE_UPGRADE = "duplicate_upgrade"
"""failure_reason of an upgrade the worker refused because another one holds its destination."""


@dataclass(frozen=True)
class Destination:
    client_accnum: str
    client_subacc: str

    def __str__(self) -> str:
        return f"{self.client_accnum}/{self.client_subacc}"


def destination_of(parameters: Mapping[str, Any], catalogue: Any, plan: Mapping[str, Any] | None = None
                   ) -> Destination | None:
    """Where an upgrade operation leads: its plan's or its parameters' account/subaccount, or its catalogue
    upgrade's; None when that cannot be told (an unknown catalogue key: the plan refuses it anyway)."""
    plan = plan or {}
    accnum = plan.get("new_client_accnum") or parameters.get("new_client_accnum")
    subacc = plan.get("new_client_subacc") or parameters.get("new_client_subacc")
    if accnum and subacc:
        return Destination(str(accnum), str(subacc).zfill(4))
    key = parameters.get("upgrade") or plan.get("upgrade")
    try:
        option = catalogue.get(key) if catalogue is not None and len(catalogue) else None
    except ValueError:  # CCBillRequestInvalid: not (or no longer) in the catalogue
        return None
    return None if option is None else Destination(option.client_accnum, option.client_subacc)


def guard_id(subscription_id: str, destination: Destination) -> str:
    return f"{GUARD_PREFIX}{subscription_id}#{destination.client_accnum}#{destination.client_subacc}"


class UpgradeGuard:
    def __init__(self, table: OperationsTable, repeat_window_seconds: float,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.table = table
        self.repeat_window = timedelta(seconds=repeat_window_seconds)
        self.clock = clock

    def admit(self, operation_id: str, subscription_id: str, parameters: Mapping[str, Any], catalogue: Any,
              plan: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """None when the upgrade ``operation_id`` may go ahead (an upgrade by API then holds the guard), else the
        record of the operation that stands in its way (see the module docstring)."""
        destination = destination_of(parameters, catalogue, plan)
        if destination is None:
            return None
        force = parameters.get("force") is True
        charges = parameters.get("method") == CHARGE_UPGRADE
        now = self.clock()
        if not force:
            blocking = self._blocking_operation(operation_id, subscription_id, destination, charges, catalogue, now)
            if blocking is not None:
                return blocking
        return self._take_guard(operation_id, subscription_id, destination, force, now) if charges else None

    # --- what the subscription's operations say ------------------------------------------------------------------

    def _blocking_operation(self, operation_id: str, subscription_id: str, destination: Destination, charges: bool,
                            catalogue: Any, now: datetime) -> dict[str, Any] | None:
        for indexed in self.table.by_subscription(subscription_id):
            if indexed.get("operation_type") != "upgrade" or indexed.get("operation_id") == operation_id:
                continue
            record = self.table.get(str(indexed["operation_id"]))  # the index lags: decide on the record
            if record is None or destination_of(record.get("parameters") or {}, catalogue,
                                                record.get("plan")) != destination:
                continue
            if self._blocks(record, now, charges):
                return record
        return None

    def _blocks(self, record: Mapping[str, Any], now: datetime, candidate_charges: bool) -> bool:
        status = record.get("status")
        method = (record.get("parameters") or {}).get("method")
        if status == states.SUCCEEDED:
            finished = parse_iso(record.get("completed_at") or record.get("settled_at") or record.get("updated_at"))
            return finished is None or now - finished < self.repeat_window
        if method == CHARGE_UPGRADE:
            return status in UNFINISHED_CHARGES
        return candidate_charges and status == states.AWAITING_CONSUMER

    # --- the guard item (upgrades by API racing each other) -------------------------------------------------------

    def _take_guard(self, operation_id: str, subscription_id: str, destination: Destination, force: bool,
                    now: datetime) -> dict[str, Any] | None:
        key = guard_id(subscription_id, destination)
        item = {"operation_id": key, "record_type": "upgrade_guard", "holder": operation_id,
                "holder_since": iso(now), "guarded_subscription": subscription_id,
                "destination": str(destination), "updated_at": iso(now)}
        for _ in range(5):
            guard = self.table.get(key)
            if guard is None:
                if self.table.put_unless_changed(item, expected=None):
                    return None
                continue
            holder_id = str(guard.get("holder") or "")
            if holder_id == operation_id:
                return None
            if not force:
                holder = self.table.get(holder_id) if holder_id else None
                if self._holds(holder, guard, now):
                    return holder or {"operation_id": holder_id, "status": states.QUEUED,
                                      "subscription_id": subscription_id}
            if self.table.put_unless_changed(item, expected={"holder": holder_id}):
                if force:
                    logger.info("upgrade guard taken over (force)", extra={"operation_id": operation_id,
                                                                           "previous_holder": holder_id})
                return None
        raise RuntimeError(f"the upgrade guard {key} keeps changing; try again")

    def _holds(self, holder: Mapping[str, Any] | None, guard: Mapping[str, Any], now: datetime) -> bool:
        if holder is None:
            since = parse_iso(guard.get("holder_since"))
            return since is not None and (now - since).total_seconds() < GUARD_CREATION_GRACE_SECONDS
        return self._blocks(holder, now, candidate_charges=True)


def refusal_message(subscription_id: str, blocking: Mapping[str, Any]) -> str:
    """What the refusal says: the existing operation, its state, and how to go ahead anyway."""
    status = str(blocking.get("status") or "queued")
    state = "succeeded recently" if status == states.SUCCEEDED else f"is {states.API_STATUS.get(status, status)}"
    return (f"Subscription {subscription_id} already has an upgrade to this destination: operation "
            f"{blocking.get('operation_id')} {state}. A second upgrade would charge the subscriber again; send "
            "force: true to upgrade anyway.")


__all__ = ["DUPLICATE_UPGRADE", "Destination", "UpgradeGuard", "destination_of", "guard_id", "refusal_message"]
