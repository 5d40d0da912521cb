"""``DeliveryCounted``: one domain event per delivery the figures count, for the optional analytics export
(AnalyticsExport=true: the bus -> Kinesis Data Firehose -> S3 Parquet -> Athena; templates/analytics-export.yaml).

Published only when BILLOPS_REPORT_FACT_EVENTS is true, before the batch is counted, so a batch that fails and is
retried publishes them again: delivery is at least once, and ``event_id`` (the delivery key) is what the Athena
queries deduplicate on. The detail holds IDs, the event's day and card type, amounts in the report currency and the
paid period - never personal data.
"""

from __future__ import annotations

from decimal import Decimal

from billops.domain_events.events import DomainEvent
from billops.reports.delivery_figures import Contribution

DELIVERY_COUNTED = "DeliveryCounted"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def delivery_counted_event(contribution: Contribution) -> DomainEvent:
    detail = {
        "event_id": contribution.delivery_key,
        "delivery_key": contribution.delivery_key,
        "event_type": contribution.event_type,
        "day": contribution.day,
        "client_accnum": contribution.client_accnum,
        "client_subacc": contribution.client_subacc,
        "subscription_id": contribution.subscription_id,
        "card_type": contribution.card_type,
        "amount": _money(contribution.amount),
        "currency": contribution.currency,
        "decline_code": contribution.decline_code,
        "period_start": contribution.period_start,
        "period_end": contribution.period_end,
        "mrr": _money(contribution.mrr),
    }
    return DomainEvent(DELIVERY_COUNTED, {name: value for name, value in detail.items() if value is not None})
