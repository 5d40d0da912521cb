"""Issue 14's targets ("Performance end to end"), judged on one run's results: PASS, FAIL or NOT MEASURED.

Pure: a results dictionary (bench/results.json's shape) in, one verdict per target out (plain dictionaries, kept in
results.json as ``end_to_end_targets``), so the unit tests pin each verdict from a fixture. The limits are issue
14's table; ``at_filing`` is the figure the issue was filed with (bench/report.md of 2026-11-22).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

COST_LIMIT_RATIO = 1.3
COST_LIMIT_DOLLARS = 4.00
WRITE_REQUESTS_LIMIT = 3.0
STATE_ITEM_LIMIT_BYTES = 4096
ITEM_GROWTH_ALLOWANCE_BYTES = 16
""""Not growing": 20 more renewals may add a few bytes (a counter or a number gaining a digit), not an entry each."""
COLD_LIMIT_RATIO = 1.6
LOCAL_RATE_LIMIT = 120.0
LOCAL_P99_LIMIT_MS = 250.0


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _verdict(key: str, figure: str, target: str, at_filing: str, passed: bool | None, measured: str,
             **figures: Any) -> dict[str, Any]:
    return {"key": key, "figure": figure, "target": target, "at_filing": at_filing, "passed": passed,
            "measured": measured, "figures": figures}


def cost(results: Mapping[str, Any]) -> dict[str, Any]:
    from bench.report import money

    figure, target = ("cost per million webhooks, intake + fold + logs (domain events on their own line)",
                      f"≤ {COST_LIMIT_RATIO}x the end-to-end floor, and ≤ {money(COST_LIMIT_DOLLARS)}")
    e2e = _get(results, "costs", "end_to_end")
    if not e2e or not e2e.get("floor"):
        return _verdict("cost_end_to_end", figure, target, "$11.05", None, "not measured (needs the counting, "
                        "timing and projector figures)")
    value, floor = e2e["intake_fold_logs"], e2e["floor"]
    passed = value <= floor * COST_LIMIT_RATIO + 1e-12 and value <= COST_LIMIT_DOLLARS + 1e-12
    per_invocation = e2e.get("projector_records_per_invocation", 1)
    one = _get(results, "costs", "end_to_end_one_record_per_invocation")
    beside = (f"; at one record per invocation (a merchant with little traffic, not judged): "
              f"{money(one['intake_fold_logs'])} = {one['ratio']:.2f}x, domain events "
              f"{money(one['domain_events'])}" if one else "")
    return _verdict("cost_end_to_end", figure, target, "$11.05", passed,
                    f"{money(value)} vs end-to-end floor {money(floor)} = {e2e['ratio']:.2f}x, the projector at "
                    f"{_records(per_invocation)} per invocation; domain events {money(e2e['domain_events'])} on "
                    f"their own line (all in {money(e2e['all_in'])} = {e2e['all_in_ratio']:.2f}x){beside}",
                    value=value, floor=floor, ratio=e2e["ratio"], projector_records_per_invocation=per_invocation,
                    one_record_per_invocation=one["intake_fold_logs"] if one else None,
                    one_record_per_invocation_ratio=one["ratio"] if one else None)


def _records(per_invocation: float) -> str:
    return "one record" if per_invocation == 1 else f"{per_invocation:.4g} records"


def write_requests(results: Mapping[str, Any]) -> dict[str, Any]:
    figure, target = ("DynamoDB write requests per delivery (intake + projector)",
                      f"≤ {WRITE_REQUESTS_LIMIT:g}, and state written only when changed")
    intake = _get(results, "counting", "ours", "new", "dynamodb_write_requests_per_unit")
    # Judged on the batched fold (the batch the end-to-end floor assumes) when measured; one record per invocation
    # (the worst case) is shown beside it.
    batched = _get(results, "counting", "projector", "batched")
    single = _get(results, "counting", "projector")
    judged = batched if batched else single
    projector = _get(judged, "per_record", "dynamodb_write_requests_per_unit")
    redelivered = _get(results, "counting", "projector", "redelivered")
    state = _get(judged, "state_writes_per_record")
    if intake is None or projector is None or redelivered is None or state is None:
        return _verdict("write_requests_per_delivery", figure, target, "3+", None,
                        "not measured (needs the counting section's ours and projector scenarios)")
    total = intake + projector
    items = ((_get(results, "counting", "ours", "new", "dynamodb_items_written_per_unit") or 0.0)
             + (_get(judged, "per_record", "dynamodb_items_written_per_unit") or 0.0))
    passed = total <= WRITE_REQUESTS_LIMIT + 1e-9 and redelivered["state_writes"] == 0
    how = f"in batches of {batched['batch_size']}" if batched else "one record per invocation"
    one = _get(single, "per_record", "dynamodb_write_requests_per_unit") if batched else None
    beside = (f"; at one record per invocation (not judged): {intake + one:.2f} ({intake:.2f} + {one:.2f})"
              if one is not None else "")
    return _verdict("write_requests_per_delivery", figure, target, "3+", passed,
                    f"{total:.2f} write requests ({intake:.2f} intake + {projector:.2f} projector {how}; "
                    f"{items:.2f} items written); state written {state:.2f} times per new delivery "
                    f"and {redelivered['state_writes']} times for {redelivered['records']} redelivered (unchanged) "
                    f"records{beside}", value=total, intake=intake, projector=projector, items_written=items,
                    state_writes_per_record=state, redelivered_state_writes=redelivered["state_writes"],
                    projector_batch_size=batched["batch_size"] if batched else 1,
                    one_record_per_invocation=intake + one if one is not None else None)


def subscription_item(results: Mapping[str, Any]) -> dict[str, Any]:
    figure, target = ("subscription item after a sale and 30 renewals",
                      f"≤ {STATE_ITEM_LIMIT_BYTES // 1024} KB, not growing with renewals")
    after = _get(results, "counting", "projector", "subscription_items_after_renewals") or {}
    at_10, at_30 = _get(after, "10", "state_item_bytes"), _get(after, "30", "state_item_bytes")
    if at_10 is None or at_30 is None:
        return _verdict("subscription_item_bytes", figure, target, "~10 KB, growing", None,
                        "not measured (needs the counting section's projector scenario)")
    growth = at_30 - at_10
    passed = at_30 <= STATE_ITEM_LIMIT_BYTES and growth <= ITEM_GROWTH_ALLOWANCE_BYTES
    personal = _get(after, "30", "personal_item_bytes")
    return _verdict("subscription_item_bytes", figure, target, "~10 KB, growing", passed,
                    f"state item {at_30:,} B after 30 renewals, {at_10:,} B after 10 ({growth:+,} B); the "
                    f"personal-data item {personal if personal is not None else '—'} B and one history item per "
                    f"delivery ({_get(after, '30', 'history_table_items')}) live in the history table",
                    value=at_30, after_10=at_10, growth=growth, personal_item_bytes=personal)


def cold_start(results: Mapping[str, Any]) -> dict[str, Any]:
    from bench.report import ms

    figure, target = "receiver import + first delivery vs bare `import boto3`", f"≤ {COLD_LIMIT_RATIO}x"
    receiver = next((t for t in _get(results, "cold_imports", "targets") or []
                     if t.get("name") == "WebhookReceiverFunction"), None)
    boto3 = _get(results, "cold_imports", "boto3_import_cpu_ms")
    if not receiver or receiver.get("first_delivery_cpu_ms") is None or not boto3:
        return _verdict("receiver_import_and_first_delivery", figure, target, "2.9x", None,
                        "not measured (needs the cold section)")
    total = receiver["import_cpu_ms"] + receiver["first_delivery_cpu_ms"]
    ratio = total / boto3
    return _verdict("receiver_import_and_first_delivery", figure, target, "2.9x", ratio <= COLD_LIMIT_RATIO + 1e-9,
                    f"{ms(total)} CPU ({ms(receiver['import_cpu_ms'])} import + "
                    f"{ms(receiver['first_delivery_cpu_ms'])} first delivery) vs {ms(boto3)} = {ratio:.2f}x",
                    value=ratio, cpu_ms=total, boto3_cpu_ms=boto3)


def local_stack(results: Mapping[str, Any]) -> dict[str, Any]:
    from bench.report import ms

    figure, target = ("local stack, webhooks/s sustained (p99)",
                      f"≥ {LOCAL_RATE_LIMIT:g} (≤ {LOCAL_P99_LIMIT_MS:g} ms), no errors")
    hooks = _get(results, "local", "webhooks")
    if not hooks or hooks.get("deliveries_per_second") is None:
        return _verdict("local_webhooks_per_second", figure, target, "39.5 (585 ms)", None,
                        "not measured (needs the local section)")
    rate, p99 = hooks["deliveries_per_second"], _get(hooks, "latency_ms", "p99")
    errors = hooks.get("transport_errors", 0) + sum(n for status, n in (hooks.get("statuses") or {}).items()
                                                    if str(status) != "200")
    passed = rate >= LOCAL_RATE_LIMIT and p99 is not None and p99 <= LOCAL_P99_LIMIT_MS and errors == 0
    return _verdict("local_webhooks_per_second", figure, target, "39.5 (585 ms)", passed,
                    f"{rate:.1f}/s (p99 {ms(p99)}), {errors} errors, {hooks.get('client_threads')} client threads "
                    f"for {hooks.get('seconds', 0):.0f} s", value=rate, p99_ms=p99, errors=errors)


TARGETS: tuple[Callable[[Mapping[str, Any]], dict[str, Any]], ...] = (
    cost, write_requests, subscription_item, cold_start, local_stack)


def verdicts(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One verdict per issue-14 target, in the issue's order."""
    return [judge(results) for judge in TARGETS]
