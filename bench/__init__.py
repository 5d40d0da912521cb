"""billops benchmarks (`make bench`, i.e. `python -m bench`): what a webhook and an operation cost, measured side by
side with the tutorial-style Powertools baseline, written to bench/results.json, bench/report.md and bench/chart.png.

Not part of `make test`: the pure parts (cost arithmetic, percentiles, DynamoDB unit rules, report rendering) have
unit tests in tests/unit/bench; the measurements themselves are checked against their targets by the benchmark
(PASS/FAIL lines in the report), never by timed assertions in tests.
"""
