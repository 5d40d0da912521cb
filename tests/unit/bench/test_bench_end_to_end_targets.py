"""bench.end_to_end_targets: issue 14's verdicts (PASS, FAIL, NOT MEASURED) from a fixture, and the report's lines."""

import copy

import pytest
from bench_fixture import end_to_end_results

from bench.end_to_end_targets import verdicts
from bench.report import render_report, render_table


def _by_key(results: dict) -> dict:
    return {v["key"]: v for v in verdicts(results)}


KEYS = ["cost_end_to_end", "write_requests_per_delivery", "subscription_item_bytes",
        "receiver_import_and_first_delivery", "local_webhooks_per_second"]


def _cheap(results: dict) -> dict:
    """The fixture's intake + fold within 1.3x the floor and $4.00 (its measured figures are made up: the verdict
    is what is tested, with the floor and the figure the cost model computes)."""
    e2e = results["costs"]["end_to_end"]
    e2e["intake_fold_logs"] = e2e["floor"] * 1.25
    e2e["ratio"] = 1.25
    return results


def test_every_target_passes_when_its_figure_is_within_it():
    verdict = _by_key(_cheap(end_to_end_results()))
    assert list(verdict) == KEYS
    assert all(v["passed"] is True for v in verdict.values()), verdict


def _too_dear_for_the_ratio(r):
    r["costs"]["end_to_end"].update(intake_fold_logs=r["costs"]["end_to_end"]["floor"] * 1.31, ratio=1.31)


def _too_dear_in_dollars(r):
    r["costs"]["end_to_end"].update(floor=3.5, intake_fold_logs=4.01, ratio=4.01 / 3.5)


def _more_writes(r):
    r["counting"]["projector"]["batched"]["per_record"]["dynamodb_write_requests_per_unit"] = 2.01  # 1 + 2.01 > 3


def _state_rewritten(r):
    r["counting"]["projector"]["redelivered"]["state_writes"] = 1


def _item_too_big(r):
    r["counting"]["projector"]["subscription_items_after_renewals"]["30"]["state_item_bytes"] = 4097
    r["counting"]["projector"]["subscription_items_after_renewals"]["10"]["state_item_bytes"] = 4097


def _item_grows(r):
    r["counting"]["projector"]["subscription_items_after_renewals"]["30"]["state_item_bytes"] = 845 + 17


def _slow_cold_start(r):
    r["cold_imports"]["targets"][0]["first_delivery_cpu_ms"] = 101.0  # (220 + 101) / 200 = 1.605x


def _slow_local(r):
    r["local"]["webhooks"]["deliveries_per_second"] = 119.9


def _late_local(r):
    r["local"]["webhooks"]["latency_ms"]["p99"] = 251.0


def _local_errors(r):
    r["local"]["webhooks"]["statuses"] = {"200": 1949, "503": 1}


@pytest.mark.parametrize(("change", "key"), [
    (_too_dear_for_the_ratio, "cost_end_to_end"), (_too_dear_in_dollars, "cost_end_to_end"),
    (_more_writes, "write_requests_per_delivery"), (_state_rewritten, "write_requests_per_delivery"),
    (_item_too_big, "subscription_item_bytes"), (_item_grows, "subscription_item_bytes"),
    (_slow_cold_start, "receiver_import_and_first_delivery"), (_slow_local, "local_webhooks_per_second"),
    (_late_local, "local_webhooks_per_second"), (_local_errors, "local_webhooks_per_second")])
def test_a_figure_beyond_its_target_fails_that_target_only(change, key):
    results = _cheap(end_to_end_results())
    change(results)
    verdict = _by_key(results)
    assert verdict[key]["passed"] is False
    assert all(v["passed"] is True for k, v in verdict.items() if k != key)


@pytest.mark.parametrize(("missing", "key"), [
    (("costs", "end_to_end"), "cost_end_to_end"),
    (("counting", "projector", "redelivered"), "write_requests_per_delivery"),
    (("counting", "projector", "subscription_items_after_renewals"), "subscription_item_bytes"),
    (("cold_imports",), "receiver_import_and_first_delivery"), (("local",), "local_webhooks_per_second")])
