"""bench.report: the Markdown the README and bench/report.md get, rendered from a small fixture."""

from bench_fixture import measurements

from bench.cost_model import costs_from_measurements
from bench.report import by_category, category, money, render_report, render_table


def _results() -> dict:
    measured = measurements()
    return {"generated_at": "2026-11-22 10:00 UTC", "mode": "quick", "elapsed_seconds": 12.0,
            "machine": {"description": "x86_64, 2 CPUs", "load_average_start": "0.1/0.1/0.1"},
            "counting": measured["counting"], "timing": measured["timing"],
            "costs": costs_from_measurements(measured), "not_measured": {"package_sizes": "skipped (--only/--skip)"},
            "caveats": ["CPU times are measured on this machine."], "storage": {}, "fixed_monthly": {}}


def test_the_readme_table_compares_the_three_designs_and_states_the_targets():
    text = render_table(_results())
    assert "| per webhook | billops | baseline (Powertools tutorial) | floor |" in text
    assert "| AWS requests per new delivery | 1 | 3 | 1 |" in text
    assert "no (stored 40 items for 20 deliveries)" in text and "yes (stored once)" in text
    assert "- **PASS** one AWS request per new delivery: 1 measured" in text
    assert "cost per million webhooks within 15% of the floor" in text
    assert "- **NOT MEASURED** receiver's cold import" in text


def test_the_report_has_every_section_and_says_what_was_not_measured():
    text = render_report(_results())
    for heading in ("## Targets", "## Cost breakdowns", "## AWS requests and DynamoDB capacity, counted",
                    "## Hot path: in-process time per delivery", "## Package sizes", "## Prices",
                    "## Sections not measured in this run"):
        assert heading in text, heading
    assert "_Not measured: skipped (--only/--skip)_" in text
    assert "https://aws.amazon.com/dynamodb/pricing/on-demand/" in text
    assert "![cost and requests per webhook](chart.png)" in text


def test_line_items_fall_into_chart_categories():
    assert category("API Gateway") == "API Gateway"
    assert category("API access log") == "CloudWatch Logs"
    assert category("Projector: DynamoDB writes") == "DynamoDB"
    assert category("Cold starts (INIT billed)") == "Lambda"
    assert category("eventbridge.PutEvents") == "Other"
    totals = by_category({"items": [{"name": "API Gateway", "total": 1.0}, {"name": "Lambda requests", "total": 0.2}]})
    assert totals["API Gateway"] == 1.0 and totals["Lambda"] == 0.2 and totals["Other"] == 0.0


def test_money_formatting():
    assert money(1234.5) == "$1,234" or money(1234.5) == "$1,235"
    assert money(3.456) == "$3.46" and money(0.0304) == "$0.030" and money(0.0012) == "$0.0012"
    assert money(None) == "—"


def test_the_table_goes_between_the_readme_markers_and_replaces_the_last_one(tmp_path):
    from bench.report import splice_into_readme

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- bench-table:start -->\nold table\n<!-- bench-table:end -->\n\n## next\n")
    assert splice_into_readme(readme, "| new | table |\n")
    assert readme.read_text() == ("# x\n\n<!-- bench-table:start -->\n| new | table |\n<!-- bench-table:end -->\n"
                                  "\n## next\n")
    untouched = tmp_path / "OTHER.md"
    untouched.write_text("no markers\n")
    assert not splice_into_readme(untouched, "| new |") and untouched.read_text() == "no markers\n"


def _with_projector(**figures) -> dict:
    from bench_fixture import end_to_end_results

    results = end_to_end_results(**figures)
    del results["cold_imports"]  # the fixture's cold figures are the verdict's only, not the report section's
    results.update(generated_at="2026-12-06 10:00 UTC", mode="full", machine={"description": "x86_64, 2 CPUs"})
    return results


def test_the_report_gives_the_batched_fold_first_and_one_record_per_invocation_beside_it():
    results = _with_projector()
    costs = results["costs"]
    report = render_report(results)
    assert "the projector costed in batches of 25, the batch the floor assumes: issue 14's target is judged" in report
    one = costs["end_to_end_one_record_per_invocation"]
    assert (f"At one stream record per invocation (a merchant with little traffic, the worst case; not judged) "
            f"intake + fold + logs costs {money(one['intake_fold_logs'])}") in report
    assert "**Projector in batches of 25** (the template's BatchSize" in report
    assert "`SubscriptionChanged` events in PutEvents calls of up to 10 (1 calls and 1 billed events per record)" in report
    table = render_table(results)
    assert (f"| **Cost per million webhooks, intake + fold + logs** (without domain events; projector in batches of "
            f"25, one record per invocation in brackets; floor: end to end) | "
            f"**{money(costs['end_to_end']['intake_fold_logs'])}** ({money(one['intake_fold_logs'])}) |") in table
    assert ("| DynamoDB write requests per delivery (intake + projector) | 2.12 (1 intake + 1.12 projector) in "
            "batches of 25; 3 (1 intake + 2 projector) at one record per invocation |") in table


