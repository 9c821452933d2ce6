"""Log-bucketed latency histograms: bucket edges, storage arrays, merging and quantile accuracy."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlens.signals.histogram import (
    ALPHA,
    GAMMA,
    MAX_DURATION_NS,
    MAX_KEY,
    MIN_NS,
    SMALLINT_MAX,
    LatencyHistogram,
    bucket_of,
    bucket_value_ns,
    nearest_rank,
)

MS = 1_000_000
HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
PRODUCT_TOLERANCE = 0.05  # the product issue: p50/p95/p99 within 5% of the exact percentile
QS = (0.5, 0.95, 0.99)
EXACT_GAMMA = Fraction(51, 49)


def _histogram(values: list[int]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)
    return histogram


def _merged(histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
    """A new histogram with the counts of all `histograms`, through `merge` only."""
    merged = LatencyHistogram()
    for histogram in histograms:
        merged.merge(histogram)
    return merged


def _exact(values: list[int], q: float) -> int:
    """The exact nearest-rank percentile: the ceil(q*n)-th smallest value."""
    return sorted(values)[nearest_rank(q, len(values)) - 1]


def _assert_close(estimate: float | None, exact: int, tolerance: float) -> None:
    assert estimate is not None
    if exact >= MIN_NS:
        assert abs(estimate - exact) / exact <= tolerance, (estimate, exact)
    else:
        assert abs(estimate - exact) <= MIN_NS, (estimate, exact)


def _upper_bound(key: int) -> Fraction:
    return MIN_NS * EXACT_GAMMA**key


# --- buckets -------------------------------------------------------------------------------


def test_constants() -> None:
    assert float(EXACT_GAMMA) == pytest.approx(GAMMA, rel=1e-15)
    assert MAX_KEY == bucket_of(MAX_DURATION_NS) <= SMALLINT_MAX
    assert bucket_of(HOUR_NS) == 551
    assert bucket_of(DAY_NS) == 630


def test_key_zero_holds_everything_up_to_one_microsecond() -> None:
    for duration in (-5, 0, 1, 500, 999, MIN_NS):
        assert bucket_of(duration) == 0
    assert bucket_of(MIN_NS + 1) == 1
    assert bucket_value_ns(0) == pytest.approx(2 * MIN_NS / (GAMMA + 1))
    assert MIN_NS - bucket_value_ns(0) <= ALPHA * MIN_NS


def test_every_bucket_edge_is_exact() -> None:
    """The largest integer at or below each upper bound is in the bucket, the next one above."""
    for key in range(1, MAX_KEY):
        inside = math.floor(_upper_bound(key))
        assert bucket_of(inside) == key, key
        assert bucket_of(inside + 1) == key + 1, key
        assert bucket_of(math.floor(_upper_bound(key - 1)) + 1) == key, key


def test_keys_are_monotone_and_representatives_within_alpha() -> None:
    rng = random.Random(7)
    values = sorted(rng.randrange(MIN_NS, 10**17) for _ in range(5_000))
    keys = [bucket_of(value) for value in values]
    assert keys == sorted(keys)
    for value, key in zip(values, keys, strict=True):
        assert abs(bucket_value_ns(key) - value) <= ALPHA * value * (1 + 1e-12)


def test_clamp_at_the_top() -> None:
    assert bucket_of(MAX_DURATION_NS + 1) == MAX_KEY
    assert bucket_of(10**40) == MAX_KEY
    assert math.isfinite(bucket_value_ns(MAX_KEY))
    for key in (-1, MAX_KEY + 1):
        with pytest.raises(ValueError, match="outside"):
            bucket_value_ns(key)


# --- histogram bookkeeping -----------------------------------------------------------------


def test_add_counts_and_total() -> None:
    histogram = LatencyHistogram()
    histogram.add(5 * MS)
    histogram.add(5 * MS, count=3)
    histogram.add(7 * MS, count=0)
    assert histogram.counts == {bucket_of(5 * MS): 4}
    assert histogram.total == 4
    with pytest.raises(ValueError, match="negative"):
        histogram.add(5 * MS, count=-1)


def test_arrays_round_trip() -> None:
    histogram = _histogram([0, 3 * MS, 3 * MS, 40 * MS, 900 * MS, HOUR_NS])
    keys, counts = histogram.to_arrays()
    assert keys == sorted(keys)
    assert counts[keys.index(bucket_of(3 * MS))] == 2
    assert LatencyHistogram.from_arrays(keys, counts) == histogram
    assert LatencyHistogram.from_arrays([], []) == LatencyHistogram()


@pytest.mark.parametrize(
    ("keys", "counts", "message"),
    [
        ([1, 2], [1], "differ in length"),
        ([1, 2], [1, -1], "negative"),
        ([3, 3], [1, 1], "repeat"),
        ([MAX_KEY + 1], [1], "outside"),
        ([-1], [1], "outside"),
    ],
)
def test_from_arrays_rejects_bad_arrays(keys: list[int], counts: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencyHistogram.from_arrays(keys, counts)


def test_from_arrays_drops_zero_counts() -> None:
    assert LatencyHistogram.from_arrays([4, 9], [0, 2]).counts == {9: 2}


def test_merge_is_associative_and_equals_one_histogram() -> None:
    rng = random.Random(11)
    parts = [[rng.randrange(0, 2_000 * MS) for _ in range(300)] for _ in range(3)]
    a, b, c = (_histogram(part) for part in parts)
    left = LatencyHistogram(a.counts).merge(b).merge(c)
    right = LatencyHistogram(a.counts).merge(LatencyHistogram(b.counts).merge(c))
    everything = _histogram([value for part in parts for value in part])
    assert left == right == everything == _merged([a, b, c]) == _merged([c, a, b])
    assert a == _histogram(parts[0])  # merging leaves the merged-in histograms alone
    assert _merged([]) == LatencyHistogram()


def test_merge_returns_self() -> None:
    histogram = _histogram([MS])
    assert histogram.merge(_histogram([2 * MS])) is histogram
    assert histogram.total == 2


# --- quantiles -----------------------------------------------------------------------------


def test_nearest_rank() -> None:
    assert nearest_rank(0.0, 10) == 1
    assert nearest_rank(1.0, 10) == 10
    assert nearest_rank(0.5, 3) == 2
    assert nearest_rank(0.5, 4) == 2
    assert nearest_rank(0.07, 100) == 7  # not ceil(7.000000000000001)
    assert nearest_rank(0.99, 1) == 1
    with pytest.raises(ValueError, match="at least one"):
        nearest_rank(0.5, 0)


def test_quantile_on_empty_is_none() -> None:
    assert LatencyHistogram().quantile(0.5) is None
    assert LatencyHistogram().quantiles_ms() == {"p50": None, "p95": None, "p99": None}


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan, math.inf])
def test_bad_q_raises(q: float) -> None:
    with pytest.raises(ValueError, match="within"):
        _histogram([MS]).quantile(q)
    with pytest.raises(ValueError, match="within"):
        LatencyHistogram().quantile(q)


def test_quantiles_ms() -> None:
    histogram = _histogram([10 * MS] * 50 + [100 * MS] * 49 + [1_000 * MS])
    result = histogram.quantiles_ms()
    assert list(result) == ["p50", "p95", "p99"]
    for name, exact_ms in (("p50", 10), ("p95", 100), ("p99", 100)):
        value = result[name]
        assert value is not None
        assert value == round(value, 3)
        assert abs(value - exact_ms) / exact_ms <= ALPHA
    assert set(histogram.quantiles_ms((0.999, 0.25))) == {"p99.9", "p25"}


def _lognormal(rng: random.Random) -> list[int]:
    return [int(rng.lognormvariate(math.log(20 * MS), 0.6)) for _ in range(20_000)]


def _uniform(rng: random.Random) -> list[int]:
    return [rng.randrange(1 * MS, 1_000 * MS + 1) for _ in range(20_000)]


def _bimodal(rng: random.Random) -> list[int]:
    fast = [int(rng.gauss(2 * MS, 0.2 * MS)) for _ in range(9_000)]
    slow = [int(rng.gauss(800 * MS, 50 * MS)) for _ in range(1_000)]
    return fast + slow


def _single(rng: random.Random) -> list[int]:
    return [37 * MS + 123]


def _with_tiny(rng: random.Random) -> list[int]:
    tiny = [0] * 300 + [rng.randrange(0, MIN_NS) for _ in range(300)] + [MIN_NS] * 50
    return tiny + [rng.randrange(MIN_NS, 5 * MS) for _ in range(400)]


def _all_tiny(rng: random.Random) -> list[int]:
    return [0, 1, 250, 999]


@pytest.mark.parametrize(
    "make",
    [_lognormal, _uniform, _bimodal, _single, _with_tiny, _all_tiny],
    ids=lambda f: f.__name__,
)
def test_percentiles_within_product_tolerance(make: Callable[[random.Random], list[int]]) -> None:
    values = make(random.Random(2024))
    histogram = _histogram(values)
    for q in (*QS, 0.0, 0.25, 0.75, 0.999, 1.0):
        estimate = histogram.quantile(q)
        _assert_close(estimate, _exact(values, q), ALPHA * (1 + 1e-9))
        _assert_close(estimate, _exact(values, q), PRODUCT_TOLERANCE)


def test_percentiles_survive_rollups_across_minutes_and_services() -> None:
    rng = random.Random(5)
    minutes = {
        (service, minute): [int(rng.lognormvariate(math.log(scale * MS), 0.8)) for _ in range(200)]
        for service, scale in (("cart", 8), ("checkout", 60))
        for minute in range(60)
    }
    per_minute = {slot: _histogram(values) for slot, values in minutes.items()}
    hourly = [
        _merged(h for (s, _), h in per_minute.items() if s == svc) for svc in ("cart", "checkout")
    ]
    mesh = _merged(hourly)
    values = [value for part in minutes.values() for value in part]
    assert mesh == _histogram(values)
    for q in QS:
        _assert_close(mesh.quantile(q), _exact(values, q), PRODUCT_TOLERANCE)


# --- properties ----------------------------------------------------------------------------

durations = st.lists(st.integers(min_value=MIN_NS, max_value=HOUR_NS), min_size=1, max_size=300)


@settings(database=None, max_examples=300)
@given(values=durations, q=st.floats(min_value=0.0, max_value=1.0))
def test_quantile_relative_error_is_at_most_alpha(values: list[int], q: float) -> None:
    estimate = _histogram(values).quantile(q)
    exact = _exact(values, q)
    assert estimate is not None
    assert abs(estimate - exact) / exact <= ALPHA + 1e-9


@settings(database=None, max_examples=200)
@given(values=durations, data=st.data())
def test_split_and_merge_gives_identical_counts(values: list[int], data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(values)))
    merged = _histogram(values[:cut]).merge(_histogram(values[cut:]))
    assert merged.counts == _histogram(values).counts
    assert merged.to_arrays() == _histogram(values).to_arrays()
