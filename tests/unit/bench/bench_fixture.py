"""A small, hand-made set of measurements shaped like bench's (for the cost and report tests)."""

from __future__ import annotations


def phase(requests: float, write_units: float, table_units: float, billed: dict[str, float],
          indexes: dict[str, float] | None = None) -> dict:
    return {"requests_per_unit": requests, "write_units_per_unit": write_units, "write_units_table_per_unit": table_units,
            "write_units_indexes_per_unit": indexes or {}, "read_units_per_unit": 0.0, "billed_units_per_unit": billed,
            "by_operation_per_unit": {name: count for name, count in billed.items()},
            "moto_reported_units_distinct": [1.0]}


def timing(mean_cpu_ms: float, memory_mb: int, log_bytes: float) -> dict:
    stats = {"count": 10, "p50": mean_cpu_ms, "p90": mean_cpu_ms, "p99": mean_cpu_ms * 2, "mean": mean_cpu_ms,
             "min": mean_cpu_ms, "max": mean_cpu_ms * 2}
    part = {"ms": stats, "cpu_ms": stats, "log_bytes_per_delivery": log_bytes, "requests_per_delivery": 1}
    return {"memory_mb": memory_mb, "new": part, "duplicate": part, "first_invocation_ms": 100.0,
            "first_invocation_log_bytes": 500, "peak_rss_mb": 90.0}


def measurements() -> dict:
    put = {"dynamodb.PutItem": 1.0}
    return {
        "counting": {
            "ours": {"cold": phase(2, 2, 1, {**put, "secrets-manager.GetSecretValue": 1.0}, {"by_day": 1.0}),
                     "new": phase(1, 2, 1, put, {"by_day": 1.0}),
                     "duplicate": phase(1, 1, 1, put),
                     "duplicate_other_format": phase(1, 1, 1, put),
                     "deliveries": 20, "items_stored": 20, "answered_duplicate": {"duplicate_other_format": 20},
                     "item_sizes_by_event_type": {"RenewalSuccess": {"item_bytes": 800, "write_units": 2}},
                     "stored_bytes_per_item": 1000.0},
            "baseline": {"cold": phase(3, 3, 3, {"dynamodb.PutItem": 2.0, "dynamodb.UpdateItem": 1.0}),
                         "new": phase(3, 3, 3, {"dynamodb.PutItem": 2.0, "dynamodb.UpdateItem": 1.0}),
                         "duplicate": phase(1, 1, 1, put),
                         "duplicate_other_format": phase(3, 3, 3, {"dynamodb.PutItem": 2.0, "dynamodb.UpdateItem": 1.0}),
                         "deliveries": 20, "items_stored": 40, "memory_mb": 512},
        },
        "timing": {"ours": timing(1.0, 256, 700), "baseline": timing(2.0, 512, 650)},
        "access_log_format": '{"requestId":"$context.requestId","status":"$context.status"}',
    }
