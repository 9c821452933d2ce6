"""The soak's pass mark: flat memory after the warm-up, nothing dropped, nothing lost.

Memory is flat when, over the samples after the warm-up, neither the fitted line nor the
medians rise by more than the tolerance: the larger of TOLERANCE_MIB and TOLERANCE_SHARE of
the early median. The fitted rise is the least-squares slope times the measured span, so a
one-hour soak (54 measured minutes) fails a steady growth of about 22 MiB per hour and more;
a short run can only see a fast one. A fall of memory never fails.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

TOLERANCE_MIB = 20.0
TOLERANCE_SHARE = 0.10
MIN_MEASURED_SAMPLES = 3  # a line and a median need a few points
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class MemoryVerdict:
    """How the resident memory moved after the warm-up, and whether that is flat."""

    samples: int  # after the warm-up
    measured_seconds: float  # from the first to the last of them
    slope_mib_per_hour: float
    fitted_rise_mib: float  # the slope over measured_seconds
    early_median_mib: float  # the first third of the samples
    late_median_mib: float  # the last third
    tolerance_mib: float

    @property
    def median_rise_mib(self) -> float:
        return self.late_median_mib - self.early_median_mib

    @property
    def flat(self) -> bool:
        return max(self.fitted_rise_mib, self.median_rise_mib) <= self.tolerance_mib


def judge_memory(
    seconds: Sequence[float], rss_mib: Sequence[float], warmup_seconds: float
) -> MemoryVerdict | None:
    """The verdict on the samples taken at `seconds` (since the start) after the warm-up;
    None when fewer than MIN_MEASURED_SAMPLES remain."""
    kept = [(t, m) for t, m in zip(seconds, rss_mib, strict=True) if t >= warmup_seconds]
    if len(kept) < MIN_MEASURED_SAMPLES:
        return None
    times, values = [t for t, _ in kept], [m for _, m in kept]
    slope = statistics.linear_regression(times, values).slope  # MiB per second
    third = max(1, len(values) // 3)
    early = statistics.median(values[:third])
    return MemoryVerdict(
        samples=len(values),
        measured_seconds=times[-1] - times[0],
        slope_mib_per_hour=slope * HOUR,
        fitted_rise_mib=slope * (times[-1] - times[0]),
        early_median_mib=early,
        late_median_mib=statistics.median(values[-third:]),
        tolerance_mib=max(TOLERANCE_MIB, TOLERANCE_SHARE * early),
    )


@dataclass(frozen=True, slots=True)
class Losses:
    """What the load and the web reads lost; any of it fails the soak."""

    dropped_requests: int  # sent, never answered (connection error or timeout)
    rejected_spans: int  # refused one by one in a partial success
    missing_spans: int  # acknowledged, not in the `spans` table at the end
    web_failures: int  # web-port reads not answered 200


def verdict(memory: MemoryVerdict | None, losses: Losses) -> list[str]:
    """Why the soak fails; empty when it passes."""
    reasons = []
    if memory is None:
        reasons.append(f"fewer than {MIN_MEASURED_SAMPLES} samples after the warm-up")
    elif not memory.flat:
        reasons.append(
            f"memory grew: fitted {memory.fitted_rise_mib:+.1f} MiB, medians "
            f"{memory.median_rise_mib:+.1f} MiB over {memory.measured_seconds:.0f} s "
            f"(tolerance {memory.tolerance_mib:.1f} MiB)"
        )
    for count, what in (
        (losses.dropped_requests, "requests dropped without an answer"),
        (losses.rejected_spans, "spans rejected in partial successes"),
        (losses.missing_spans, "acknowledged spans missing from the database"),
        (losses.web_failures, "web-port reads failed"),
    ):
        if count:
            reasons.append(f"{count:,} {what}")
    return reasons
