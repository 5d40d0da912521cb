"""The model docs/scale.md quotes for the counted items under a burst (bench.report_counting_model)."""

from __future__ import annotations

from bench.report_counting_model import simulate


def test_a_minute_of_a_burst_outgrows_an_item_keyed_by_the_minute_but_not_one_keyed_by_the_second():
    minute = simulate(rate=250, seconds=60, batch=25, bucket_seconds=60)
    second = simulate(rate=1000, seconds=60, batch=25, bucket_seconds=1)
    assert minute["fails_after"] is not None and minute["largest_item_kb"] > 400
    assert second["fails_after"] is None and second["largest_item_kb"] < 40


def test_keyed_by_the_second_a_delivery_costs_less_and_grows_slower_with_the_rate():
    for rate in (10, 25, 100, 1000):
        assert simulate(rate, 60, 25, 1)["units_per_delivery"] < simulate(rate, 60, 25, 60)["units_per_delivery"]
    assert simulate(25, 60, 25, 1)["units_per_delivery"] < 0.5
