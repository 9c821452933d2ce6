"""Window, end and step parsing; minute alignment; which rollup rows cover a window or a series."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from meshlens.read.windows import (
    BucketRange,
    Series,
    Window,
    WindowError,
    bucket_ranges,
    parse_duration,
    parse_end,
    rfc3339,
    series_for,
    window_for,
)
from meshlens.timeunits import HOUR, MINUTE, RESOLUTIONS, TEN_MINUTES

NOON = int(dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC).timestamp())


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60),
        ("5m", 300),
        ("15m", 900),
        ("1h", 3600),
        ("6h", 21600),
        ("24h", 86400),
        ("7d", 604800),
        ("2w", 1209600),
        ("60s", 60),
        ("90s", 120),  # rounded up to whole minutes
        ("61s", 120),
        ("1h30m", 5400),
        ("1d12h", 129600),
        (" 15m ", 900),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "window") == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "window must be a duration"),
        ("15", "window must be a duration"),
        ("15x", "window must be a duration"),
        ("m", "window must be a duration"),
        ("-5m", "window must be a duration"),
        ("1.5h", "window must be a duration"),
        ("30m1h", "window must be a duration"),  # units largest first
        ("1h 30m", "window must be a duration"),
        ("15M", "window must be a duration"),
        ("9" * 60 + "m", "window must be a duration"),
        ("0m", "at least 1m"),
        ("59s", "at least 1m"),
        ("15m\x00", "window must be a duration"),
        ("\uff11\uff15m", "window must be a duration"),  # full-width digits
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        parse_duration(text, "window")


def test_window_limits() -> None:
    assert window_for("90d", None, NOON).start_unix == NOON - 90 * 86400
    with pytest.raises(WindowError, match="at most 90d"):
        window_for("91d", None, NOON)
    with pytest.raises(WindowError, match="at most 90d"):
        window_for("999999999w", None, NOON)


# --- end ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unix"),
    [
        (None, NOON + 0.5),
        ("", NOON + 0.5),
        ("2026-11-26T11:00:00Z", NOON - 3600),
        ("2026-11-26t11:00:00z", NOON - 3600),
        ("2026-11-26T12:30:00+01:00", NOON - 1800),
        ("2026-11-26T11:00:00.250Z", NOON - 3600 + 0.25),
        ("2026-11-26 11:00:00Z", NOON - 3600),
        (str(NOON - 60), NOON - 60),
        (f"{NOON - 60}.5", NOON - 59.5),
        ("2026-11-27T00:00:00Z", NOON + 0.5),  # the future is now
        (str(NOON + 86400), NOON + 0.5),
    ],
)
def test_end(text: str | None, unix: float) -> None:
    assert parse_end(text, NOON + 0.5) == unix


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "end must be RFC 3339"),
        ("2026-11-26", "end must be RFC 3339"),
        ("2026-11-26T11:00:00", "needs a UTC offset"),
        ("2026-13-26T11:00:00Z", "end must be RFC 3339"),
        ("1e9", "end must be RFC 3339"),
        ("-60", "end must be RFC 3339"),
        ("1969-12-31T23:00:00Z", "before 1970"),
        ("999999999999", "beyond the year 9999"),
        ("nan", "end must be RFC 3339"),
        ("x" * 1000, "end must be RFC 3339"),
    ],
)
def test_bad_end(text: str, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        parse_end(text, NOON)


# --- alignment ---------------------------------------------------------------------------------


def test_end_is_rounded_up_to_the_minute_holding_it() -> None:
    window = window_for("15m", str(NOON - 30), NOON + 3600)
    assert (window.start_unix, window.end_unix, window.seconds) == (NOON - 900, NOON, 900.0)


def test_an_end_on_a_minute_boundary_stays() -> None:
    window = window_for("15m", str(NOON), NOON + 3600)
    assert (window.start_unix, window.end_unix, window.seconds) == (NOON - 900, NOON, 900.0)


def test_now_includes_the_current_partial_minute() -> None:
    window = window_for(None, None, NOON + 20.5)  # default 15m
    assert (window.start_unix, window.end_unix) == (NOON - 840, NOON + 60)
    assert window.seconds == 860.5  # what has passed: the divisor of requests/s


def test_now_on_a_minute_boundary() -> None:
    window = window_for("1m", None, NOON)
    assert (window.start_unix, window.end_unix, window.seconds) == (NOON - 60, NOON, 60.0)


def test_rfc3339() -> None:
    assert rfc3339(NOON) == "2026-11-26T12:00:00Z"


# --- rows read ---------------------------------------------------------------------------------


def test_within_ten_minutes_only_minutes() -> None:
    assert bucket_ranges(NOON - 540, NOON) == [BucketRange(MINUTE, NOON - 540, NOON)]
    assert bucket_ranges(NOON - 300, NOON + 240) == [BucketRange(MINUTE, NOON - 300, NOON + 240)]
    assert bucket_ranges(NOON, NOON) == []


def test_within_one_hour_ten_minute_blocks_and_minutes() -> None:
    assert bucket_ranges(NOON - 900, NOON) == [
        BucketRange(MINUTE, NOON - 900, NOON - 600),
        BucketRange(TEN_MINUTES, NOON - 600, NOON),
    ]
    assert bucket_ranges(NOON - 600, NOON) == [BucketRange(TEN_MINUTES, NOON - 600, NOON)]
    assert bucket_ranges(NOON + 60, NOON + 1500) == [
        BucketRange(MINUTE, NOON + 60, NOON + 600),
        BucketRange(TEN_MINUTES, NOON + 600, NOON + 1200),
        BucketRange(MINUTE, NOON + 1200, NOON + 1500),
    ]


def test_whole_hours_then_ten_minute_blocks_then_minutes() -> None:
    assert bucket_ranges(NOON - 3 * HOUR - 1500, NOON + 1260) == [
        BucketRange(MINUTE, NOON - 3 * HOUR - 1500, NOON - 3 * HOUR - 1200),
        BucketRange(TEN_MINUTES, NOON - 3 * HOUR - 1200, NOON - 3 * HOUR),
        BucketRange(HOUR, NOON - 3 * HOUR, NOON),
        BucketRange(TEN_MINUTES, NOON, NOON + 1200),
        BucketRange(MINUTE, NOON + 1200, NOON + 1260),
    ]
    assert bucket_ranges(NOON - 3 * HOUR - 300, NOON + 120) == [
        BucketRange(MINUTE, NOON - 3 * HOUR - 300, NOON - 3 * HOUR),
        BucketRange(HOUR, NOON - 3 * HOUR, NOON),
        BucketRange(MINUTE, NOON, NOON + 120),
    ]
    assert bucket_ranges(NOON - HOUR, NOON) == [BucketRange(HOUR, NOON - HOUR, NOON)]


def test_finer_resolutions_only_when_asked() -> None:
    lo, hi = NOON - 3 * HOUR - 1500, NOON + 1260
    assert bucket_ranges(lo, hi, (TEN_MINUTES, MINUTE)) == [
        BucketRange(MINUTE, lo, NOON - 3 * HOUR - 1200),
        BucketRange(TEN_MINUTES, NOON - 3 * HOUR - 1200, NOON + 1200),
        BucketRange(MINUTE, NOON + 1200, hi),
    ]
    assert bucket_ranges(lo, hi, (MINUTE,)) == [BucketRange(MINUTE, lo, hi)]


def _rows(ranges: list[BucketRange]) -> dict[int, list[int]]:
    """Bucket starts read per resolution."""
    found: dict[int, list[int]] = {resolution: [] for resolution in RESOLUTIONS}
    for r in ranges:
        assert r.lo % r.resolution == 0, r
        assert r.hi % r.resolution == 0, r
        found[r.resolution] += range(r.lo, r.hi, r.resolution)
    return found


def _covered_minutes(ranges: list[BucketRange]) -> list[int]:
    return sorted(
        minute
        for resolution, buckets in _rows(ranges).items()
        for bucket in buckets
        for minute in range(bucket, bucket + resolution, MINUTE)
    )


def test_any_window_covers_each_minute_once_with_the_coarsest_rows() -> None:
    for lo in range(NOON - HOUR, NOON + HOUR, MINUTE * 7):
        for length in (MINUTE, 9 * MINUTE, 10 * MINUTE, 59 * MINUTE, HOUR, 3 * HOUR + 11 * MINUTE):
            ranges = bucket_ranges(lo, lo + length)
            assert _covered_minutes(ranges) == list(range(lo, lo + length, MINUTE))
            rows = _rows(ranges)
            assert len(rows[MINUTE]) <= 18
            assert len(rows[TEN_MINUTES]) <= 10
            for resolution, coarser in ((MINUTE, TEN_MINUTES), (TEN_MINUTES, HOUR), (MINUTE, HOUR)):
                for bucket in rows[resolution]:  # no whole coarser row left to finer ones
                    start = bucket // coarser * coarser
                    assert not (lo <= start and start + coarser <= lo + length), (lo, length)
            assert all(a.hi == b.lo for a, b in itertools.pairwise(ranges))  # in time order


def test_a_day_reads_23_hour_rows_5_ten_minute_rows_and_10_minute_rows() -> None:
    for offset in range(0, HOUR, MINUTE):
        end = NOON + offset
        rows = _rows(bucket_ranges(end - 86400, end))
        counts = (len(rows[HOUR]), len(rows[TEN_MINUTES]), len(rows[MINUTE]))
        if offset == 0:
            assert counts == (24, 0, 0)
        elif offset % TEN_MINUTES == 0:
            assert counts == (23, 6, 0), offset
        else:
            assert counts == (23, 5, 10), offset  # 38 rows a key, against 83 without blocks


# --- series ------------------------------------------------------------------------------------


def test_series_points_align_to_multiples_of_the_step() -> None:
    window = window_for("1h", str(NOON + 180), NOON + 3600)  # 11:03 - 12:03
    series = series_for(window, "5m")
    assert series.size == 13
    assert series.point(0) == (NOON - 3420, NOON - 3300)  # 11:03-11:05, clipped
    assert series.point(1) == (NOON - 3300, NOON - 3000)
    assert series.point(12) == (NOON, NOON + 180)  # 12:00-12:03, clipped
    assert series.first_index == (NOON - 3420) // 300


def test_series_exactly_window_over_step_points_when_aligned() -> None:
    window = window_for("15m", str(NOON), NOON + 3600)
    assert series_for(window, "1m").size == 15
    assert series_for(window, "5m").size == 3
    assert series_for(window, "15m").size == 1
    assert series_for(window, "1h").size == 1


def test_series_ranges_cover_each_minute_once_with_coarse_rows_inside_points() -> None:
    window = window_for("6h", str(NOON - 1860), NOON + 3600)  # 05:29 - 11:29
    for step, expected in (
        ("1m", (0, 0, 360)),
        ("5m", (0, 0, 360)),
        ("15m", (0, 23, 130)),  # a whole point holds one block (:00, :20, :30 or :50) and 5 min
        ("30m", (0, 35, 10)),  # 05:29, blocks 05:30-11:10, minutes 11:20-11:28
        ("1h", (5, 5, 10)),  # 05:29, blocks 05:30-05:50, hours 06-10, blocks 11:00-11:10, ...
        ("2h", (5, 5, 10)),
        ("1d", (5, 5, 10)),
    ):
        series = series_for(window, step)
        ranges = series.ranges()
        assert _covered_minutes(ranges) == list(range(window.start_unix, window.end_unix, 60))
        rows = _rows(ranges)
        counts = (len(rows[HOUR]), len(rows[TEN_MINUTES]), len(rows[MINUTE]))
        assert counts == expected, step
        for resolution, buckets in rows.items():  # a row lies inside one point
            for bucket in buckets:
                last = bucket + resolution - 1
                assert bucket // series.step_seconds == last // series.step_seconds, step
        for previous, current in itertools.pairwise(ranges):  # merged
            assert previous.hi <= current.lo
            assert not (previous.resolution == current.resolution and previous.hi == current.lo)


def test_default_step() -> None:
    def default(length: str) -> tuple[int, int]:
        series = series_for(window_for(length, str(NOON), NOON), None)
        return series.step_seconds, series.size

    assert default("15m") == (60, 15)
    assert default("1h") == (60, 60)
    assert default("6h") == (300, 72)
    assert default("10h") == (300, 120)
    assert default("24h") == (3600, 24)
    assert default("7d") == (21600, 28)
    assert default("30d") == (21600, 120)
    assert default("90d") == (86400, 91)  # days since the epoch: noon is inside one


def test_too_many_points() -> None:
    window = window_for("7d", str(NOON), NOON)
    assert series_for(window, "15m").size == 672
    with pytest.raises(WindowError, match="gives 10080 points over this window; at most 1000"):
        series_for(window, "1m")
    with pytest.raises(WindowError, match="step must be at least 1m"):
        series_for(window, "30s")


def test_point_seconds_of_the_current_point() -> None:
    window = Window(start_unix=NOON - 900, end_unix=NOON + 60, now=NOON + 15)
    series = Series(window, 300)
    assert series.size == 4
    assert [window.covered(*series.point(n)) for n in range(series.size)] == [
        300.0,
        300.0,
        300.0,
        15.0,
    ]
