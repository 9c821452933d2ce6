"""Explicit-bucket histograms spread into the log-bucketed LatencyHistogram."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlens.signals.explicit_buckets import from_explicit_buckets
from meshlens.signals.histogram import ALPHA, bucket_value_ns

MS = 1_000_000
ISTIO_BOUNDS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                   300000, 600000, 1800000, 3600000)  # fmt: skip
BOUNDS = [b * MS for b in ISTIO_BOUNDS_MS]


def _ms(name: str) -> float:
    """b250 -> 250.0, b0_5 -> 0.5"""
    return float(name[1:].replace("_", "."))


def _counts(**by_upper_ms: int) -> list[int]:
    counts = [0] * (len(BOUNDS) + 1)
    for upper, n in by_upper_ms.items():
        index = len(BOUNDS) if upper == "inf" else ISTIO_BOUNDS_MS.index(_ms(upper))
        counts[index] = n
    return counts


def test_one_count_sits_on_its_buckets_midpoint() -> None:
    histogram = from_explicit_buckets(BOUNDS, _counts(b250=1))
    value = histogram.quantile(0.5)
    assert value is not None
    assert abs(value - 175 * MS) <= ALPHA * 175 * MS


def test_many_counts_spread_evenly_like_histogram_quantile() -> None:
    histogram = from_explicit_buckets(BOUNDS, _counts(b100=1000))  # (50, 100] ms
    for q, expected_ms in ((0.1, 55), (0.5, 75), (0.9, 95)):
        value = histogram.quantile(q)
        assert value is not None
        assert abs(value - expected_ms * MS) <= ALPHA * expected_ms * MS


def test_the_overflow_bucket_sits_on_the_last_bound() -> None:
    histogram = from_explicit_buckets(BOUNDS, _counts(inf=3))
    value = histogram.quantile(0.99)
    assert value is not None
    assert abs(value - 3_600_000 * MS) <= ALPHA * 3_600_000 * MS


def test_the_first_bucket_starts_at_zero() -> None:
    histogram = from_explicit_buckets(BOUNDS, _counts(b0_5=2))
    assert histogram.total == 2
    top = histogram.quantile(1.0)
    assert top is not None
    assert top <= 0.5 * MS * (1 + ALPHA)


def test_mismatched_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="bucket counts"):
        from_explicit_buckets([1.0, 2.0], [1, 2])


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=20, max_size=20))
def test_every_count_lands_within_its_bucket(counts: list[int]) -> None:
    histogram = from_explicit_buckets(BOUNDS, counts)
    assert histogram.total == sum(counts)
    values: list[float] = []
    for key, n in sorted(histogram.counts.items()):
        values.extend([bucket_value_ns(key)] * n)
    position = 0
    for index, n in enumerate(counts):
        lower = BOUNDS[index - 1] if index else 0.0
        upper = BOUNDS[index] if index < len(BOUNDS) else lower
        for value in (values[position], values[position + n - 1]) if n else ():
            assert lower / (1 + ALPHA) - 1_000 <= value <= upper * (1 + ALPHA)
        position += n
