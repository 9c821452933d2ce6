"""When simulated requests arrive: a Poisson process whose rate swings slowly."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

NANOS_PER_SECOND = 1_000_000_000
RATE_SWING, RATE_PERIOD_SECONDS = 0.1, 900  # traffic rises and falls by 10% every 15 min


class Arrivals:
    """Request start times (unix ns): a Poisson process whose rate swings slowly.

    The swing follows the wall clock, so the backfilled past and the live traffic join up.
    """

    def __init__(self, rng: random.Random, rate: float, start_ns: int) -> None:
        self._rng = rng
        self._rate = rate
        self.next_ns = start_ns + self._gap(start_ns)

    def _gap(self, at_ns: int) -> int:
        phase = 2 * math.pi * (at_ns / NANOS_PER_SECOND) / RATE_PERIOD_SECONDS
        rate = self._rate * (1 + RATE_SWING * math.sin(phase))
        return max(1, int(self._rng.expovariate(rate) * NANOS_PER_SECOND))

    def until(self, end_ns: int) -> Iterator[int]:
        """The start times before `end_ns`, advancing past them."""
        while self.next_ns < end_ns:
            at = self.next_ns
            self.next_ns = at + self._gap(at)
            yield at
