"""``billops reconcile [--subscription ID]``: run the reconciliation job now instead of waiting for its schedule.

Locally the job is run by the local stack (``POST /__local/schedules/ReconciliationFunction``); on AWS the stack's
ReconciliationFunction is invoked (lambda:InvokeFunction) and waited for. The job itself (billops.operations.
reconciliation) takes no parameters and looks at every operation; ``--subscription ID`` first queues a ``refresh``
of that subscription (CCBill's viewSubscriptionStatus kept on its record; a read, it changes nothing at CCBill),
then runs the job, and shows that subscription's operations afterwards.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from billops_cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNKNOWN,
    CliError,
    Output,
    render_fields,
    render_table,
)
from billops_cli.targets import Target

FUNCTION = "ReconciliationFunction"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("reconcile", parents=[common],
                                 help="run the reconciliation job now (unknown and stuck operations, stale "
                                      "subscriptions, pending domain events)")
    parser.add_argument("--subscription", metavar="ID",
                        help="also refresh this subscription from CCBill first, and show its operations")
    parser.add_argument("--wait", action="store_true",
                        help="with --subscription: wait for the refresh to finish (see --timeout)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="how long --wait waits (default 120)")
    parser.set_defaults(handler=reconcile)


def reconcile(args: argparse.Namespace, target: Target, out: Output) -> int:
    refresh: dict[str, Any] | None = None
    if args.subscription:
        refresh = _queue_refresh(args.subscription.strip(), target)
    result = target.run_schedule(FUNCTION)
    if not isinstance(result, dict):
        result = {"result": result}
    document: dict[str, Any] = {"target": target.description, "reconciliation": result}
    exit_code = EXIT_FAILED if int(result.get("errors") or 0) else EXIT_OK
    human = ["Reconciliation finished:", render_fields([
        ("upgrade windows expired", result.get("windows_expired")),
        ("expired leases", result.get("leases_expired")),
        ("settled", ", ".join(f"{k}: {v}" for k, v in sorted((result.get("settled") or {}).items())) or "none"),
        ("domain events flushed", result.get("events_flushed")),
        ("refreshes queued", result.get("refreshes_enqueued")),
        ("errors", result.get("errors")),
    ])]
    if refresh is not None:
        from billops.operation_states import API_STATUS
        from billops.storage.operations_table import OperationsTable

        from billops_cli.subscription_commands import operation_summary

        table = OperationsTable(target.table("OperationsTable"), target.client("dynamodb"))
        if args.wait:
            deadline = time.monotonic() + args.timeout
            while True:
                current = table.get(refresh["operation_id"]) or {}
                if API_STATUS.get(str(current.get("status"))) in ("succeeded", "failed") \
                        or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
        operations = [operation_summary(op) for op in table.by_subscription(args.subscription.strip())]
        current_refresh = next((op for op in operations if op["operation_id"] == refresh["operation_id"]), None)
        refresh["status"] = (current_refresh or {}).get("status", "queued")
        document.update({"subscription_id": args.subscription.strip(), "refresh": refresh, "operations": operations})
        human += [f"\nRefresh of {args.subscription.strip()}: {refresh['status']} ({refresh['operation_id']})",
                  f"\nOperations of {args.subscription.strip()}:",
                  render_table(operations, [("created_at", "created"), ("operation_type", "type"),
                                            ("status", "status"), ("record_status", "record"),
                                            ("detail", "detail")]) if operations else "none"]
        if refresh["status"] == "failed":
            exit_code = EXIT_FAILED
        elif args.wait and refresh["status"] not in ("succeeded", "failed") and exit_code == EXIT_OK:
            exit_code = EXIT_UNKNOWN
    out.emit(document, "\n".join(human))
    return exit_code


def _queue_refresh(subscription_id: str, target: Target) -> dict[str, Any]:
    from billops.operations.operation_messages import MessageInvalid, parse_message
    from billops.operations.operation_queue import enqueue
    from billops.operations.operation_records import operation_id_for

    target.activate("OperationsTable", "OperationsQueue")
    key = f"operator-refresh:{subscription_id}:{datetime.now(UTC):%Y%m%dT%H%M%S}"
    try:
        message = parse_message({"operation_type": "refresh", "subscription_id": subscription_id,
                                 "idempotency_key": key, "suppress_domain_events": True})
    except MessageInvalid as problem:
        raise CliError(f"--subscription: {problem.message}", 2) from None
    enqueue(message, queue_url=target.queue_url("OperationsQueue"), sqs=target.client("sqs"))
    return {"idempotency_key": key, "operation_id": operation_id_for(key)}
