"""The reads behind the merchant API's list routes (billops.merchant_api.api_service), one DynamoDB Query (or a
few) per page, never a Scan.

* subscriptions: the subscriptions table's ``by_status_created`` index (status, created_at), newest first; without a
  status filter the statuses are listed one after the other (active, cancelled, expired). ``client_subacc`` is a
  filter on the page (DynamoDB reads past the non-matching ones). The index holds keys and ``client_subacc`` only
  (a whole-record projection would make every fold write the record twice), so a page's records are then read
  with BatchGetItem - only the attributes a resource shows (never the history: it can be large).
  With ``customer_reference``: the ``by_customer_reference`` index (customer_reference, created_at), newest
  first, ``status`` and ``client_subacc`` as filters on the page (the index carries both).
* a subscription's events: its record's history (the webhooks folded into it), newest first.
* a subscription's operations: the operations table's ``by_subscription`` index, newest first.
* recent webhook deliveries: the delivery log table (billops.storage.delivery_log_table: envelope only, no body, no
  personal data; written by the projector), from today back ``days`` days, newest first (its shards merged).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billops.storage.delivery_log_table import QUARANTINED, envelope
from billops.storage.paging import fill

SUBSCRIPTION_STATUSES = ("active", "cancelled", "expired", "declined")
SUBSCRIPTION_ATTRIBUTES = (
    "subscription_id", "status", "client_accnum", "client_subacc", "initial_price", "recurring_price", "currency",
    "currency_code", "initial_period", "recurring_period", "rebills", "recurring", "subscription_type_id",
    "times_rebilled", "next_renewal_date", "signed_up_at", "last_renewal_at", "last_renewal_failure", "cancelled_at",
    "cancel_reason", "expired_at", "reactivated_at", "original_subscription_id", "original_client_accnum",
    "original_client_subacc", "card", "billed", "chargebacks", "refunds", "voids", "returns", "subscriber",
    "operation_facts", "created_at", "updated_at", "customer_reference",
)
BY_STATUS = "by_status_created"
BY_CUSTOMER_REFERENCE = "by_customer_reference"
BY_SUBSCRIPTION = "by_subscription"


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_position: dict[str, Any] | None


def _fill(client: Any, base: dict[str, Any], limit: int, start_key: dict[str, Any] | None
          ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Query until ``limit`` items (after the filter) or the end; returns the items and where to go on (or None)."""
    return fill(client.query, base, limit, start_key,
                failure=f"DynamoDB query of {base.get('IndexName') or base.get('TableName')} failed")


