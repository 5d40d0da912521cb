"""The subscription projector's work: log a stream batch, count it into the daily figures, fold each delivery into
its subscription record, settle the upgrade operation a sale delivery names, publish SubscriptionChanged when a fold
changed a subscription.

One object, built by ``build_projector``: the projector function (functions/subscription_projector) runs it on the
events table's stream, and the CLI's ``billops replay projector`` runs it on the deliveries of a dead-lettered
batch, so a replayed fold settles and publishes exactly as the function would.

* logging first: a batch is written to the delivery log before it is folded, in the same batch write as each
  delivery's history entry (billops.storage.subscriptions_table), so a batch that then fails to fold is still listed
  (the log and history items of a batch are always the same items; if they cannot be written the batch fails);
* then the batch is counted into the daily figures (billops.reports.batch_counting), exactly once whatever the
  stream redelivers; a failure there fails the batch too, for the same reason;
* settling runs for "already_applied" deliveries too, so a settlement that failed is retried with the record;
* publishing is best effort: a failed put is logged and counted, never retried - the record itself is the truth.
  A batch's SubscriptionChanged events are put together once its records are folded (``flush_published``: one
  PutEvents per 10 events, EventBridge's limit, instead of one per fold: the calls were a third of the batch's round
  trips). Billed the same (per event); what a crash in the middle of the batch loses is what it lost before, events
  of folds already written (the record is the truth).
The projector never calls CCBill: settlement by a delivery needs only the operations table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from billops.domain_events.events import subscription_changed_event, subscription_changes
from billops.domain_events.publishing import MAX_ENTRIES_PER_PUT, DomainEventsUnavailable, Publisher
from billops.storage.batch_writes import put_all
from billops.storage.delivery_log_table import DeliveryLogTable, entries_from_stream
from billops.storage.events_table import new_images
from billops.storage.subscriptions_table import SubscriptionsTable
from billops.subscriptions.projection import SubscriptionProjection

_logger = logging.getLogger(__name__)


def _no_metric(_name: str) -> None:
    return None


class Projector:
    def __init__(self, subscriptions: SubscriptionsTable, *, delivery_log: DeliveryLogTable | None = None,
                 settler: Any = None, publisher: Publisher | None = None, reports: Any = None,
                 customer_reference_field: str | None = None,
                 on_metric: Callable[[str], None] = _no_metric, logger: Any = _logger) -> None:
        self.subscriptions = subscriptions
        self.delivery_log = delivery_log
        self.settler = settler
        self.publisher = publisher
        self.reports = reports
        self.on_metric = on_metric
        self.logger = logger
        self.projection = SubscriptionProjection(subscriptions, on_change=self.publish_change,
                                                 customer_reference_field=customer_reference_field)
        self._unpublished: list[Any] = []

    def record_batch(self, stream_records: list[Mapping[str, Any]]) -> None:
        """Write a stream batch's inserts to the delivery log and each delivery's history entry (one batch write,
        25 puts per request: the log and history items of a batch are always the same items), read the batch's
        subscriptions at once, then count the batch into the daily figures (raises if the log, the history or the
        figures cannot be written: the batch is retried)."""
        images = new_images(stream_records)  # deserialized once, for the history, the reads and the counting
        if self.delivery_log is not None:
            put_all(self.delivery_log.client, self.delivery_log.puts(entries_from_stream(stream_records))
                    + self.projection.history_puts(images))
        self.projection.prefetch_states(images)
        if self.reports is not None:
            self.reports.count_deliveries(images)

    def apply(self, delivery: Mapping[str, Any]) -> str:
        """Fold one stored delivery (a stream image or an events-table item), then settle what it settles;
        returns the fold's outcome ("applied", "already_applied", ...)."""
        outcome = self.projection.apply_delivery(delivery)
        if outcome == "applied":
            self.on_metric("SubscriptionEventApplied")
        if self.settler is not None:
            for settled in self.settler.settle_from_delivery(delivery):
                self.logger.info("operation settled by webhook", extra={"operation_id": settled.get("operation_id"),
                                                                        "status": settled.get("status")})
        return outcome

    def replay(self, delivery: Mapping[str, Any]) -> str:
        """``apply`` for a delivery replayed from the events table (``billops replay projector``): it is counted
        into the daily figures too, as its batch would have been (each delivery is counted once)."""
        outcome = self.apply(delivery)
        self.flush_published()
        if self.reports is not None:
            self.reports.count_deliveries([delivery])
        return outcome

    def publish_change(self, previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
        """A fold's SubscriptionChanged, kept until ``flush_published`` (when something a consumer reads changed)."""
        if self.publisher is None:
            return
        changed = subscription_changes(previous, current)
        if changed:
            self._unpublished.append(subscription_changed_event(previous, current, changed,
                                                                str(current.get("updated_at"))))

    def flush_published(self) -> None:
        """Put the events kept since the last flush, EventBridge's 10 per call; a refused call is logged and counted
        per event, and the next call is still made."""
        events, self._unpublished = self._unpublished, []
        for start in range(0, len(events), MAX_ENTRIES_PER_PUT):
            chunk = events[start:start + MAX_ENTRIES_PER_PUT]
            try:
                self.publisher.publish(chunk)
            except DomainEventsUnavailable:
                for event in chunk:
                    self.logger.warning("SubscriptionChanged not published",
                                        extra={"subscription_id": event.detail.get("subscription_id")})
                    self.on_metric("DomainEventPublishFailed")
                continue
            for _ in chunk:
                self.on_metric("SubscriptionChangedPublished")


def _never_ccbill() -> Any:
    raise RuntimeError("the projector never calls CCBill (settlement by a delivery reads the operations table)")


def build_projector(settings: Any, *, settle: bool | None = None, log: bool = True, reports: Any = None,
                    dynamodb: Any = None, publisher: Publisher | None = None,
                    on_metric: Callable[[str], None] = _no_metric, logger: Any = _logger) -> Projector:
    """The projector ``settings`` (billops.settings.functions.SubscriptionProjectorSettings) describe.

    It publishes when BILLOPS_EVENT_BUS_NAME names a bus (or ``publisher`` is given) and settles operations when
    BILLOPS_OPERATIONS_TABLE is set (``settle`` overrides: the CLI knows whether its stack has the table); it
    counts the daily figures with ``reports`` (billops.reports.batch_counting.ReportCounter), if given."""
    from billops.domain_events.publishing import EventBridgePublisher

    if publisher is None and settings.event_bus_name:
        publisher = EventBridgePublisher(settings.event_bus_name)
    if settle is None:
        settle = "operations_table" in settings.model_fields_set and bool(settings.operations_table)
    settler = None
    if settle:
        from billops.operations.wiring import build_services

        # The projector has no queue (the template gives it neither the queue's URL nor a grant to send): what its
        # settlement would queue (cancel_original's follow-up) is submitted by the reconciliation job instead,
        # whatever the environment holds (locally, every function's variables may be present).
        if "queue_url" in type(settings).model_fields:
            settings = settings.model_copy(update={"queue_url": None})
        settler = build_services(settings, client_factory=_never_ccbill, on_metric=on_metric,
                                 dynamodb=dynamodb).settler
    return Projector(SubscriptionsTable(settings.subscriptions_table, dynamodb, settings.subscription_history_table),
                     delivery_log=DeliveryLogTable(settings.delivery_log_table, dynamodb) if log else None,
                     settler=settler, publisher=publisher, reports=reports,
                     customer_reference_field=settings.customer_reference_field,
                     on_metric=on_metric, logger=logger)


def projector_from_env(**parts: Any) -> Projector:
    """The projector function's, from its environment (SubscriptionProjectorSettings, checked at cold start)."""
    from billops.settings.base import load
    from billops.settings.functions import SubscriptionProjectorSettings

    from billops.reports.batch_counting import ReportCounter

    return build_projector(load(SubscriptionProjectorSettings), reports=ReportCounter.from_env(), **parts)
