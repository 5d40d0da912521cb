"""``python -m bench`` (``make bench``): measure, compute the costs, write bench/results.json, bench/report.md,
bench/chart.png and bench/README-table.md.

Sections, each in fresh interpreters (bench.isolated):
  counting   AWS requests and DynamoDB units per delivery / duplicate / projected record / operation (moto)
  timing     in-process time per delivery, AWS stubbed, and the handlers' log bytes
  cold       cold import of every function's handler module, beside a bare `import boto3`
  sizes      `sam build` of the template and of the baseline (needs PyPI)
  local      the local stack's webhook throughput and operation latency
A section that cannot run is reported as not measured; the others still are. The targets are checked here and
printed as PASS/FAIL lines (in the report too); the exit code is 0 whatever they say, 1 only if the run broke.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.isolated import ROOT, BenchFailure, clean_environment, run_isolated

SECTIONS = ("counting", "timing", "cold", "sizes", "local")
# Counts of AWS requests and units are deterministic per event type (2 of each of the 20 types is plenty); the
# timings are where the samples matter.
FULL = {"deliveries": 40, "lifecycles": 3, "operations": 10, "iterations": 1000, "warmup": 100, "cold_runs": 7,
        "local_seconds": 15.0, "local_threads": 4, "local_operations": 16, "local_pace": 0.5}
QUICK = {"deliveries": 20, "lifecycles": 2, "operations": 4, "iterations": 300, "warmup": 50, "cold_runs": 3,
         "local_seconds": 5.0, "local_threads": 4, "local_operations": 8, "local_pace": 0.3}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_counting(settings: dict[str, Any], work: Path) -> dict[str, Any]:
    counts = {"ours": settings["deliveries"], "baseline": settings["deliveries"],
              "projector": settings["lifecycles"], "operations": settings["operations"]}
    out = {}
    for scenario, count in counts.items():
        log(f"counting: {scenario} ({count})")
        out[scenario] = run_isolated("bench.aws_request_counting", [scenario, "--count", str(count)], timeout=600,
                                     stdout_path=work / f"counting-{scenario}.log")
    return out


def run_timing(settings: dict[str, Any], work: Path) -> dict[str, Any]:
    out = {}
    for target in ("ours", "baseline"):
        log(f"timing: {target} ({settings['iterations']} deliveries + as many duplicates)")
        out[target] = run_isolated(
            "bench.hot_path_timing",
            [target, "--iterations", str(settings["iterations"]), "--warmup", str(settings["warmup"])],
            timeout=600, stdout_path=work / f"timing-{target}.log")
    return out


def run_cold(settings: dict[str, Any], work: Path) -> dict[str, Any]:
    log(f"cold imports ({settings['cold_runs']} runs of boto3, the receiver and the baseline)")
    return run_isolated("bench.cold_imports", ["--runs", str(settings["cold_runs"])], timeout=900)


def run_sizes(settings: dict[str, Any], work: Path) -> dict[str, Any]:
    log("package sizes (sam build)")
    return run_isolated("bench.package_sizes", [], timeout=1200, env=clean_environment())


def run_local(settings: dict[str, Any], work: Path) -> dict[str, Any]:
    log(f"local stack ({settings['local_seconds']:.0f} s of webhooks, {settings['local_operations']} operations)")
    return run_isolated(
        "bench.local_throughput",
        ["--seconds", str(settings["local_seconds"]), "--threads", str(settings["local_threads"]),
         "--operations", str(settings["local_operations"]), "--pace", str(settings["local_pace"])], timeout=600)


RUNNERS = {"counting": run_counting, "timing": run_timing, "cold": run_cold, "sizes": run_sizes, "local": run_local}
RESULT_KEYS = {"counting": "counting", "timing": "timing", "cold": "cold_imports", "sizes": "package_sizes",
               "local": "local"}


def template_facts() -> dict[str, Any]:
    from billops_local.template_resources import load_yaml

    document = load_yaml(ROOT / "template.yaml")
    resources = document["Resources"]
    counts: dict[str, int] = {}
    # The nested stacks deployed whatever the parameters (the alarms and dashboard: templates/monitoring.yaml) count
    # too; the optional ones (a Condition) are off by default.
    nested = [load_yaml(ROOT / r["Properties"]["Location"])["Resources"] for r in resources.values()
              if r["Type"] == "AWS::Serverless::Application" and "Condition" not in r]
    for resource in [*resources.values(), *(each for part in nested for each in part.values())]:
        counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    access_log = (((resources.get("HttpApi") or {}).get("Properties") or {}).get("AccessLogSettings") or {})
    levels = {name: (((resource.get("Properties") or {}).get("LoggingConfig") or {}).get("SystemLogLevel"))
              for name, resource in resources.items() if resource["Type"] == "AWS::Serverless::Function"}
    return {"resource_counts": counts, "access_log_format": access_log.get("Format"), "system_log_levels": levels}


def storage_and_fixed(results: dict[str, Any], facts: dict[str, Any]) -> tuple[dict, dict]:
    from bench.cost_model import PRICES, storage_per_month

    storage = {}
    ours = (results.get("counting") or {}).get("ours") or {}
    base = (results.get("counting") or {}).get("baseline") or {}
    if ours.get("stored_bytes_per_item"):
        storage["billops events table (item, no index, PITR on)"] = storage_per_month(
            ours["stored_bytes_per_item"], pitr=True)
    log_bytes = (((results.get("counting") or {}).get("projector") or {}).get("delivery_log_item_bytes") or {})
    if log_bytes.get("mean"):
        # TTL removes an item after 90 days: about three months of deliveries are kept at any time.
        storage["billops delivery log (envelope item, no index, PITR on, kept 90 days)"] = storage_per_month(
            log_bytes["mean"], pitr=True)
    if base.get("stored_bytes_per_item"):
        storage["baseline events table (item; idempotency records expire after 1 h)"] = storage_per_month(
            base["stored_bytes_per_item"], pitr=False)
    counts = facts["resource_counts"]
    fixed = {}
    for kind, label, price in (("AWS::SecretsManager::Secret", "Secrets Manager secrets", PRICES.secret_month),
                               ("AWS::KMS::Key", "KMS keys", PRICES.kms_key_month),
                               ("AWS::CloudWatch::Alarm", "CloudWatch alarms", PRICES.alarm_month),
                               ("AWS::CloudWatch::Dashboard", "CloudWatch dashboards", PRICES.dashboard_month)):
        if counts.get(kind):
            fixed[label] = {"count": counts[kind], "dollars_per_month": counts[kind] * price}
    return storage, fixed


def caveats(results: dict[str, Any]) -> list[str]:
    costs = results.get("costs") or {}
    assumptions = costs.get("assumptions") or {}
    machine = results["machine"]
    return [
        (f"CPU times are measured on this machine ({machine['description']}), not on Graviton; the machine was "
         f"shared with other work (load average {machine['load_average_start']} at the start), so wall-clock times "
         "are noisy: the cost model and the cold-import target use CPU time, and ratios (billops vs baseline, "
         "module vs boto3) say more than absolute figures."),
        ("Lambda durations are modelled from the CPU time (x 1769 MB / memory), "
         f"{assumptions.get('aws_round_trip_ms')} ms per sequential AWS request and "
         f"{assumptions.get('ccbill_answer_ms')} ms per CCBill call (assumed: no AWS account, and the sandbox "
         "answers at once). Cost uses the mean, the tables show p50/p99."),
        (f"Cold starts are assumed on {100 * (assumptions.get('cold_start_rate') or 0):.0f}% of invocations; their "
         "INIT (billed since 2025-08-01) is the measured import, plus the first delivery at the function's CPU share."),
        ("DynamoDB write/read units are computed from the stored items with DynamoDB's documented rules (moto "
         "reports a constant); the item mix is the 20 event types evenly, which over-weights rare types (sales and "
         "upgrades, ~1.7 KB) against renewals (~0.8 KB)."),
        ("The baseline's idempotency records expire after Powertools' default hour: a CCBill re-delivery later than "
         "that is stored again. Documented behaviour, not measured here (it would take an hour)."),
        ("CloudWatch Logs are billed on the bytes measured from each handler's stdout (at the template's default "
         "INFO level) plus Lambda's START/END/REPORT lines and, for billops, the HTTP API access log line rendered "
         "from the template's format. billops' functions use the JSON log format with SystemLogLevel WARN, and "
         "START/END/REPORT are INFO-level system logs (Lambda developer guide, log-level filtering), so they are "
         "costed at 0 bytes for them and at their text size for the baseline; not verified on AWS (no account). "
         "Log storage after ingestion ($0.03/GB-month, 30-day retention in the template), the EMF custom metrics "
         "and the WebhooksAccepted metric filter's metric ($0.30 per metric per month, a fixed cost whatever the "
         "volume) are not included."),
        ("The projector is measured and costed twice: in batches of the template's BatchSize for its stream (B "
         "records per invocation, in stream order, each batch holding B subscriptions' deliveries of one day, as a "
         "rebill day gives) and at one stream record per invocation (a merchant with a few deliveries a minute: the "
         "worst case). Issue 14's cost and write-request targets are judged on the batched figures, the batch the "
         "end-to-end floor assumes; the one-record figures are printed beside them. A batched invocation's duration "
         "is its measured CPU plus its requests made one after the other (the fold handles a batch's records in "
         "turn)."),
        ("Per thousand operations is measured for discounts (one CCBill call, no webhook back). Cancellations and "
         "extensions also read viewSubscriptionStatus, upgrades may decrypt the upgrade key with KMS (cached) and "
         "bring webhooks back through the receiver and projector: not measured. Lambda's SQS event source keeps "
         "long-polling the FIFO queue even when idle (a fixed number of empty receives per month), not included."),
        ("Not measured: real AWS latencies and API Gateway's own overhead (no AWS account), X-Ray (neither design "
         "uses it), data transfer out (answers are under 200 bytes), free tiers, DynamoDB Streams (free for Lambda "
         "triggers), the EventBridge archive's storage, and the merchant API's traffic."),
        ("Cold imports run on x86_64 wheels of the layer's pinned versions (the arm64 wheels `sam build` packs cannot "
         "load here); package sizes are those arm64 builds."),
        ("The local stack's numbers describe one machine (moto and each function environment a process of its "
         "own, the client on the same machine), not AWS."),
        ("Issue 14's local-stack target names wrk for 60 s; the bench's local section is its own Python client "
         "(the threads and seconds it states), so its rate is a bench figure, not a wrk run."),
        ("The daily figures' TransactWriteItems are costed at 2 WRU per KB of each item written (DynamoDB's rule for "
         "transactional writes), a cancelled transaction like failed conditional writes; BatchGetItem reads at "
         "each item's whole size. Write requests per delivery count the API calls that write (a BatchWriteItem "
         "or a transaction is one request, whatever it holds); the items they wrote are given beside them."),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer deliveries, runs and seconds (about half the time)")
    parser.add_argument("--only", default="", help=f"comma-separated sections to run: {','.join(SECTIONS)}")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip (e.g. sizes,local)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where the results go (default bench/)")
    parser.add_argument("--rerender", action="store_true",
                        help="measure nothing: recompute the costs from <out>/results.json (e.g. after a price "
                             "change) and write the report, chart and table again")
    arguments = parser.parse_args(argv)
    if arguments.rerender:
        import json

        results = json.loads((arguments.out / "results.json").read_text())
        finish(results, arguments.out, elapsed=results.get("elapsed_seconds", 0.0))
        return 0
    only = {s for s in arguments.only.split(",") if s}
    skip = {s for s in arguments.skip.split(",") if s}
    unknown = (only | skip) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    sections = [s for s in SECTIONS if (not only or s in only) and s not in skip]
    settings = QUICK if arguments.quick else FULL

    started = time.monotonic()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if arguments.quick else "full",
        "settings": settings,
        "machine": {"description": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    "load_average_start": "/".join(f"{v:.1f}" for v in os.getloadavg())},
        "not_measured": {},
        "section_seconds": {},
    }
    with tempfile.TemporaryDirectory(prefix="billops-bench-") as work:
        for section in SECTIONS:
            if section not in sections:
                results["not_measured"][RESULT_KEYS[section]] = "skipped (--only/--skip)"
                continue
            section_started = time.monotonic()
            try:
                results[RESULT_KEYS[section]] = RUNNERS[section](settings, Path(work))
            except (BenchFailure, RuntimeError, OSError) as error:
                log(f"{section} failed: {error}")
                results["not_measured"][RESULT_KEYS[section]] = str(error).splitlines()[0][:300]
            results["section_seconds"][section] = round(time.monotonic() - section_started, 1)

    finish(results, arguments.out, elapsed=time.monotonic() - started)
    return 0


def finish(results: dict[str, Any], out: Path, *, elapsed: float) -> None:
    """Costs from the measurements, then results.json, report.md, chart.png and README-table.md."""
    facts = template_facts()
    if results.get("counting") and results.get("timing"):
        from bench.cost_model import costs_from_measurements

        results["costs"] = costs_from_measurements({
            "counting": results["counting"], "timing": results["timing"],
            "cold_imports": results.get("cold_imports"), "access_log_format": facts["access_log_format"],
            "system_log_levels": facts["system_log_levels"]})
    else:
        results.pop("costs", None)
        results["not_measured"]["costs"] = "needs the counting and timing sections"
    results["storage"], results["fixed_monthly"] = storage_and_fixed(results, facts)
    results["elapsed_seconds"] = elapsed
    results["caveats"] = caveats(results)
    from bench.end_to_end_targets import verdicts

    results["end_to_end_targets"] = verdicts(results)

    from bench.report import splice_into_readme, target_lines, write_all

    paths = write_all(results, out)
    if results.get("mode") == "full" and out.resolve() == (ROOT / "bench").resolve() and \
            splice_into_readme(ROOT / "README.md", paths["table"].read_text()):
        paths["readme"] = ROOT / "README.md"
    for line in target_lines(results):
        print(line.replace("**", ""))
    print(f"wrote {', '.join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in paths.values())} "
          f"in {elapsed:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
