"""bench.cost_model: the arithmetic from measured figures to dollars, with known inputs."""

import pytest
from bench_fixture import measurements

from bench.cost_model import (
    PLATFORM_LOG_BYTES,
    Assumptions,
    Prices,
    billed_ms,
    costs_from_measurements,
    cpu_scale,
    floor_cost,
    gb_seconds,
    lambda_duration_ms,
    render_access_log,
    storage_per_month,
    webhook_cost,
    within,
)

PRICES = Prices()


def test_lambda_duration_scales_cpu_with_memory_and_adds_round_trips():
    assumptions = Assumptions(aws_round_trip_ms=5.0, ccbill_answer_ms=1000.0)
    assert cpu_scale(1769) == 1.0 and cpu_scale(3538) == 1.0
    assert cpu_scale(256) == pytest.approx(1769 / 256)
    assert lambda_duration_ms(2.0, 1769, 1, assumptions=assumptions) == pytest.approx(7.0)
    assert lambda_duration_ms(1.0, 256, 2, 1, assumptions=assumptions) == pytest.approx(1769 / 256 + 10 + 1000)


def test_billed_duration_rounds_up_to_the_millisecond():
    assert billed_ms(0.2) == 1 and billed_ms(1.0) == 1 and billed_ms(1.01) == 2
    assert gb_seconds(512, 10.5) == pytest.approx(0.5 * 0.011)


def test_the_floor_is_one_api_request_one_tiny_invocation_and_one_write():
    floor = floor_cost(1.0)
    expected = 1.00 + 0.20 + 0.125 * 0.001 * 0.0000133334 * 1e6 + 0.625
    assert floor.total == pytest.approx(expected)
    assert [item.name for item in floor.items] == ["API Gateway", "Lambda requests", "Lambda duration",
                                                  "DynamoDB writes"]


def test_webhook_cost_adds_up_its_line_items():
    breakdown = webhook_cost("t", api_per_million=1.0, api_log_bytes=300, memory_mb=1024, duration_ms=10,
                             write_units=2, billed_requests={"dynamodb.PutItem": 1, "eventbridge.PutEvents": 1},
                             handler_log_bytes=700)
    items = {item.name: item.cost * 1e6 for item in breakdown.items}
    assert items["API Gateway"] == pytest.approx(1.0)
    assert items["API access log"] == pytest.approx(300 / 1e9 * 0.5 * 1e6)
    assert items["Lambda requests"] == pytest.approx(0.2)
    assert items["Lambda duration"] == pytest.approx(1.0 * 0.010 * 0.0000133334 * 1e6)
    assert items["DynamoDB writes"] == pytest.approx(1.25)
    assert items["eventbridge.PutEvents"] == pytest.approx(1.0)
    assert "dynamodb.PutItem" not in items  # DynamoDB is billed by units, not by request
    assert items["CloudWatch Logs"] == pytest.approx((700 + PLATFORM_LOG_BYTES) / 1e9 * 0.5 * 1e6)
    assert breakdown.total == pytest.approx(sum(items.values()))


def test_cold_starts_bill_init_and_their_extra_requests_at_the_assumed_rate():
    assumptions = Assumptions(cold_start_rate=0.5)
    breakdown = webhook_cost("t", api_per_million=1.0, api_log_bytes=0, memory_mb=1024, duration_ms=1, write_units=1,
                             handler_log_bytes=0, cold_start_ms=1000,
                             cold_start_requests={"secrets-manager.GetSecretValue": 1}, assumptions=assumptions)
    items = {item.name: item.cost * 1e6 for item in breakdown.items}
    assert items["Cold starts (INIT billed)"] == pytest.approx(0.5 * 1.0 * 1.0 * 0.0000133334 * 1e6)
    assert items["Cold starts: secrets-manager.GetSecretValue"] == pytest.approx(0.5 * 0.05 / 1e4 * 1e6)


