"""Mergeable latency histograms with bounded relative error (DDSketch-style log buckets).

A duration ``v`` (nanoseconds) above ``MIN_NS`` goes to the bucket ``k`` with
``MIN_NS * GAMMA**(k-1) < v <= MIN_NS * GAMMA**k``; every duration at or below ``MIN_NS``
(including zero and negative clock-skew durations) goes to key 0. A bucket's representative
value ``2 * MIN_NS * GAMMA**k / (GAMMA + 1)`` is within ``ALPHA`` relative error of every value
in the bucket; for key 0 that holds for values in ``[MIN_NS / GAMMA, MIN_NS]``, and below that
the error is absolute and under ``MIN_NS`` (1 µs).

Histograms are sparse ``{key: count}`` maps: merging (minute into hour, service into service)
is adding counts, and it is exact, so a quantile of merged histograms equals the quantile of a
histogram built from all the durations at once. Keys fit PostgreSQL ``smallint``, counts
``bigint``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from itertools import accumulate

ALPHA = 0.02
"""Relative accuracy of every quantile of durations >= ``MIN_NS``."""
GAMMA = (1 + ALPHA) / (1 - ALPHA)
"""Ratio between consecutive bucket bounds (51/49)."""
MIN_NS = 1_000
"""Durations at or below this (1 µs) share key 0."""
MAX_DURATION_NS = 2**63 - 1
"""Largest duration with a bucket of its own (PostgreSQL bigint); larger ones clamp."""
SMALLINT_MAX = 32_767
QUANTILES = (0.5, 0.95, 0.99)
"""The percentiles the API gives (`latency_ms`: p50, p95, p99)."""

_GAMMA_EXACT = (1 + Fraction(str(ALPHA))) / (1 - Fraction(str(ALPHA)))
_LOG_GAMMA = math.log(GAMMA)
_LOG_MIN = math.log(MIN_NS)
_EDGE_SLACK = 1e-9  # far above the float error of the log (~1e-13 in key units)


def _below_upper_bound(duration_ns: int, key: int) -> bool:
    """Exactly: is ``duration_ns <= MIN_NS * GAMMA**key``? (Integer arithmetic, no rounding.)"""
    return duration_ns <= MIN_NS * _GAMMA_EXACT**key


def _unclamped_key(duration_ns: int) -> int:
    """The key of ``duration_ns > MIN_NS``, without the upper clamp.

    The float logarithm decides, except within a hair of a bucket bound, where the exact
    rational comparison does; so the mapping is monotone and every bound is honoured.
    """
    position = (math.log(duration_ns) - _LOG_MIN) / _LOG_GAMMA
    nearest = round(position)
    if abs(position - nearest) > _EDGE_SLACK:
        return math.ceil(position)
    return nearest if _below_upper_bound(duration_ns, nearest) else nearest + 1


MAX_KEY = _unclamped_key(MAX_DURATION_NS)
"""Largest key (919); well inside PostgreSQL smallint."""


def bucket_of(duration_ns: int) -> int:
    """The bucket key of a duration in nanoseconds, in ``[0, MAX_KEY]``."""
    if duration_ns <= MIN_NS:
        return 0
    return min(_unclamped_key(duration_ns), MAX_KEY)


def bucket_value_ns(key: int) -> float:
    """The representative duration (ns) of bucket ``key``: within ``ALPHA`` of its values.

    For key 0 this is about 980 ns: within ``ALPHA`` of durations in ``[MIN_NS/GAMMA, MIN_NS]``
    and less than ``MIN_NS`` (1 µs) away from any shorter duration.
    """
    if not 0 <= key <= MAX_KEY:
        raise ValueError(f"bucket key {key} is outside [0, {MAX_KEY}]")
    return 2 * MIN_NS * GAMMA**key / (GAMMA + 1)


def nearest_rank(q: float, n: int) -> int:
    """The 1-based nearest rank ``ceil(q * n)`` clamped to ``[1, n]``.

    ``q`` is taken as the decimal it prints as, so ``nearest_rank(0.07, 100)`` is 7, not the 8
    that ``ceil(0.07 * 100)`` gives in binary floating point.
    """
    numerator, denominator = _decimal(q)
    if n < 1:
        raise ValueError(f"nearest rank needs at least one value, got n={n}")
    return min(max(-(-n * numerator // denominator), 1), n)


@lru_cache(maxsize=256)
def _decimal(q: float) -> tuple[int, int]:
    """``q`` as the decimal it prints as, a fraction in lowest terms (asked once per ``q``)."""
    if not 0 <= q <= 1:  # also rejects NaN
        raise ValueError(f"quantile must be within [0, 1], got {q!r}")
    exact = Fraction(str(q))
    return exact.numerator, exact.denominator


@lru_cache(maxsize=256)
def _quantile_name(q: float) -> str:
    return f"p{q * 100:g}"


def quantile_ns(keys: Sequence[int], running: Sequence[int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (ns) of counts given by ascending bucket ``keys`` and
    their ``running`` sum (``running[i]``: durations in ``keys[:i + 1]``); None when empty.

    Every quantile of meshlens comes from here: ``LatencyHistogram`` passes its keys, a dense
    sum (``meshlens.read.results.Latency``) passes ``range(MAX_KEY + 1)``."""
    total = running[-1] if running else 0
    if total <= 0:
        _decimal(q)  # an empty histogram still refuses a q outside [0, 1]
        return None
    return bucket_value_ns(keys[bisect_left(running, nearest_rank(q, total))])