class MerchantQueries:
    def __init__(self, client_factory: Any, *, subscriptions_table: str, operations_table: str,
                 delivery_log_table: str) -> None:
        self._client_factory = client_factory
        self.subscriptions_table = subscriptions_table
        self.operations_table = operations_table
        self.delivery_log_table = delivery_log_table

    @property
    def client(self) -> Any:
        return self._client_factory()

    def subscriptions(self, *, status: str | None, client_subacc: str | None, limit: int,
                      position: dict[str, Any] | None, start_key: dict[str, Any] | None,
                      customer_reference: str | None = None) -> Page:
        if customer_reference is not None:
            return self._subscriptions_of_customer(customer_reference, status=status, client_subacc=client_subacc,
                                                   limit=limit, start_key=start_key)
        statuses = [status] if status else list(SUBSCRIPTION_STATUSES)
        index = int((position or {}).get("s", 0)) if not status else 0
        if not 0 <= index < len(statuses):
            index, start_key = len(statuses), None
        names = {"#status": "status", "#id": "subscription_id"}
        found: list[dict[str, Any]] = []
        while index < len(statuses) and len(found) < limit:
            values: dict[str, Any] = {":status": {"S": statuses[index]}}
            base: dict[str, Any] = {
                "TableName": self.subscriptions_table, "IndexName": BY_STATUS,
                "KeyConditionExpression": "#status = :status", "ScanIndexForward": False,
                "ProjectionExpression": "#id", "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
            if client_subacc:
                names["#subacc"] = "client_subacc"
                values[":subacc"] = {"S": client_subacc}
                base["FilterExpression"] = "#subacc = :subacc"
            items, start_key = _fill(self.client, base, limit - len(found), start_key)
            records = self._subscription_records([str(item["subscription_id"]) for item in items])
            # The index lags the table a little: a record whose status has moved on since is left out of this list.
            found.extend(record for record in records if record.get("status") == statuses[index])
            if start_key:
                return Page(found, {"s": index, "key": start_key})
            index += 1
        more = index < len(statuses)
        return Page(found, {"s": index, "key": None} if more else None)

    def _subscriptions_of_customer(self, customer_reference: str, *, status: str | None, client_subacc: str | None,
                                   limit: int, start_key: dict[str, Any] | None) -> Page:
        """One customer's subscriptions, newest first: a Query of the sparse by_customer_reference index."""
        names = {"#reference": "customer_reference", "#id": "subscription_id"}
        values: dict[str, Any] = {":reference": {"S": customer_reference}}
        filters = []
        for attribute, value in (("status", status), ("client_subacc", client_subacc)):
            if value:
                names[f"#{attribute}"] = attribute
                values[f":{attribute}"] = {"S": value}
                filters.append(f"#{attribute} = :{attribute}")
        base: dict[str, Any] = {
            "TableName": self.subscriptions_table, "IndexName": BY_CUSTOMER_REFERENCE,
            "KeyConditionExpression": "#reference = :reference", "ScanIndexForward": False,
            "ProjectionExpression": "#id", "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        }
        if filters:
            base["FilterExpression"] = " AND ".join(filters)
        items, key = _fill(self.client, base, limit, start_key)
        records = self._subscription_records([str(item["subscription_id"]) for item in items])
        # The index lags the table a little: a record whose reference has changed since is left out.
        found = [record for record in records if record.get("customer_reference") == customer_reference
                 and (not status or record.get("status") == status)]
        return Page(found, {"key": key} if key else None)

    def _subscription_records(self, ids: list[str]) -> list[dict[str, Any]]:
        """The records of ``ids`` in that order, with which personal fields each has (masked by the API): the state
        items and the personal-data items (billops.storage.subscriptions_table) in one BatchGetItem per 100 keys (a
        page of up to 50 is one request); unprocessed keys retried."""
        from billops.storage.batch_reads import get_all
        from billops.storage.subscriptions_table import PERSONAL_POSITION, SubscriptionsTable

        if not ids:
            return []
        history_table = SubscriptionsTable(self.subscriptions_table, self.client).history_table
        names = {f"#a{i}": name for i, name in enumerate(SUBSCRIPTION_ATTRIBUTES)}
        unique = list(dict.fromkeys(ids))
        keys = [(self.subscriptions_table, {"subscription_id": {"S": key}}) for key in unique] + [
            (history_table, {"subscription_id": {"S": key}, "position": {"S": PERSONAL_POSITION}}) for key in unique]
        projections = {self.subscriptions_table: {"ProjectionExpression": ", ".join(names),
                                                  "ExpressionAttributeNames": names},
                       history_table: {"ProjectionExpression": "subscription_id, subscriber"}}
        found = get_all(self.client, keys, options=projections, what="subscriptions")
        records = {str(record["subscription_id"]): record for record in found.get(self.subscriptions_table, [])}
        personal = {str(item["subscription_id"]): dict(item.get("subscriber") or {})
                    for item in found.get(history_table, [])}
        for key, record in records.items():
            if "subscriber" not in record:  # a record of the older layout carries its personal data inline
                record["subscriber"] = personal.get(key, {})
        return [records[key] for key in ids if key in records]

    def operations_of(self, subscription_id: str, *, limit: int, start_key: dict[str, Any] | None) -> Page:
        base = {
            "TableName": self.operations_table, "IndexName": BY_SUBSCRIPTION,
            "KeyConditionExpression": "subscription_id = :id", "ScanIndexForward": False,
            "ExpressionAttributeValues": {":id": {"S": subscription_id}},
        }
        items, key = _fill(self.client, base, limit, start_key)
        return Page(items, {"key": key} if key else None)

    def deliveries(self, *, days: int, status: str | None, event_type: str | None, subscription_id: str | None,
                   limit: int, position: dict[str, Any] | None, start_key: dict[str, Any] | None,
                   today: date | None = None) -> Page:
        """Newest first from the delivery log (billops.storage.delivery_log_table: packed by minute, sharded by
        day); ``position`` is where the last page stopped: its day, the window's last day and the arrival key of
        its last delivery (``start_key`` is not used: one cursor serves every shard)."""
        from billops.storage.delivery_log_table import DeliveryLogTable, arrival_key

        today = today or datetime.now(UTC).date()
        day, until, before = today, today - timedelta(days=days - 1), None
        if position and isinstance(position.get("d"), str) and isinstance(position.get("until"), str):
            try:
                day, until = date.fromisoformat(position["d"]), date.fromisoformat(position["until"])
                before = position.get("c") if isinstance(position.get("c"), str) else None
            except ValueError:
                day, until, before = today, today - timedelta(days=days - 1), None

        def matches(entry: dict[str, Any]) -> bool:
            if status and (entry.get("outcome") == QUARANTINED) != (status == "quarantined"):
                return False
            return (not event_type or entry.get("event_type") == event_type) and \
                (not subscription_id or entry.get("subscription_id") == subscription_id)

        log = DeliveryLogTable(self.delivery_log_table, self.client)
        found: list[dict[str, Any]] = []
        for entry in log.newest_first(first_day=day, last_day=until, before=before, matches=matches):
            if len(found) == limit:
                # One more exists: the next page starts after the last one shown.
                last = found[-1]
                return Page([envelope(item) for item in found],
                            {"d": last["received_at"][:10], "until": until.isoformat(), "c": arrival_key(last)})
            found.append(entry)
        return Page([envelope(item) for item in found], None)
