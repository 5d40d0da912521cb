"""DynamoDB's documented capacity rules, applied to the items a request carried: item sizes, write request units
(WRU) and read request units (RRU), for the table and its global secondary indexes.

Why computed and not read from DynamoDB's answer: moto's ReturnConsumedCapacity reports a constant (1.0 for every
write, whatever the item's size, and nothing for a failed conditional write), so it cannot tell a 3 KB item from a
300-byte one. The rules below are the Developer Guide's:

* Item size (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
  attribute names + values; strings in UTF-8; numbers ~1 byte per two significant digits + 1; binary as is;
  booleans and null 1 byte; a list or map 3 bytes + 1 byte per element + its elements (a map's elements include
  their names).
* Writes: 1 WRU per 1 KB of item, rounded up (PutItem: the larger of the old and the new item; UpdateItem: the
  larger of before and after). A failed conditional write still consumes: "The amount consumed is dependent on the
  size of the existing item (or a minimum of 1)" (developerguide/Expressions.ConditionExpressions.html); some
  pages say the larger of the existing and the new item, so the larger of the two is used (for a duplicate
  delivery both are the same item).
* Reads: 1 RRU per 4 KB, rounded up, for a strongly consistent read; half for an eventually consistent one; a Query
  is rounded on the total size of the items it returns (a GSI query is always eventually consistent); at least one
  unit (0.5 eventual) even when nothing is returned.
* Global secondary indexes (developerguide/GSI.html, "Provisioned throughput considerations"): an index entry is
  the table's key + the index's key + the projected attributes + 100 bytes; a put of an item into an index costs
  the entry's size in WRU, an update that changes the index key costs a delete plus a put, an update of a projected
  attribute one write, an item that leaves the index a delete; nothing for items without the index's key (sparse)
  and nothing for a failed conditional write.
* TransactWriteItems: twice the units of the writes (developerguide/transaction-apis.html, "Capacity management").
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
INDEX_ENTRY_OVERHEAD_BYTES = 100
CONTAINER_OVERHEAD_BYTES = 3


def _number_size(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return len(text.encode("utf-8"))
    digits = value.as_tuple().digits
    significant = "".join(str(d) for d in digits).strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one AttributeValue in DynamoDB's wire format ({"S": ...}, {"M": {...}}, ...)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode("utf-8"))
    if kind == "N":
        return _number_size(str(content))
    if kind == "B":
        raw = content if isinstance(content, (bytes, bytearray)) else base64.b64decode(content)
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode("utf-8")) for item in content)
    if kind == "NS":
        return sum(_number_size(str(item)) for item in content)
    if kind == "BS":
        return sum(len(item if isinstance(item, (bytes, bytearray)) else base64.b64decode(item)) for item in content)
    if kind == "L":
        return CONTAINER_OVERHEAD_BYTES + len(content) + sum(value_size(item) for item in content)
    if kind == "M":
        return CONTAINER_OVERHEAD_BYTES + len(content) + sum(
            len(name.encode("utf-8")) + value_size(item) for name, item in content.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """The size of an item (wire format) as DynamoDB counts it for capacity."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))


def read_units(size_bytes: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size_bytes / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class IndexSpec:
    name: str
    key_attributes: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    name: str
    key_attributes: tuple[str, ...]
    indexes: tuple[IndexSpec, ...] = field(default=())

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> TableSpec:
        """From DescribeTable's ``Table``."""
        indexes = tuple(
            IndexSpec(
                index["IndexName"],
                tuple(key["AttributeName"] for key in index["KeySchema"]),
                index["Projection"]["ProjectionType"],
                tuple(index["Projection"].get("NonKeyAttributes") or ()),
            )
            for index in description.get("GlobalSecondaryIndexes") or ()
        )
        return cls(description["TableName"], tuple(key["AttributeName"] for key in description["KeySchema"]), indexes)


def index_entry(table: TableSpec, index: IndexSpec, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The index's copy of the item, or None when the item lacks an index key attribute (sparse index)."""
    if not item or any(name not in item for name in index.key_attributes):
        return None
    if index.projection == "ALL":
        names = set(item)
    else:
        names = set(table.key_attributes) | set(index.key_attributes)
        if index.projection == "INCLUDE":
            names |= set(index.non_key_attributes)
    return {name: item[name] for name in names if name in item}


def index_entry_size(entry: Mapping[str, Any]) -> int:
    return item_size(entry) + INDEX_ENTRY_OVERHEAD_BYTES


def index_write_units(table: TableSpec, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[
        str, int]:
    """WRU each index consumes when an item changes from ``before`` to ``after`` (None = absent)."""
    units: dict[str, int] = {}
    for index in table.indexes:
        old = index_entry(table, index, before)
        new = index_entry(table, index, after)
        if old is None and new is None:
            cost = 0
        elif old is None:
            cost = write_units(index_entry_size(new))
        elif new is None:
            cost = write_units(index_entry_size(old))
        elif any(old.get(name) != new.get(name) for name in index.key_attributes):
            cost = write_units(index_entry_size(old)) + write_units(index_entry_size(new))
        elif old != new:
            cost = write_units(max(index_entry_size(old), index_entry_size(new)))
        else:
            cost = 0
        if cost:
            units[index.name] = cost
    return units


@dataclass(frozen=True)
class WriteCost:
    table_units: int
    index_units: dict[str, int]

    @property
    def total(self) -> int:
        return self.table_units + sum(self.index_units.values())


def write_cost(table: TableSpec, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *,
               succeeded: bool) -> WriteCost:
    """Units of one PutItem / UpdateItem / DeleteItem (``after`` None for a delete).

    A failed conditional write consumes the larger of the existing and the attempted item (at least 1) on the table
    and nothing on the indexes."""
    table_units = write_units(max(item_size(before), item_size(after)))
    if not succeeded:
        return WriteCost(table_units, {})
    return WriteCost(table_units, index_write_units(table, before, after))


def query_read_units(items: Sequence[Mapping[str, Any]], *, consistent: bool) -> float:
    return read_units(sum(item_size(item) for item in items), consistent=consistent)
