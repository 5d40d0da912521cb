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
