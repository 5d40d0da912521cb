"""bench.dynamodb_units: DynamoDB's documented capacity rules applied to wire-format items."""

from bench.dynamodb_units import (
    IndexSpec,
    TableSpec,
    index_entry,
    item_size,
    query_read_units,
    read_units,
    write_cost,
    write_units,
)

EVENTS = TableSpec("events", ("pk",), (IndexSpec("by_day", ("day", "at"), "INCLUDE", ("kind",)),))


def test_item_size_counts_names_and_values():
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + (3 + 1)  # 5 significant digits -> 3 bytes + 1
    assert item_size({"n": {"N": "100"}}) == 1 + (1 + 1)  # trailing zeros trimmed
    assert item_size({"ok": {"BOOL": True}, "no": {"NULL": True}}) == 2 + 1 + 2 + 1
    assert item_size({"s": {"S": "é"}}) == 1 + 2  # UTF-8
    assert item_size({"b": {"B": "AAEC"}}) == 1 + 3  # base64 of 3 bytes


def test_maps_and_lists_cost_three_bytes_plus_one_per_element():
    assert item_size({"m": {"M": {}}}) == 1 + 3
    assert item_size({"m": {"M": {"a": {"S": "xy"}}}}) == 1 + 3 + 1 + (1 + 2)
    assert item_size({"l": {"L": [{"S": "x"}, {"S": "yz"}]}}) == 1 + 3 + 2 + (1 + 2)


def test_units_round_up_per_kilobyte_and_four_kilobytes():
    assert write_units(0) == 1 and write_units(1024) == 1 and write_units(1025) == 2
    assert read_units(4096, consistent=True) == 1.0 and read_units(4097, consistent=True) == 2.0
    assert read_units(100, consistent=False) == 0.5
    assert query_read_units([], consistent=False) == 0.5


def _item(size_of_blob: int, **extra) -> dict:
    return {"pk": {"S": "k"}, "blob": {"S": "x" * size_of_blob}, **extra}


def test_a_new_item_writes_the_table_and_each_index_it_belongs_to():
    item = _item(1500, day={"S": "2026-01-01"}, at={"S": "t1"}, kind={"S": "delivery"})
    cost = write_cost(EVENTS, None, item, succeeded=True)
    assert cost.table_units == 2  # ~1.5 KB
    assert cost.index_units == {"by_day": 1}  # keys + kind + 100 bytes, the blob is not projected
    assert cost.total == 3
    entry = index_entry(EVENTS, EVENTS.indexes[0], item)
    assert set(entry) == {"pk", "day", "at", "kind"}


def test_a_failed_conditional_write_costs_the_existing_item_and_no_index():
    item = _item(1500, day={"S": "2026-01-01"}, at={"S": "t1"})
    cost = write_cost(EVENTS, item, item, succeeded=False)
    assert cost.table_units == 2 and cost.index_units == {}


def test_sparse_indexes_and_index_key_changes():
    without_keys = _item(10)
    assert write_cost(EVENTS, None, without_keys, succeeded=True).index_units == {}
    before = _item(10, day={"S": "d1"}, at={"S": "t1"})
    after = _item(10, day={"S": "d2"}, at={"S": "t1"})
    assert write_cost(EVENTS, before, after, succeeded=True).index_units == {"by_day": 2}  # delete + put
    unprojected_change = _item(20, day={"S": "d1"}, at={"S": "t1"})
    assert write_cost(EVENTS, before, unprojected_change, succeeded=True).index_units == {}
    assert write_cost(EVENTS, before, None, succeeded=True).index_units == {"by_day": 1}  # leaves the index


def test_table_spec_from_describe_table():
    spec = TableSpec.from_description({
        "TableName": "t", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{"IndexName": "i", "KeySchema": [{"AttributeName": "s", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}]})
    assert spec == TableSpec("t", ("pk",), (IndexSpec("i", ("s",), "ALL", ()),))
