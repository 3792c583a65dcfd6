"""The log-linear histogram: exact below its linear range, within one bucket's error above."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.loadgen.histogram import LogLinearHistogram


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@given(
    values=st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=400),
    p=st.floats(min_value=0.1, max_value=100.0),
    bits=st.integers(min_value=2, max_value=10),
)
def test_percentile_within_one_bucket_of_exact(values: list[int], p: float, bits: int) -> None:
    """Every percentile is within one bucket's relative width of the exact nearest-rank percentile."""
    histogram = LogLinearHistogram(bits)
    histogram.record_all(values)
    exact = exact_percentile(values, p)
    reported = histogram.percentile(p)
    assert reported is not None
    assert abs(reported - exact) <= exact * histogram.relative_error() + 1e-9


@given(values=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=200))
def test_count_sum_min_max_are_exact(values: list[int]) -> None:
    """Count, mean, min and max are exact, whatever the bucketing."""
    histogram = LogLinearHistogram()
    histogram.record_all(values)
    assert histogram.count == len(values)
    assert histogram.mean() == pytest.approx(sum(values) / len(values))
    assert (histogram.min, histogram.max) == (min(values), max(values))


@given(
    left=st.lists(st.integers(min_value=0, max_value=10**8), max_size=100),
    right=st.lists(st.integers(min_value=0, max_value=10**8), max_size=100),
)
def test_merge_equals_recording_both(left: list[int], right: list[int]) -> None:
    """Merging two histograms gives the same percentiles as recording all values into one."""
    a, b, both = LogLinearHistogram(), LogLinearHistogram(), LogLinearHistogram()
    a.record_all(left)
    b.record_all(right)
    both.record_all(left + right)
    a.merge(b)
    assert a.count == both.count
    for p in (50, 90, 99, 100):
        assert a.percentile(p) == both.percentile(p)


@given(index=st.integers(min_value=0, max_value=5000))
def test_bucket_bounds_round_trip(index: int) -> None:
    """Both ends of a bucket map back to that bucket, and its width obeys the precision."""
    histogram = LogLinearHistogram(7)
    low, high = histogram.bucket_bounds(index)
    assert histogram._index(low) == index == histogram._index(high)
    assert high - low <= max(0, low * histogram.relative_error())


def test_small_values_are_exact() -> None:
    """Values below the linear range are reported exactly."""
    histogram = LogLinearHistogram(7)
    histogram.record_all([1, 2, 3, 100, 255])
    assert histogram.percentile(50) == 3
    assert histogram.percentile(100) == 255


def test_empty_and_invalid_input() -> None:
    """An empty histogram has no percentiles; negative values and bad percentiles are refused."""
    histogram = LogLinearHistogram()
    assert histogram.percentile(50) is None and histogram.mean() is None
    with pytest.raises(ValueError, match=">= 0"):
        histogram.record(-1)
    with pytest.raises(ValueError, match="percentile"):
        histogram.percentile(0)