def test_the_fold_paragraph_says_the_history_is_in_its_own_items_and_when_subscription_changed_is_published():
    report = render_report(_with_projector(state_bytes_after_10=845, state_bytes_after_30=850))
    fold = report[report.index("### The subscription fold"):report.index("## Cost breakdowns")]
    assert "Proposals" not in fold and "it keeps the history" not in fold
    assert "The state item is bounded: 845 B after a sale and 10 renewals, 850 B after 30 (+5 B" in fold
    assert "The history is in items of its own (SubscriptionHistoryTable" in fold
    assert "32 items after 30 renewals" in fold and "personal-data item there (2,900 B)" in fold
    assert "in batches of 25 (" in fold and "at one record per invocation" in fold
    assert "`SubscriptionChanged` is published only when the fold changed a field a consumer reads" in fold
    assert "records redelivered unchanged published 0 per record" in fold
    assert "publish 1 event per delivery, one PutEvents call per changed fold (not one per batch)" in fold


def test_without_the_batched_figures_the_report_says_one_record_per_invocation():
    results = _with_projector(batched=False)
    report = render_report(results)
    assert "the projector costed at one stream record per invocation, the floor at a batch of B" in report
    assert "**Projector in batches" not in report
    assert "intake + fold + logs** (without domain events; projector at one record per invocation;" in \
        render_table(results)


def test_the_projectors_writes_are_counted_and_shown_by_table_and_operation():
    from types import SimpleNamespace

    from bench.aws_request_counting import Call, write_units_by_table
    from bench.report import projector_writes_table

    created = SimpleNamespace(tables={"SubscriptionsTable": SimpleNamespace(name="billops-local-SubscriptionsTable"),
                                      "ReportsTable": SimpleNamespace(name="billops-local-ReportsTable")})
    calls = [Call("dynamodb", "PutItem", "projector_batched", None, attempts=1, table="billops-local-SubscriptionsTable",
                  write_units_table=1, write_units_indexes={"by_status_created": 1}) for _ in range(4)]
    calls += [Call("dynamodb", "TransactWriteItems", "projector_batched", None, attempts=1,
                   table="billops-local-ReportsTable", write_units_table=6),
              Call("dynamodb", "GetItem", "projector_batched", None, attempts=4, table="billops-local-SubscriptionsTable"),
              Call("dynamodb", "BatchWriteItem", "projector_batched", None, attempts=1, table="billops-local-ReportsTable",
                   write_units_table=3, units_by_table={"billops-local-ReportsTable": [2, 0],
                                                        "billops-local-SubscriptionsTable": [1, 0]}),
              Call("dynamodb", "PutItem", "ours", None, attempts=1, table="billops-local-SubscriptionsTable",
                   write_units_table=9)]
    rows = write_units_by_table(calls, "projector_batched", 4, created)
    assert rows == [
        {"table": "SubscriptionsTable", "operation": "PutItem", "write_units_per_unit": 1.0,
         "index_write_units_per_unit": 1.0, "requests_per_unit": 1.0},
        {"table": "ReportsTable", "operation": "TransactWriteItems", "write_units_per_unit": 1.5,
         "index_write_units_per_unit": 0.0, "requests_per_unit": 0.25},
        {"table": "ReportsTable", "operation": "BatchWriteItem", "write_units_per_unit": 0.5,
         "index_write_units_per_unit": 0.0, "requests_per_unit": 0.25},
        {"table": "SubscriptionsTable", "operation": "BatchWriteItem", "write_units_per_unit": 0.25,
         "index_write_units_per_unit": 0.0, "requests_per_unit": 0.25}]
    text = projector_writes_table(rows, 25)
    assert "| `SubscriptionsTable` | PutItem | 1 | 1 | 1 |" in text
    assert "| `ReportsTable` | TransactWriteItems | 0.250 | 1.50 | 0 |" in text
    assert "| **total** |  |  | **4.25** |  |" in text