def test_costs_from_measurements_checks_the_targets():
    costs = costs_from_measurements(measurements())
    targets = costs["targets"]
    assert targets["requests_per_new_delivery"] == {"value": 1, "limit": 1.0, "passed": True}
    ours, floor = costs["breakdowns"]["ours"]["total"], costs["breakdowns"]["floor"]["total"]
    assert floor == pytest.approx(floor_cost(1).total)
    assert targets["cost_within_15pct_of_floor"]["passed"] is (ours <= floor * 1.15)
    assert costs["breakdowns"]["baseline"]["items"][0]["total"] == pytest.approx(3.50)  # REST API
    assert costs["what_if"]["index_writes_per_million"] == pytest.approx(0.625)
    assert costs["access_log_bytes"] == len(b'{"requestId":"JKJaXmPLvHcESHA=","status":"200"}\n')
    assert "receiver_cold_import_under_1_5x_boto3" not in targets  # no cold-import measurement given


def test_costs_from_measurements_judges_the_cold_import_on_cpu_time():
    measured = measurements()
    measured["cold_imports"] = {"boto3_import_ms": 300.0, "boto3_import_cpu_ms": 200.0, "targets": [
        {"name": "WebhookReceiverFunction", "import_ms": 600.0, "import_cpu_ms": 280.0, "ratio_to_boto3": 2.0,
         "cpu_ratio_to_boto3": 1.4, "first_delivery_ms": 50.0, "first_delivery_cpu_ms": 40.0}]}
    target = costs_from_measurements(measured)["targets"]["receiver_cold_import_under_1_5x_boto3"]
    assert target["passed"] is True and target["ratio"] == 1.4 and target["wall_ratio"] == 2.0
    assert target["import_plus_first_delivery_ratio"] == pytest.approx(320 / 200)


def test_within_and_storage():
    assert within(115, 100, 0.15) and not within(115.01, 100, 0.15)
    stored = storage_per_month(924, 1_000_000, pitr=True)
    assert stored["gigabytes"] == pytest.approx(1_000_000 * 1024 / 1024**3)
    assert stored["dollars_per_month"] == pytest.approx(stored["gigabytes"] * 0.45)


def test_access_log_line_from_the_template_format():
    line = render_access_log('{"ip":"$context.identity.sourceIp","s":"$context.status"}',
                             {"identity.sourceIp": "1.2.3.4", "status": "200"})
    assert line == '{"ip":"1.2.3.4","s":"200"}\n'


def test_lambda_platform_lines_are_billed_unless_the_function_sends_only_warnings():
    measured = measurements()
    default = costs_from_measurements(measured)
    quiet = costs_from_measurements({**measured, "system_log_levels": {"WebhookReceiverFunction": "WARN"}})

    def logs(costs: dict, key: str) -> float:
        return next(item["total"] for item in costs["breakdowns"][key]["items"] if item["name"] == "CloudWatch Logs")

    saved = PLATFORM_LOG_BYTES / 1e9 * 0.5  # per webhook, at $0.50 per GB ingested
    assert logs(default, "ours") - logs(quiet, "ours") == pytest.approx(saved * 1e6)
    assert logs(default, "baseline") == pytest.approx(logs(quiet, "baseline"))  # the tutorial keeps the default
    assert quiet["platform_log_bytes_by_function"]["WebhookReceiverFunction"] == 0


def test_the_end_to_end_floor_adds_a_state_write_and_the_projectors_share_of_a_batch():
    from bench.cost_model import end_to_end_floor

    floor = end_to_end_floor(2.0, 1.0, assumptions=Assumptions(projector_batch_size=25))
    invocation = 0.20 + 0.125 * 0.001 * 0.0000133334 * 1e6  # per million: the request and 128 MB x 1 ms
    assert floor.total == pytest.approx(1.00 + invocation * (1 + 1 / 25) + 0.625 * (2 + 1))
    assert [item.name for item in floor.items] == ["API Gateway", "Lambda requests", "Lambda duration",
                                                  "DynamoDB writes", "Projector: Lambda requests",
                                                  "Projector: Lambda duration", "Projector: DynamoDB writes"]