def test_a_figure_not_measured_is_said_so(missing, key):
    results = copy.deepcopy(_cheap(end_to_end_results()))
    parent = results
    for name in missing[:-1]:
        parent = parent[name]
    del parent[missing[-1]]
    verdict = _by_key(results)
    assert verdict[key]["passed"] is None and verdict[key]["measured"].startswith("not measured")


def test_a_state_item_that_keeps_its_size_within_the_allowance_is_not_growing():
    results = _cheap(end_to_end_results(state_bytes_after_10=845, state_bytes_after_30=845 + 16))
    assert _by_key(results)["subscription_item_bytes"]["passed"] is True


def test_the_report_and_the_readme_table_give_issue_14s_verdicts_then_issue_4s():
    results = end_to_end_results()
    results["local"]["webhooks"]["deliveries_per_second"] = 40.0
    del results["cold_imports"]
    results.update(generated_at="2026-12-06 10:00 UTC", mode="full", machine={"description": "x86_64, 2 CPUs"})
    report = render_report(results)
    assert report.index("### Issue 14: performance end to end") < report.index("### Issue 4's targets")
    assert "- **FAIL** local stack, webhooks/s sustained (p99) ≥ 120 (≤ 250 ms), no errors: 40.0/s" in report
    assert "- **NOT MEASURED** receiver import + first delivery vs bare `import boto3` ≤ 1.6x" in report
    assert "**The end-to-end floor**" in report and "ceil(state item / 1 KB)" in report
    assert "(measured after a sale and 30 renewals), B = 25" in report
    table = render_table(results)
    assert table.index("Issue 14's targets") < table.index("Issue 4's targets")
    assert "| Subscription state item after a sale and 30 renewals (after 10) | 845 B (845 B) | — | — |" in table


def test_write_requests_are_judged_in_batches_and_shown_at_one_record_per_invocation_beside():
    results = _cheap(end_to_end_results(write_requests=2.5))  # one per invocation: 1 + 2.5 = 3.5 > 3
    verdict = _by_key(results)["write_requests_per_delivery"]
    assert verdict["passed"] is True
    assert verdict["figures"]["value"] == pytest.approx(1 + 1.12)
    assert verdict["figures"]["projector_batch_size"] == 25
    assert verdict["figures"]["one_record_per_invocation"] == pytest.approx(3.5)
    assert "1.12 projector in batches of 25" in verdict["measured"]
    assert "at one record per invocation (not judged): 3.50 (1.00 + 2.50)" in verdict["measured"]


def test_without_the_batched_figures_one_record_per_invocation_is_judged():
    results = _cheap(end_to_end_results(write_requests=2.5, batched=False))
    verdict = _by_key(results)["write_requests_per_delivery"]
    assert verdict["passed"] is False and verdict["figures"]["value"] == pytest.approx(3.5)
    assert "one record per invocation" in verdict["measured"] and "not judged" not in verdict["measured"]
    assert _by_key(results)["cost_end_to_end"]["figures"]["one_record_per_invocation"] is None


def test_the_cost_verdict_is_the_batched_figure_with_one_record_per_invocation_beside_it():
    results = end_to_end_results()
    costs = results["costs"]
    verdict = _by_key(results)["cost_end_to_end"]
    assert verdict["figures"]["value"] == costs["end_to_end"]["intake_fold_logs"]
    assert verdict["figures"]["projector_records_per_invocation"] == 25
    one = costs["end_to_end_one_record_per_invocation"]
    assert verdict["figures"]["one_record_per_invocation"] == one["intake_fold_logs"]
    assert "the projector at 25 records per invocation" in verdict["measured"]
    assert "at one record per invocation (a merchant with little traffic, not judged)" in verdict["measured"]
    # A cheap batched figure passes whatever one record per invocation costs.
    one["intake_fold_logs"], one["ratio"] = 100.0, 30.0
    assert _by_key(_cheap(results))["cost_end_to_end"]["passed"] is True