def quantiles_ms(
    keys: Sequence[int], running: Sequence[int], qs: Sequence[float] = QUANTILES
) -> dict[str, float | None]:
    """``{"p50": ms, "p95": ms, "p99": ms}`` (for the default ``qs``) of ``quantile_ns``,
    rounded to 3 decimals: the API's latency_ms."""
    result: dict[str, float | None] = {}
    for q in qs:
        value = quantile_ns(keys, running, q)
        result[_quantile_name(q)] = None if value is None else round(value / 1e6, 3)
    return result


class LatencyHistogram:
    """A sparse, mergeable histogram of durations: ``counts`` maps bucket key to count > 0."""

    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self.counts: dict[int, int] = {}
        for key, count in (counts or {}).items():
            self._add_to_key(key, count)

    def _add_to_key(self, key: int, count: int) -> None:
        if not 0 <= key <= MAX_KEY:
            raise ValueError(f"bucket key {key} is outside [0, {MAX_KEY}]")
        if count < 0:
            raise ValueError(f"count for bucket {key} is negative: {count}")
        if count:
            self.counts[key] = self.counts.get(key, 0) + count

    def add(self, duration_ns: int, count: int = 1) -> None:
        """Count ``duration_ns`` (nanoseconds) ``count`` times."""
        self._add_to_key(bucket_of(duration_ns), count)

    def add_key(self, key: int, count: int = 1) -> None:
        """Count ``count`` durations whose bucket (``bucket_of``) is already known."""
        self._add_to_key(key, count)

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add ``other``'s counts into this histogram; returns ``self``."""
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        return self

    @property
    def total(self) -> int:
        """Number of durations counted."""
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile in nanoseconds; None when empty.

        Within ``ALPHA`` relative error of the exact nearest-rank value of the durations counted
        when that value is at least ``MIN_NS``, and within ``MIN_NS`` absolute error below it.
        """
        return quantile_ns(*self._running(), q)

    def quantiles_ms(self, qs: Sequence[float] = QUANTILES) -> dict[str, float | None]:
        """``{"p50": ms, "p95": ms, "p99": ms}`` rounded to 3 decimals (the API's latency_ms)."""
        return quantiles_ms(*self._running(), qs)

    def _running(self) -> tuple[list[int], list[int]]:
        """Sorted keys and the running sum of their counts."""
        keys = sorted(self.counts)
        return keys, list(accumulate(self.counts[key] for key in keys))

    def to_arrays(self) -> tuple[list[int], list[int]]:
        """Sorted keys and their counts, for ``smallint[]`` and ``bigint[]`` columns."""
        keys = sorted(self.counts)
        return keys, [self.counts[key] for key in keys]

    @classmethod
    def from_arrays(cls, keys: Sequence[int], counts: Sequence[int]) -> LatencyHistogram:
        """The histogram stored as ``to_arrays`` gave it; ValueError on inconsistent arrays."""
        if len(keys) != len(counts):
            raise ValueError(
                f"histogram arrays differ in length: {len(keys)} keys, {len(counts)} counts"
            )
        repeated = sorted(key for key, seen in Counter(keys).items() if seen > 1)
        if repeated:
            raise ValueError(f"histogram keys repeat: {repeated}")
        return cls(dict(zip(keys, counts, strict=True)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.counts == other.counts

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"LatencyHistogram(total={self.total}, buckets={len(self.counts)})"