def test_the_end_to_end_figure_puts_domain_events_on_their_own_line_and_sizes_the_floor_state_write():
    from bench_fixture import end_to_end_results

    e2e = end_to_end_results(state_bytes_after_10=845, state_bytes_after_30=1025)["costs"]["end_to_end"]
    assert e2e["domain_events"] == pytest.approx(1.00)  # one PutEvents per delivery, $1 per million
    assert e2e["intake_fold_logs"] + e2e["domain_events"] == pytest.approx(e2e["all_in"])
    assert e2e["floor_inputs"]["state_write_units"] == 2  # 1,025 B: two 1 KB write units
    assert e2e["floor_inputs"]["state_item_source"] == "measured after a sale and 30 renewals"
    assert e2e["ratio"] == pytest.approx(e2e["intake_fold_logs"] / e2e["floor"])


def test_the_batched_fold_pays_one_invocation_per_batch_and_its_requests_one_after_the_other():
    from bench_fixture import projector

    from bench.cost_model import projector_batched_breakdown

    fold, duration = projector_batched_breakdown(projector(), platform_bytes=0)
    # 25 ms of CPU at 256 MB (x 1769/256) + 3.12 requests x 25 records x 6 ms, for the whole batch
    assert duration == pytest.approx(25.0 * 1769 / 256 + 3.12 * 25 * 6.0)
    items = {item.name: item for item in fold.items}
    assert items["Projector: Lambda requests"].quantity == pytest.approx(1 / 25)
    assert items["Projector: Lambda duration"].quantity == pytest.approx(gb_seconds(256, duration) / 25)
    assert items["Projector: DynamoDB writes"].quantity == pytest.approx(3.0)
    # EventBridge bills each event (per 64 KB chunk), not each call: what was counted per delivery is priced.
    assert items["Projector: eventbridge.PutEvents"].quantity == pytest.approx(1.0)
    assert fold.share("Projector: eventbridge.") == pytest.approx(1.00)
    assert fold.label == "Projector (batches of 25)"


def test_the_cost_target_is_computed_on_the_batched_fold_and_the_floor_takes_the_templates_batch_size():
    from bench_fixture import end_to_end_results, projector

    results = end_to_end_results()
    costs = results["costs"]
    assert costs["end_to_end"]["projector_records_per_invocation"] == 25
    assert costs["end_to_end_one_record_per_invocation"]["projector_records_per_invocation"] == 1
    assert costs["end_to_end"]["intake_fold_logs"] < costs["end_to_end_one_record_per_invocation"]["intake_fold_logs"]
    batched = {i["name"] for i in costs["breakdowns"]["ours_full_batched"]["items"]}
    assert batched == {i["name"] for i in costs["breakdowns"]["ours_full"]["items"]}
    assert costs["breakdowns"]["projector"]["label"] == "Projector"  # one record per invocation, as before

    measured = measurements()
    measured["counting"]["ours"]["new"].update({"dynamodb_write_requests_per_unit": 1.0,
                                                "dynamodb_items_written_per_unit": 1.0})
    measured["counting"]["projector"] = projector()
    measured["counting"]["projector"]["batched"]["batch_size"] = 10
    e2e = costs_from_measurements(measured)["end_to_end"]
    assert e2e["floor_inputs"]["batch_size"] == 10
    assert e2e["floor"] > costs["end_to_end"]["floor"]  # a larger share of the projector's invocation

    del measured["counting"]["projector"]["batched"]
    alone = costs_from_measurements(measured)
    assert "end_to_end_one_record_per_invocation" not in alone
    assert alone["end_to_end"]["projector_records_per_invocation"] == 1
    assert alone["end_to_end"]["floor_inputs"]["batch_size"] == 25  # the assumption, without a measured batch
