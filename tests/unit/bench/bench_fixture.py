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


def projector_batched(write_requests: float = 1.12, batch_size: int = 25) -> dict:
    """The projector scenario's ``batched`` part: 50 records in 2 invocations of 25, a PutEvents per delivery (one
    per changed fold), the batch's log-and-history BatchWriteItem (2 requests of 25 puts) and report transaction."""
    per_record = phase(3.12, 3.0, 3.0, {"dynamodb.BatchWriteItem": 0.08, "dynamodb.TransactWriteItems": 0.04,
                                        "dynamodb.PutItem": 1.0, "dynamodb.GetItem": 1.0,
                                        "eventbridge.PutEvents": 1.0})
    per_record.update({"dynamodb_write_requests_per_unit": write_requests, "dynamodb_items_written_per_unit": 2.2})
    cpu = {"count": 2, "p50": 25.0, "p90": 25.0, "p99": 25.0, "mean": 25.0, "min": 25.0, "max": 25.0}
    return {"batch_size": batch_size, "subscriptions": 2 * batch_size, "records": 2 * batch_size, "invocations": 2,
            "invocations_per_record": 1 / batch_size, "per_record": per_record, "record_failures": 0,
            "state_writes_per_record": 1.0, "thread_cpu_ms_per_invocation": cpu,
            "wall_ms_per_invocation_against_moto": cpu, "log_bytes_per_invocation": 0.0}


def projector(state_bytes_after_10: int = 845, state_bytes_after_30: int = 845, state_writes_redelivered: int = 0,
              write_requests: float = 2.0, batched: bool = True) -> dict:
    """The counting section's projector scenario: one record per invocation, a PutEvents each (and, unless
    ``batched`` is false, the same work in batches of 25)."""
    per_record = phase(4, 4, 4, {"dynamodb.BatchWriteItem": 1.0, "dynamodb.PutItem": 1.0,
                                 "dynamodb.GetItem": 1.0, "eventbridge.PutEvents": 1.0})
    per_record.update({"dynamodb_write_requests_per_unit": write_requests, "dynamodb_items_written_per_unit": 3.0})
    items = {str(renewals): {"state_item_bytes": size, "personal_item_bytes": 2900, "event_count": renewals + 1,
                             "history_table_items": renewals + 2}
             for renewals, size in ((10, state_bytes_after_10), (30, state_bytes_after_30))}
    cpu = {"count": 10, "p50": 2.0, "p90": 2.0, "p99": 3.0, "mean": 2.0, "min": 1.0, "max": 3.0}
    return {"memory_mb": 256, "subscriptions": 1, "records": 14, "per_record": per_record, "thread_cpu_ms": cpu,
            "by_event_type": {"RenewalSuccess": {"records": 11, "requests_per_record": 4.0,
                                                 "write_units_per_record": 4.0, "read_units_per_record": 1.0}},
            "log_bytes_per_invocation": 0.0, "subscription_item_bytes": {"mean": 845.0},
            "state_writes_per_record": 1.0,
            "redelivered": {"records": 14, "state_writes": state_writes_redelivered,
                            "per_record": phase(3, 2, 2, {"dynamodb.BatchWriteItem": 1.0, "dynamodb.GetItem": 1.0,
                                                          "dynamodb.TransactWriteItems": 1.0})},
            "subscription_items_after_renewals": items, **({"batched": projector_batched()} if batched else {})}


def end_to_end_results(**projector_figures) -> dict:
    """Results with every section issue 14's targets read, all of them within their targets."""
    from bench.cost_model import costs_from_measurements

    measured = measurements()
    measured["counting"]["ours"]["new"].update({"dynamodb_write_requests_per_unit": 1.0,
                                                "dynamodb_items_written_per_unit": 1.0})
    measured["counting"]["projector"] = projector(**projector_figures)
    cold = {"boto3_import_cpu_ms": 200.0, "targets": [
        {"name": "WebhookReceiverFunction", "import_cpu_ms": 220.0, "first_delivery_cpu_ms": 80.0,
         "import_ms": 230.0, "cpu_ratio_to_boto3": 1.1, "ratio_to_boto3": 1.1}]}
    measured["cold_imports"] = cold
    local = {"start_seconds": 5.0,
             "webhooks": {"deliveries_per_second": 130.0, "latency_ms": {"p50": 30.0, "p99": 200.0},
                          "transport_errors": 0, "statuses": {"200": 1950}, "client_threads": 4, "seconds": 15.0,
                          "accepted": 1950, "requests": 1950, "stored_in_events_table": 1950,
                          "stored_equals_accepted": True},
             "operations": {"operations": 8, "operation_type": "discount", "pace_seconds": 0.3, "finished": 8,
                            "statuses": {"succeeded": 8}, "request_to_ccbill_answer_ms": {"p50": 80.0, "p99": 90.0},
                            "request_to_completed_ms": {"p50": 80.0, "p99": 90.0}}}
    return {"counting": measured["counting"], "timing": measured["timing"], "cold_imports": cold, "local": local,
            "costs": costs_from_measurements(measured)}
