"""The soak's pass mark (harness/soak/verdict.py): flat memory passes, growing memory fails."""

from __future__ import annotations

import random

import pytest

from harness.soak.options import default_warmup, parse_args
from harness.soak.verdict import Losses, MemoryVerdict, judge_memory, verdict

HOUR = 3600
WARMUP = default_warmup(HOUR)  # 360 s
NOTHING_LOST = Losses(dropped_requests=0, rejected_spans=0, missing_spans=0, web_failures=0)


def series(
    rss: float = 150.0, per_hour: float = 0.0, noise: float = 3.0, seconds: int = HOUR
) -> tuple[list[float], list[float]]:
    """Samples every 10 s of an RSS growing `per_hour` MiB an hour, with random noise."""
    rng = random.Random(7)
    times = [float(t) for t in range(0, seconds + 1, 10)]
    return times, [rss + per_hour * t / HOUR + rng.uniform(-noise, noise) for t in times]


def judged(times: list[float], values: list[float], warmup: float = WARMUP) -> MemoryVerdict:
    memory = judge_memory(times, values, warmup)
    assert memory is not None
    return memory


def test_flat_noisy_memory_passes() -> None:
    memory = judged(*series())
    assert memory.flat
    assert abs(memory.slope_mib_per_hour) < 5
    assert verdict(memory, NOTHING_LOST) == []


def test_steady_growth_of_30_mib_an_hour_fails() -> None:
    memory = judged(*series(per_hour=30))
    assert not memory.flat
    assert memory.slope_mib_per_hour == pytest.approx(30, abs=3)
    assert memory.fitted_rise_mib == pytest.approx(30 * (HOUR - WARMUP) / HOUR, abs=3)
    assert memory.median_rise_mib < memory.tolerance_mib  # the fitted line alone catches it
    assert "memory grew" in verdict(memory, NOTHING_LOST)[0]


def test_growth_under_the_tolerance_passes() -> None:
    assert judged(*series(per_hour=10)).flat


def test_a_late_jump_fails_on_the_medians() -> None:
    times, values = series()
    values = [v + (25 if t > 0.8 * HOUR else 0) for t, v in zip(times, values, strict=True)]
    memory = judged(times, values)
    assert memory.median_rise_mib == pytest.approx(25, abs=4)
    assert not memory.flat


def test_growth_during_the_warmup_is_left_out() -> None:
    times, values = series()
    values = [v + 80 * min(t, WARMUP) / WARMUP for t, v in zip(times, values, strict=True)]
    assert judged(times, values).flat
    assert not judged(times, values, warmup=0).flat


def test_falling_memory_passes() -> None:
    assert judged(*series(per_hour=-60)).flat


def test_the_tolerance_grows_with_a_large_process() -> None:
    memory = judged(*series(rss=1000.0, per_hour=60))  # 10 % of about 1,000 MiB
    assert memory.tolerance_mib == pytest.approx(0.1 * memory.early_median_mib)
    assert memory.flat
    assert not judged(*series(rss=1000.0, per_hour=130)).flat


def test_too_few_samples_fail() -> None:
    times, values = series(seconds=30)
    assert judge_memory(times, values, 15) is None  # samples at 20 and 30 s only
    assert verdict(None, NOTHING_LOST) == ["fewer than 3 samples after the warm-up"]


@pytest.mark.parametrize(
    ("losses", "reason"),
    [
        (Losses(1, 0, 0, 0), "1 requests dropped without an answer"),
        (Losses(0, 5, 0, 0), "5 spans rejected in partial successes"),
        (Losses(0, 0, 1200, 0), "1,200 acknowledged spans missing from the database"),
        (Losses(0, 0, 0, 2), "2 web-port reads failed"),
    ],
)
def test_anything_lost_fails_with_flat_memory(losses: Losses, reason: str) -> None:
    assert verdict(judged(*series()), losses) == [reason]


def test_default_warmup() -> None:
    assert default_warmup(HOUR) == 360  # 10 % of an hour: longer than the pairing window
    assert default_warmup(1200) == 300  # the pairing window
    assert default_warmup(300) == 75  # a quarter of a short run
    assert default_warmup(20) == 5


def test_a_run_too_short_for_a_verdict_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--seconds", "20", "--sample-seconds", "10"])
    assert "only 1 samples after the 5 s warm-up" in capsys.readouterr().err
    assert parse_args(["--seconds", "20", "--sample-seconds", "1"]).warmup == 5
