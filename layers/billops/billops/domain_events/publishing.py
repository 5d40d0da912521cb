"""Putting domain events on the bus (EventBridge ``BILLOPS_EVENT_BUS_NAME``, source ``billops``), or not.

A failed put raises DomainEventsUnavailable: the events stay pending in their record's outbox and are published
again later (the package's docstring).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from billops.domain_events.events import SOURCE, DomainEvent

logger = logging.getLogger(__name__)

MAX_ENTRIES_PER_PUT = 10  # PutEvents' limit


class DomainEventsUnavailable(RuntimeError):
    """EventBridge did not accept every event (they stay pending and are published again later)."""


class Publisher(Protocol):
    def publish(self, events: list[DomainEvent]) -> None: ...


class EventBridgePublisher:
    def __init__(self, bus_name: str, client: Any = None) -> None:
        self.bus_name = bus_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is not None:
            return self._client
        from billops.storage.aws_clients import aws_client

        return aws_client("events")

    def publish(self, events: list[DomainEvent]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(events), MAX_ENTRIES_PER_PUT):
            chunk = events[start:start + MAX_ENTRIES_PER_PUT]
            entries = [{"Source": SOURCE, "DetailType": event.detail_type, "EventBusName": self.bus_name,
                        "Detail": json.dumps(event.detail, sort_keys=True, default=str)} for event in chunk]
            try:
                answer = self.client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise DomainEventsUnavailable(f"PutEvents failed: {type(error).__name__}") from error
            if answer.get("FailedEntryCount"):
                raise DomainEventsUnavailable(f"PutEvents refused {answer['FailedEntryCount']} of {len(chunk)} events")


class NullPublisher:
    """No bus configured (a unit test, a stack without the bus): events are logged by type and dropped."""

    def publish(self, events: list[DomainEvent]) -> None:
        for event in events:
            logger.info("no event bus configured; domain event not published",
                        extra={"detail_type": event.detail_type, "event_id": event.event_id})


class RecordingPublisher:
    """Keeps what it was given (tests, and the local tools)."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, events: list[DomainEvent]) -> None:
        self.events.extend(events)

    def of_type(self, detail_type: str) -> list[DomainEvent]:
        return [event for event in self.events if event.detail_type == detail_type]


def publisher_for(bus_name: str | None) -> Publisher:
    return EventBridgePublisher(bus_name) if bus_name else NullPublisher()
