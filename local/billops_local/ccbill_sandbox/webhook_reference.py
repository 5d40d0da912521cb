"""CCBill's webhook field table (``webhook_fields.json``): every event type, its versions and their fields.

The table was written from the reference documents (the Webhooks changelog and UpSaleSuccess field tables, and
ccbill-facts.md 1.6 for the version-1 sets; the CCBill documents win where the two disagree) and is kept in the
repository, so a fresh clone needs nothing outside it. It is data about CCBill, not about billops: nothing here reads
billops' own event models, so the sandbox cannot inherit their assumptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

TABLE_PATH = Path(__file__).with_name("webhook_fields.json")
FORMATS = ("urlencoded", "json")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    example: str
    json_number: str | None = None
    """"int" or "decimal" when the field may arrive as a JSON number, else None (always a string)."""
    zero_fill: int | None = None
    may_be_blank: bool = False
    card_only: bool = False
    conditional: str | None = None
    values: tuple[str, ...] = ()
    """The documented values, when the documents enumerate them."""


@dataclass(frozen=True)
class VersionSpec:
    version: int
    release: str
    added: tuple[str, ...]
    formats: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class EventSpec:
    event_type: str
    group: str
    versions: tuple[VersionSpec, ...]
    observed: tuple[tuple[str, int], ...] = ()
    """(field, from version): fields real payloads carry that no changelog entry dates (billedCurrency on sales;
    paymentType and cardType on NewSaleSuccess from v5, where CCBill's field page puts them)."""

    @property
    def newest(self) -> int:
        return self.versions[-1].version

    @property
    def version_numbers(self) -> tuple[int, ...]:
        return tuple(entry.version for entry in self.versions)

    def version(self, number: int) -> VersionSpec:
        for entry in self.versions:
            if entry.version == number:
                return entry
        raise ValueError(f"{self.event_type} has versions {self.version_numbers[0]} to {self.newest}, not {number}")

    def fields(self, number: int) -> tuple[str, ...]:
        """The fields of a version, in the documents' order: version 1's, then each later version's additions, then
        the undated fields real payloads carry."""
        return self._fields_by_version[number]

    @cached_property
    def _fields_by_version(self) -> dict[int, tuple[str, ...]]:
        result = {}
        for number in self.version_numbers:
            names = [name for entry in self.versions if entry.version <= number for name in entry.added]
            result[number] = (*names, *(name for name, since in self.observed if since <= number and name not in names))
        return result

    @cached_property
    def all_fields(self) -> frozenset[str]:
        return frozenset(self.fields(self.newest))

    def formats(self, number: int) -> tuple[str, ...]:
        return self.version(number).formats

    @property
    def is_purchase(self) -> bool:
        return self.group == "purchase"


@dataclass(frozen=True)
class FieldTable:
    fields: dict[str, FieldSpec]
    events: dict[str, EventSpec]

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(self.events)

    def event(self, event_type: str) -> EventSpec:
        try:
            return self.events[event_type]
        except KeyError:
            raise ValueError(f"unknown CCBill event type {event_type!r}") from None

    def field(self, name: str) -> FieldSpec:
        return self.fields[name]


def _load(path: Path) -> FieldTable:
    document = json.loads(path.read_text(encoding="utf-8"))
    fields = {name: FieldSpec(name=name, type=spec["type"], example=spec["example"],
                              json_number=spec.get("json_number"), zero_fill=spec.get("zero_fill"),
                              may_be_blank=bool(spec.get("may_be_blank")), card_only=bool(spec.get("card_only")),
                              conditional=spec.get("conditional"), values=tuple(spec.get("values", ())))
              for name, spec in document["fields"].items()}
    events = {}
    for event_type, spec in document["events"].items():
        versions = tuple(VersionSpec(version=entry["version"], release=entry["release"], added=tuple(entry["added"]),
                                     formats=tuple(entry["formats"]), source=entry["source"])
                         for entry in spec["versions"])
        events[event_type] = EventSpec(event_type=event_type, group=spec["group"], versions=versions,
                                       observed=tuple((name, entry["from_version"])
                                                      for name, entry in spec.get("observed", {}).items()))
    return FieldTable(fields=fields, events=events)


@cache
def field_table(path: Path = TABLE_PATH) -> FieldTable:
    return _load(path)
