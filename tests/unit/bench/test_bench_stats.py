"""bench.stats: the percentile definition the reports use (linear interpolation between closest ranks)."""

import pytest

from bench.stats import median, percentile, summary


def test_percentile_interpolates_between_closest_ranks():
    values = [4, 1, 3, 2]  # unsorted on purpose
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 4
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == 1.75
    assert percentile(values, 99) == pytest.approx(3.97)


def test_percentile_of_one_value_and_median():
    assert percentile([7.5], 99) == 7.5
    assert median([3, 1, 2]) == 2


def test_percentile_refuses_nothing_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_summary_names_its_figures():
    figures = summary([1.0, 2.0, 3.0, 4.0, 5.0])
    assert figures["count"] == 5 and figures["p50"] == 3.0 and figures["mean"] == 3.0
    assert figures["min"] == 1.0 and figures["max"] == 5.0 and figures["p99"] == pytest.approx(4.96)
    assert summary([]) == {"count": 0}
