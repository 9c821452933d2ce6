"""Explicit-bucket histograms (OTLP, Prometheus) as mergeable `LatencyHistogram`s.

An explicit bucket only says that `n` durations lay in `(lower, upper]`. Its counts are spread
evenly over that range, the assumption Prometheus' `histogram_quantile` makes when it
interpolates linearly: the log buckets overlapping the range get shares proportional to their
overlap, rounded so that they add up to exactly `n` (one count lands on the range's midpoint,
two on its quarter points, and so on). The first bucket starts at 0; the overflow bucket
(above the last bound) has no upper end and its counts sit on the last bound.

Precision: a percentile is only as good as the source buckets. A duration anywhere in
`(lower, upper]` may be reported anywhere in that range, so the error is bounded by the
bucket's width (Istio's default `(100, 250]` ms: up to 150 ms; `(10, 30]` s: up to 20 s), not
by the 2% of `meshlens.signals.histogram`; overflow percentiles are a floor. With many
requests spread through a bucket the result approaches Prometheus' interpolated percentile.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshlens.signals.histogram import GAMMA, MAX_DURATION_NS, MIN_NS, LatencyHistogram, bucket_of


def _duration(value: float) -> float:
    """`value` within [0, MAX_DURATION_NS]; NaN as 0."""
    return min(max(value, 0.0), float(MAX_DURATION_NS)) if value == value else 0.0


def _upper_ns(key: int) -> float:
    """Upper end of log bucket `key` (key 0 reaches down to 0)."""
    return MIN_NS * GAMMA**key


def spread_bucket(histogram: LatencyHistogram, lower_ns: float, upper_ns: float, n: int) -> None:
    """Add `n` durations spread evenly over `(lower_ns, upper_ns]` to `histogram`."""
    if n <= 0:
        return
    lower, upper_ns = _duration(lower_ns), _duration(upper_ns)
    if upper_ns <= lower:  # a degenerate or overflow range: all on its one point
        histogram.add_key(bucket_of(int(max(upper_ns, lower))), n)
        return
    width = upper_ns - lower
    placed = 0
    for key in range(bucket_of(int(lower)), bucket_of(int(upper_ns)) + 1):
        covered = min(_upper_ns(key), upper_ns) - lower
        cumulative = n if covered >= width else int(n * covered / width + 0.5)
        if cumulative > placed:
            histogram.add_key(key, cumulative - placed)
            placed = cumulative
    if placed < n:  # float rounding at the last key
        histogram.add_key(bucket_of(int(upper_ns)), n - placed)


def from_explicit_buckets(
    bounds_ns: Sequence[float], counts: Sequence[int], histogram: LatencyHistogram | None = None
) -> LatencyHistogram:
    """The counts of explicit buckets (`len(counts) == len(bounds_ns) + 1`), spread.

    Added to `histogram` when given (and returned); a new histogram otherwise.
    """
    if counts and len(counts) != len(bounds_ns) + 1:
        raise ValueError(f"{len(counts)} bucket counts for {len(bounds_ns)} bounds")
    target = histogram if histogram is not None else LatencyHistogram()
    for index, n in enumerate(counts):
        if n <= 0:
            continue
        lower = bounds_ns[index - 1] if index else 0.0
        upper = bounds_ns[index] if index < len(bounds_ns) else lower
        spread_bucket(target, lower, upper, n)
    return target
