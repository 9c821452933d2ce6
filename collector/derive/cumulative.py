"""Cumulative counters and histograms as deltas: one series' next point against its cursor.

A cumulative point holds everything counted since its `start_unix_nano`; what happened since
the series' previous point is the difference. The rules, per series, points taken in time order:

1. A point at or before the cursor's time is ignored (`OUT_OF_ORDER`): it arrived after a newer
   one, and its interval is already counted. Resends never get here (the writer stores a point
   once per `(series, time)` and only stored points reach the deriver).
2. Reset (`RESET`): the value dropped (a histogram's count or any bucket), or the start time
   changed to a known one (`0 < start < time`) at or after the cursor's time: the series
   restarted since its previous point, so all of the new value is new. A start time that
   changes without either (an unknown start, `0` or equal to the time, as the Prometheus
   receiver writes after a restart of its own) is not a reset: the counter went on.
3. Otherwise the delta is the difference (`DELTA`).
4. A histogram whose bucket bounds changed is re-based (`REBASED`): nothing is counted for it,
   since bucket counts of different bounds cannot be subtracted.
5. A series' first point (no cursor) counts its whole value (`NEW_SERIES`) when
   - the series is new since an earlier export we saw from the same resource (`appeared`:
     every export carries every live series, so it did not exist then), or
   - its start time is set and within the point's window: `0 < start < time` and
     `time - start <= NEW_SERIES_LOOKBACK_NS` (a new pod or process: all of it is new).
   Else it is a baseline (`BASELINE`): its counts accumulated before meshlens was watching,
   and counting them would put days of traffic into one minute. Its next point counts the
   difference.

Deltas are placed at the point's time. Pure: no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meshlens.timeunits import NANOS_PER_SECOND, TEN_MINUTES

NEW_SERIES_LOOKBACK_NS = TEN_MINUTES * NANOS_PER_SECOND
"""How old a new series' start may be for its first value to count (10 minutes)."""


class Outcome(StrEnum):
    """What one point did to its series' counts (the label of a meshlens metric)."""

    DELTA = "delta"
    RESET = "reset"
    NEW_SERIES = "new_series"
    BASELINE = "baseline"
    REBASED = "rebased"
    OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True, slots=True)
class Reading:
    """One cumulative point, or a series' cursor (its newest point).

    `value` is a counter's value or a histogram's count; `buckets` and `bounds` are a
    histogram's bucket counts and explicit bounds (None for counters).
    """

    start_unix_nano: int
    time_unix_nano: int
    value: float
    buckets: tuple[int, ...] | None = None
    bounds: tuple[float, ...] | None = None

    @property
    def known_start(self) -> bool:
        """The start time is set and before the point's time."""
        return 0 < self.start_unix_nano < self.time_unix_nano


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one point: its delta (value, histogram buckets) and the new cursor."""

    outcome: Outcome
    cursor: Reading
    value: float = 0.0
    buckets: tuple[int, ...] | None = None

    @property
    def counted(self) -> bool:
        """Whether the point adds anything."""
        return self.value > 0 or any(self.buckets or ())


def advance(cursor: Reading | None, point: Reading, *, appeared: bool = False) -> Step:
    """The delta `point` adds to its series, whose newest point so far is `cursor`.

    `appeared`: the series' resource exported before `point` without this series.
    """
    if cursor is None:
        return _first(point, appeared)
    if point.time_unix_nano <= cursor.time_unix_nano:
        return Step(Outcome.OUT_OF_ORDER, cursor)
    if point.bounds != cursor.bounds:
        return Step(Outcome.REBASED, point)
    if _dropped(cursor, point) or _restarted(cursor, point):
        return _whole(Outcome.RESET, point)
    buckets = None
    if point.buckets is not None and cursor.buckets is not None:
        buckets = tuple(new - old for new, old in zip(point.buckets, cursor.buckets, strict=True))
    return Step(Outcome.DELTA, point, point.value - cursor.value, buckets)


def _first(point: Reading, appeared: bool) -> Step:
    recent = point.time_unix_nano - point.start_unix_nano <= NEW_SERIES_LOOKBACK_NS
    if appeared or (point.known_start and recent):
        return _whole(Outcome.NEW_SERIES, point)
    return Step(Outcome.BASELINE, point)


def _whole(outcome: Outcome, point: Reading) -> Step:
    return Step(outcome, point, point.value, point.buckets)


def _dropped(cursor: Reading, point: Reading) -> bool:
    if point.value < cursor.value:
        return True
    if point.buckets is None or cursor.buckets is None:
        return False
    return any(new < old for new, old in zip(point.buckets, cursor.buckets, strict=True))


def _restarted(cursor: Reading, point: Reading) -> bool:
    start = point.start_unix_nano
    return point.known_start and start != cursor.start_unix_nano and start >= cursor.time_unix_nano
