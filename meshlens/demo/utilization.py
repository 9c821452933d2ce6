"""CPU utilization of the simulated workloads: the gauge meshlens turns into saturation.

Each workload reports one utilization gauge (a value in [0, 1], named by the first CPU gauge
of `MESHLENS_SATURATION_METRICS`): its service's typical figure plus the version's extra, a
slow wave and a little noise. Values depend only on the workload, the time and the seed, so
the live gauges (read by the SDK's metric readers on their own threads) and the backfilled
points agree and repeat with a seed.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence

from meshlens.demo.mesh import Service, Version

NANOS_PER_SECOND = 1_000_000_000
WAVE, WAVE_PERIOD_SECONDS = 0.04, 1200
NOISE, NOISE_STEP_SECONDS = 0.02, 15
LOWEST, HIGHEST = 0.01, 0.99
FALLBACK_GAUGE = "k8s.pod.cpu.limit.utilization"


def gauge_name(saturation_metrics: Sequence[str]) -> str | None:
    """The gauge to report: the first CPU utilization meshlens reads, else its first gauge.

    None when meshlens reads no utilization gauge at all (saturation is then always null).
    """
    for name in saturation_metrics:
        if "cpu" in name:
            return name
    return saturation_metrics[0] if saturation_metrics else None


class UtilizationModel:
    """Utilization of a workload at a time."""

    def __init__(self, seed: int | None) -> None:
        self._seed = random.SystemRandom().randrange(2**32) if seed is None else seed

    def value(self, service: Service, version: Version, at_ns: int) -> float:
        """Utilization of `service` at `version` at unix time `at_ns`, in [0.01, 0.99]."""
        seconds = at_ns / NANOS_PER_SECOND
        key = f"{self._seed}/{service.name}/{version.name}"
        phase = zlib.crc32(key.encode()) / 2**32
        wave = WAVE * math.sin(2 * math.pi * (seconds / WAVE_PERIOD_SECONDS + phase))
        step = int(seconds // NOISE_STEP_SECONDS)
        noise = random.Random(f"{key}/{step}").gauss(0.0, NOISE)
        level = service.utilization + version.extra_utilization + wave + noise
        return min(HIGHEST, max(LOWEST, level))
