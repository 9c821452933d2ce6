"""Query windows: `window`, `end` and `step` parameters, and which rollup rows cover them.

Pure functions: the caller passes `now` (unix seconds); nothing here reads the clock.

Rules (the API documents them):
- A window is whole minutes, `[start, end)`. `end` (default now) is rounded *up* to a minute
  boundary, so the minute holding `end` is included: with `end` = now that is the current,
  partial minute; an `end` exactly on a boundary stays put. An `end` after now counts as now.
- `window` and `step` are durations such as `90s`, `15m`, `1h30m`, `7d` (units s, m, h, d, w),
  at least one minute, rounded up to whole minutes. A window is at most the rollup retention.
- Rates divide by the *covered* seconds: the window's length, less the part of the current
  minute still to come (so requests/s does not dip each time a minute starts).
- Series points are aligned to multiples of `step` since the epoch (a `5m` step gives points at
  :00, :05, ...), clipped to the window: the first and last points may be shorter than `step`.
- A span (a window, or one series point) is covered with the coarsest rows that fit inside it,
  never two resolutions for the same time: every whole hour from hour rows, the whole
  ten-minute blocks of what is left at its edges from 10-minute rows, the remaining minutes
  from minute rows. A 24 h window reads 23 hour rows per key plus 5 ten-minute rows and 10
  minute rows (6 and none when its end is on a ten-minute boundary; 24 hour rows and nothing
  else when on an hour); any window reads at most 10 ten-minute and 18 minute rows per key.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from meshlens.durations import units_seconds
from meshlens.timeunits import DAY, MINUTE, RESOLUTIONS

DEFAULT_WINDOW = "15m"
ROLLUP_RETENTION_DAYS = 90
MAX_WINDOW_SECONDS = ROLLUP_RETENTION_DAYS * DAY
MAX_POINTS = 1000
DEFAULT_STEPS = ("1m", "5m", "1h", "6h", "1d")
DEFAULT_MAX_POINTS = 120
"""Without `step`, series use the finest of `DEFAULT_STEPS` giving at most this many points.
Past 10 hours that is a step of whole hours, so the points of long windows read hour rows."""

_UNIX_SECONDS = re.compile(r"\d{1,12}(?:\.\d{1,9})?", re.ASCII)
_MAX_END = 253402300799  # 9999-12-31T23:59:59Z


class WindowError(ValueError):
    """A `window`, `end` or `step` the API refuses (400); the message says what is wrong."""


def parse_duration(text: str, name: str) -> int:
    """Seconds in `text` (`90s`, `15m`, `1h30m`, `7d`), at least 60, rounded up to minutes.

    The spelling is `meshlens.durations`'; `0` is not a window, and the length limit of 40
    counts the spaces around (the window's own limit is `MAX_WINDOW_SECONDS`, not ten years)."""
    seconds = units_seconds(text.strip()) if len(text) <= 40 else None
    if seconds is None:
        raise WindowError(
            f"{name} must be a duration such as 15m, 1h, 24h or 7d (units w, d, h, m, s), "
            f"got {text[:40]!r}"
        )
    if seconds < MINUTE:
        raise WindowError(f"{name} must be at least 1m, got {text!r}")
    return math.ceil(seconds / MINUTE) * MINUTE


def parse_end(text: str | None, now: float) -> float:
    """`end` as unix seconds: RFC 3339 with an offset, or unix seconds; None is now.

    An end after `now` is `now`.
    """
    if text is None or text.strip() == "":
        return now
    text = text.strip()
    value = float(text) if _UNIX_SECONDS.fullmatch(text) else _rfc3339(text)
    if value > _MAX_END:
        raise WindowError(f"end is beyond the year 9999: {text!r}")
    return min(value, now)


def _rfc3339(text: str) -> float:
    message = (
        "end must be RFC 3339 with an offset (2026-11-26T12:00:00Z) or unix seconds, "
        f"got {text[:40]!r}"
    )
    if len(text) > 40 or not ("T" in text.upper() or " " in text):
        raise WindowError(message)
    try:
        moment = dt.datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise WindowError(message) from exc
    if moment.tzinfo is None:
        raise WindowError(f"end needs a UTC offset (Z or +01:00), got {text[:40]!r}")
    value = moment.timestamp()
    if value < 0:
        raise WindowError(f"end is before 1970: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Window:
    """Whole minutes `[start_unix, end_unix)`, and `now` to know how much of them has passed."""

    start_unix: int
    end_unix: int
    now: float

    @property
    def seconds(self) -> float:
        """Seconds of the window that have passed: the divisor of requests/s."""
        return self.covered(self.start_unix, self.end_unix)

    def covered(self, lo: int, hi: int) -> float:
        """Seconds of `[lo, hi)` that have passed by `now`."""
        return float(max(0.0, min(hi, self.now) - lo))


def window_for(window: str | None, end: str | None, now: float) -> Window:
    """The window the API answers for; WindowError on a bad `window` or `end`."""
    length = parse_duration(window or DEFAULT_WINDOW, "window")
    if length > MAX_WINDOW_SECONDS:
        raise WindowError(
            f"window must be at most {ROLLUP_RETENTION_DAYS}d (the rollup retention), "
            f"got {window!r}"
        )
    end_unix = math.ceil(parse_end(end, now) / MINUTE) * MINUTE
    return Window(start_unix=end_unix - length, end_unix=end_unix, now=now)


@dataclass(frozen=True, slots=True)
class BucketRange:
    """Rollup rows of `resolution` whose bucket starts in `[lo, hi)`."""

    resolution: int
    lo: int
    hi: int


def bucket_ranges(lo: int, hi: int, resolutions: Sequence[int] = RESOLUTIONS) -> list[BucketRange]:
    """The rows covering the whole minutes `[lo, hi)`, in time order: the whole buckets of the
    coarsest of `resolutions` inside it, and its edges covered the same way by the finer ones.
    The last (finest) resolution covers whatever is left."""
    if lo >= hi:
        return []
    resolution, finer = resolutions[0], resolutions[1:]
    if not finer:
        return [BucketRange(resolution, lo, hi)]
    first = -(-lo // resolution) * resolution
    last = hi // resolution * resolution
    if first >= last:
        return bucket_ranges(lo, hi, finer)
    return [
        *bucket_ranges(lo, first, finer),
        BucketRange(resolution, first, last),
        *bucket_ranges(last, hi, finer),
    ]


@dataclass(frozen=True, slots=True)
class Series:
    """Points of `step_seconds` aligned to multiples of the step, clipped to the window."""

    window: Window
    step_seconds: int

    @property
    def first_index(self) -> int:
        """`bucket_unix // step - first_index` is a row's point number."""
        return self.window.start_unix // self.step_seconds

    @property
    def size(self) -> int:
        """Number of points."""
        return -(-self.window.end_unix // self.step_seconds) - self.first_index

    def point(self, number: int) -> tuple[int, int]:
        """`[lo, hi)` of point `number` (0-based), clipped to the window."""
        lo = (self.first_index + number) * self.step_seconds
        return max(lo, self.window.start_unix), min(lo + self.step_seconds, self.window.end_unix)

    def ranges(self, resolutions: Sequence[int] = RESOLUTIONS) -> list[BucketRange]:
        """Rows covering every point, each row inside one point; adjacent ranges merged."""
        merged: list[BucketRange] = []
        for number in range(self.size):
            for part in bucket_ranges(*self.point(number), resolutions):
                last = merged[-1] if merged else None
                if last and last.resolution == part.resolution and last.hi == part.lo:
                    merged[-1] = BucketRange(part.resolution, last.lo, part.hi)
                else:
                    merged.append(part)
        return merged


def series_for(window: Window, step: str | None) -> Series:
    """The series of `window` at `step` (default: see DEFAULT_STEPS); WindowError if refused."""
    if step is None or step.strip() == "":
        for candidate in DEFAULT_STEPS:
            series = Series(window, parse_duration(candidate, "step"))
            if series.size <= DEFAULT_MAX_POINTS:
                return series
        return series
    series = Series(window, parse_duration(step, "step"))
    if series.size > MAX_POINTS:
        raise WindowError(
            f"step {step!r} gives {series.size} points over this window; at most {MAX_POINTS}: "
            "use a longer step"
        )
    return series


def rfc3339(unix: float) -> str:
    """`unix` seconds as RFC 3339 UTC (`2026-11-26T12:00:00Z`)."""
    moment = dt.datetime.fromtimestamp(unix, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
