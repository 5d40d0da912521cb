"""A small client of the running local stack for the operations end-to-end tests (test_operations_end_to_end.py).

Everything goes through the stack's public doors, as the merchant's systems, CCBill and an operator would use them:
the CCBill sandbox's admin API (subscriptions, faults, the call log, the ledger), the FIFO OperationsQueue (SQS in
moto), the tables (read-only, except an operator's ``cancel_discount_price``), the domain events tap. Waits are
bounded (``eventually``): they poll every 0.2 s and fail with a message that says what was awaited and what was
seen last.

Run as a script (``python tests/e2e/operations_driver.py``) it is ``python -m billops_local`` with some of the
template's function variables replaced, from the JSON object in ``E2E_FUNCTION_ENVIRONMENT`` - a stack deployed
with other values, e.g. a lease of 1 s so that a dead worker's lease has run out when its message comes back
(the template's 180 s lease is shorter than AWS's 720 s visibility timeout, but far longer than the 1 s the local
stack lets a failed message wait).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from billops import operation_states as states
from billops.operations.operation_queue import enqueue
from billops.operations.operation_records import operation_id_for
from billops.storage.events_table import from_dynamodb
from billops.storage.operations_table import OperationsTable
from billops.storage.subscriptions_table import SubscriptionsTable

OPERATIONS_TABLE = "billops-local-OperationsTable"
SUBSCRIPTIONS_TABLE = "billops-local-SubscriptionsTable"
HISTORY_TABLE = "billops-local-SubscriptionHistoryTable"
OPERATIONS_QUEUE = "billops-local-OperationsQueue.fifo"
OPERATIONS_DLQ = "billops-local-OperationsDeadLetterQueue.fifo"
FUNCTION_ENVIRONMENT_VARIABLE = "E2E_FUNCTION_ENVIRONMENT"
POLL_SECONDS = 0.2

T = TypeVar("T")

BASE_SUBSCRIPTION = {"client_accnum": "900100", "client_subacc": "0000", "initial_price": "19.95",
                     "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30, "rebills": 99,
                     "currency_code": "840"}


def wait_for(what: str, probe: Callable[[], T], *, timeout: float = 30.0, interval: float = POLL_SECONDS,
             show: Callable[[], Any] | None = None) -> T:
    """The older name of ``eventually`` (tests/support/waiting.py), kept for the callers that use it."""
    from support.waiting import eventually  # here: this file also runs as a script, without tests/ on sys.path

    return eventually(probe, timeout, interval, what=what, show=show)


def is_settled(record: dict[str, Any] | None) -> bool:
    """Final (succeeded, failed, rejected), or unknown and escalated to a person."""
    return bool(record) and (record.get("status") in states.FINAL
                             or (record.get("status") == states.UNKNOWN and record.get("escalated") is True))


class OperationsDriver:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.sandbox_url = stack.sandbox_url
        self.http = requests.Session()
        self.sqs = stack.boto3_client("sqs")
        self.dynamodb = stack.boto3_client("dynamodb")
        self.queue_url = self.sqs.get_queue_url(QueueName=OPERATIONS_QUEUE)["QueueUrl"]
        self.dlq_url = self.sqs.get_queue_url(QueueName=OPERATIONS_DLQ)["QueueUrl"]
        self.operations = OperationsTable(OPERATIONS_TABLE, self.dynamodb)
        self.subscriptions = SubscriptionsTable(SUBSCRIPTIONS_TABLE, self.dynamodb, HISTORY_TABLE)
        self.sent_keys: list[str] = []
        self._events: list[dict[str, Any]] = []

    # --- the CCBill sandbox -----------------------------------------------------------------------------------

    def _sandbox(self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        response = self.http.request(method, f"{self.sandbox_url}{path}", json=body, timeout=30)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def create_subscription(self, *, wait_for_record: bool = True, **overrides: Any) -> str:
        """A subscription in the sandbox (NewSaleSuccess goes to the receiver); waits until our table has it."""
        answer = self._sandbox("POST", "/sandbox/subscriptions", {**BASE_SUBSCRIPTION, **overrides}, expect=201)
        subscription_id = answer["subscription_id"]
        if wait_for_record:
            self.wait_for_subscription(subscription_id, lambda record: record.get("known_from_sale"),
                                       "its NewSaleSuccess to be projected")
        return subscription_id

    def sandbox_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self._sandbox("GET", f"/sandbox/subscriptions/{subscription_id}")

    def sandbox_subscriptions(self) -> list[dict[str, Any]]:
        return self._sandbox("GET", "/sandbox/subscriptions")

    def cancel_in_sandbox(self, subscription_id: str) -> None:
        """The consumer cancels at CCBill (Cancellation webhook)."""
        self._sandbox("POST", f"/sandbox/subscriptions/{subscription_id}/cancel", {})

    def add_fault(self, action: str, mode: str, count: int = 1, seconds: float | None = None) -> None:
        body: dict[str, Any] = {"action": action, "mode": mode, "count": count}
        if seconds is not None:
            body["seconds"] = seconds
        self._sandbox("POST", "/sandbox/faults", body, expect=201)

    def pending_faults(self) -> list[dict[str, Any]]:
        return self._sandbox("GET", "/sandbox/faults")

    def clear_faults(self) -> None:
        self._sandbox("DELETE", "/sandbox/faults")

    def calls(self, action: str | None = None, subscription_id: str | None = None) -> list[dict[str, Any]]:
        """The sandbox's call log, optionally of one action and/or one (original) subscription."""
        return [call for call in self._sandbox("GET", "/sandbox/calls")
                if (action is None or call["action"] == action)
                and (subscription_id is None or call["params"].get("subscriptionId") == subscription_id)]

    def ledger(self) -> list[dict[str, Any]]:
        return self._sandbox("GET", "/sandbox/ledger")

    def webhooks(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [delivery for delivery in self._sandbox("GET", "/sandbox/webhooks")
                if event_type is None or delivery.get("event_type") == event_type]

    def upgrades_of(self, original: str) -> list[dict[str, Any]]:
        """The sandbox's subscriptions sold as upgrades of ``original``."""
        return [sub for sub in self.sandbox_subscriptions() if sub.get("upgraded_from") == original]

    def upgrade_charges(self, original: str, *, subscriptions: list[dict[str, Any]] | None = None,
                        ledger: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Every charge in the ledger for a subscription sold as an upgrade of ``original`` (from the sandbox, or
        from the ``subscriptions`` and ``ledger`` given)."""
        subscriptions = self.sandbox_subscriptions() if subscriptions is None else subscriptions
        upgraded = {sub["subscription_id"] for sub in subscriptions if sub.get("upgraded_from") == original}
        return [entry for entry in (self.ledger() if ledger is None else ledger)
                if entry["kind"] == "charge" and entry["subscription_id"] in upgraded]

    def post_upgrade_form(self, form: dict[str, Any]) -> requests.Response:
        """The consumer submits the form the operation recorded (upgradeSubscription.cgi, action=upgradeSubscription)."""
        assert form["method"] == "POST", form
        return self.http.post(form["url"], data=form["fields"], timeout=30)

    # --- our tables ---------------------------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        return self.subscriptions.get(subscription_id)

    def wait_for_subscription(self, subscription_id: str, predicate: Callable[[dict[str, Any]], Any], what: str,
                              timeout: float = 20.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            record = self.subscription(subscription_id)
            return record if record is not None and predicate(record) else None

        return wait_for(f"subscription {subscription_id}: {what}", probe, timeout=timeout,
                        show=lambda: _brief(self.subscription(subscription_id)))

    def set_cancel_discount_price(self, subscription_id: str, price: str) -> None:
        """What an operator does when CCBill's support reports a cancel discount (no webhook carries it)."""
        for _ in range(10):
            record = self.subscription(subscription_id)
            assert record is not None
            revision = int(record.get("revision", 0))
            try:
                self.dynamodb.update_item(
                    TableName=SUBSCRIPTIONS_TABLE, Key={"subscription_id": {"S": subscription_id}},
                    UpdateExpression="SET cancel_discount_price = :price, #revision = :next",
                    ConditionExpression="#revision = :revision",
                    ExpressionAttributeNames={"#revision": "revision"},
                    ExpressionAttributeValues={":price": {"S": price}, ":next": {"N": str(revision + 1)},
                                               ":revision": {"N": str(revision)}})
                return
            except self.dynamodb.exceptions.ConditionalCheckFailedException:
                continue  # the projector wrote meanwhile: read again
        raise AssertionError(f"could not set cancel_discount_price on {subscription_id}")

    def operation(self, idempotency_key: str) -> dict[str, Any] | None:
        return self.operations.get(operation_id_for(idempotency_key))

    def operations_of(self, subscription_id: str) -> list[dict[str, Any]]:
        """Every operation record of a subscription (scan: the index may lag)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": OPERATIONS_TABLE, "ConsistentRead": True,
                                  "FilterExpression": "subscription_id = :s",
                                  "ExpressionAttributeValues": {":s": {"S": subscription_id}}}
        while True:
            answer = self.dynamodb.scan(**kwargs)
            items.extend(from_dynamodb(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return items
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def wait_for_operation(self, idempotency_key: str, predicate: Callable[[dict[str, Any]], Any] = is_settled,
                           what: str = "a final status (or escalation)", timeout: float = 30.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            record = self.operation(idempotency_key)
            return record if record is not None and predicate(record) else None

        return wait_for(f"operation {idempotency_key!r}: {what}", probe, timeout=timeout,
                        show=lambda: _brief(self.operation(idempotency_key)))

    # --- the queues ---------------------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> str:
        """``enqueue()`` as the merchant's systems call it: group = subscription, deduplication ID = the key."""
        self.sent_keys.append(message["idempotency_key"])
        return enqueue(message, queue_url=self.queue_url, sqs=self.sqs)

    def send_raw(self, body: dict[str, Any], *, deduplication_id: str) -> str:
        """A message as any SQS client sends it (another deduplication ID: SQS does not drop it as a repeat)."""
        self.sent_keys.append(body["idempotency_key"])
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body),
                                     MessageGroupId=body["subscription_id"],
                                     MessageDeduplicationId=deduplication_id)["MessageId"]

    def dead_letters(self, operation_id: str) -> list[dict[str, Any]]:
        """The dead-letter queue's messages naming ``operation_id``. Every message is looked at (each batch is hidden
        for a moment so the next receive returns others) and then made visible again for other readers."""
        found: list[dict[str, Any]] = []
        seen: list[dict[str, Any]] = []
        try:
            while len(seen) < 500:
                answer = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                                  MessageAttributeNames=["All"])
                messages = answer.get("Messages", [])
                if not messages:
                    break
                seen.extend(messages)
                found.extend(message for message in messages if (message.get("MessageAttributes") or {}).get(
                    "operation_id", {}).get("StringValue") == operation_id)
        finally:
            for message in seen:
                self.sqs.change_message_visibility(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=0)
        return found

    def worker_stats(self) -> dict[str, Any]:
        (poller,) = [p for p in self.stack.local_overview()["queue_pollers"]
                     if p["function"] == "OperationWorkerFunction"]
        return poller

    # --- domain events ------------------------------------------------------------------------------------------

    def events(self, operation_id: str | None = None, detail_type: str | None = None, *,
               read: bool = True) -> list[dict[str, Any]]:
        """Every domain event read from the tap so far (kept here: reading the tap consumes it); ``read=False``
        only looks at those read already."""
        if read:
            self._events.extend(self.stack.domain_events(max_events=500))
        return [event for event in self._events
                if (operation_id is None or event.get("detail", {}).get("operation_id") == operation_id)
                and (detail_type is None or event.get("detail-type") == detail_type)]

    def wait_for_events(self, operation_id: str, detail_type: str, count: int = 1,
                        timeout: float = 15.0) -> list[dict[str, Any]]:
        """``count`` distinct events, as a consumer sees them: delivery is at least once (the outbox may be flushed
        by the worker and the reconciliation job at once, billops.domain_events), and a repeat has the same
        ``event_id``, so repeats are dropped as a consumer drops them."""

        def distinct() -> list[dict[str, Any]]:
            return list({event["detail"]["event_id"]: event for event in self.events(operation_id, detail_type)}
                        .values())

        return wait_for(f"{count} {detail_type} event(s) of {operation_id}",
                        lambda: (found if len(found := distinct()) >= count else None),
                        timeout=timeout,
                        show=lambda: [e.get("detail-type") for e in self.events(operation_id)])

    def settle_quietly(self, seconds: float) -> None:
        """Let the stack run on its own for a while (redeliveries, the scheduler, the reconciliation job)."""
        time.sleep(seconds)


