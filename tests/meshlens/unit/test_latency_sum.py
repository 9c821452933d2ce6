"""`read.results.Latency` (histograms summed for an answer) agrees with `LatencyHistogram`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlens.read.results import Latency, top_reason
from meshlens.signals.histogram import MAX_KEY, LatencyHistogram

histograms = st.dictionaries(
    st.integers(0, MAX_KEY), st.integers(1, 10**12), min_size=0, max_size=40
).map(LatencyHistogram)


def _arrays(histogram: LatencyHistogram) -> tuple[list[int], list[int]]:
    return histogram.to_arrays()


def _text(histograms: list[LatencyHistogram]) -> str:
    """As `read.rollup_sql` sends them: PostgreSQL array literals, keys then counts, per row."""
    literal = "{{{}}}".format
    pairs = []
    for histogram in histograms:
        keys, counts = histogram.to_arrays()
        pairs += [literal(",".join(map(str, keys))), literal(",".join(map(str, counts)))]
    return "[" + ",".join(pairs) + "]"


@given(st.lists(histograms, max_size=8), st.lists(histograms, max_size=8), st.booleans())
def test_sums_and_percentiles_equal_merged_histograms(
    rows: list[LatencyHistogram], other_rows: list[LatencyHistogram], as_text: bool
) -> None:
    merged = LatencyHistogram()
    latency, other = Latency(), Latency()
    for row in rows:
        merged.merge(row)
        latency.add_arrays(*_arrays(row))
    for row in other_rows:
        merged.merge(row)
    if as_text:
        other.add_text(_text(other_rows))
    else:
        for row in other_rows:
            other.add_arrays(*_arrays(row))
    if other_rows and len(other_rows) % 2:
        other.counts()  # summed already: merged as dense counts
    latency.merge(other)
    assert latency.quantiles_ms() == merged.quantiles_ms()
    assert latency.histogram() == merged
    assert latency.quantiles_ms() == merged.quantiles_ms()  # asking twice changes nothing


def test_merging_leaves_the_other_as_it_was() -> None:
    one, two = Latency(), Latency()
    one.add_arrays([10, 20], [1, 2])
    two.add_arrays([20], [5])
    two.counts()
    one.merge(two)
    two.add_arrays([30], [7])
    assert one.histogram() == LatencyHistogram({10: 1, 20: 7})
    assert two.histogram() == LatencyHistogram({20: 5, 30: 7})


def test_text_as_postgresql_sends_it() -> None:
    latency = Latency()
    latency.add_text("[{3,7},{2,1},{},{},{7},{5}]")
    assert latency.histogram() == LatencyHistogram({3: 2, 7: 6})
    negative = Latency()
    negative.add_text("[{-1},{1}]")
    with pytest.raises(ValueError, match="negative"):
        negative.counts()
    uneven = Latency()
    uneven.add_text("[{1,2},{1}]")
    with pytest.raises(ValueError, match="shorter"):
        uneven.counts()


def test_empty() -> None:
    assert Latency().quantiles_ms() == {"p50": None, "p95": None, "p99": None}
    empty_rows = Latency()
    empty_rows.add_arrays([], [])
    assert empty_rows.quantiles_ms() == {"p50": None, "p95": None, "p99": None}


@pytest.mark.parametrize(
    ("keys", "counts", "message"),
    [([1, 2], [3], "arrays differ"), ([-1], [3], "negative")],
)
def test_bad_arrays(keys: list[int], counts: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Latency().add_arrays(keys, counts)


def test_a_key_past_the_last_bucket_fails_when_summed() -> None:
    latency = Latency()
    latency.add_arrays([MAX_KEY + 1], [1])
    with pytest.raises(IndexError):
        latency.counts()


def test_top_reason() -> None:
    assert top_reason({}) is None
    assert top_reason({"no_identity": 0}) is None
    assert top_reason({"b": 3, "a": 2}) == "b"
    assert top_reason({"b": 3, "a": 3}) == "a"  # ties: the first by name


def test_ranks_as_nearest_rank() -> None:
    for total in (1, 2, 3, 19, 20, 21, 99, 100, 101, 1999, 10**12 + 7):
        latency = Latency()
        latency.add_arrays([1, 2], [total - 1, 1] if total > 1 else [1, 0])
        expected = LatencyHistogram({1: total - 1, 2: 1} if total > 1 else {1: 1})
        assert latency.quantiles_ms() == expected.quantiles_ms(), total