def _brief(record: dict[str, Any] | None) -> Any:
    if record is None:
        return None
    keep = ("operation_id", "status", "escalated", "attempt", "ccbill", "failure", "unknown_reason", "settled_by",
            "lease_expires_at", "due_at", "known_from_sale", "recurring_price", "revision")
    return {name: record.get(name) for name in keep if name in record}


# --- run as a script: the local stack with some function variables replaced ---------------------------------------


def launch_stack() -> int:
    """``python -m billops_local`` whose functions see ``E2E_FUNCTION_ENVIRONMENT`` over the template's values."""
    overrides = json.loads(os.environ.pop(FUNCTION_ENVIRONMENT_VARIABLE, "") or "{}")
    if not isinstance(overrides, dict) or not all(isinstance(v, str) for v in overrides.values()):
        print(f"{FUNCTION_ENVIRONMENT_VARIABLE} must be a JSON object of strings", file=sys.stderr)
        return 2

    import billops_local.stack as stack_module
    from billops_local.__main__ import main

    template_environment = stack_module.merged_function_environment

    def with_overrides(environments: Any) -> dict[str, str]:
        return {**template_environment(environments), **overrides}

    stack_module.merged_function_environment = with_overrides
    return main([])


if __name__ == "__main__":
    sys.exit(launch_stack())
