"""How healthy a number is, the same on every page and on the map: `ok`, `warn`, `bad`, or
`idle` when nothing is known."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, Literal

Health = Literal["ok", "warn", "bad", "idle"]
SEVERITY: Final[Mapping[str, int]] = {"bad": 3, "warn": 2, "ok": 1, "idle": 0}

WARN_ERROR_RATE: Final = 0.01
"""Error ratios from 1 % are `warn` (amber)."""
BAD_ERROR_RATE: Final = 0.05
"""Error ratios from 5 % are `bad` (red)."""
WARN_SATURATION: Final = 0.75
BAD_SATURATION: Final = 0.9
FULL_COVERAGE: Final = 0.999
WARN_COVERAGE: Final = 0.9
"""mTLS coverage below this is `bad`; below full, `warn`."""

HEALTH_COLOURS: Final[Mapping[Health, str]] = {
    "ok": "#16a34a",
    "warn": "#f59e0b",
    "bad": "#dc2626",
    "idle": "#9ca3af",
}
"""Colour of each health (the dashboards' CSS `--ok`, amber, `--bad`, `--idle`)."""


def health(error_rate: float | None) -> Health:
    """`ok` below 1 % errors, `warn` below 5 %, `bad` from 5 %, `idle` without requests."""
    if error_rate is None or math.isnan(error_rate):
        return "idle"
    if error_rate < WARN_ERROR_RATE:
        return "ok"
    return "warn" if error_rate < BAD_ERROR_RATE else "bad"


def saturation_health(value: float | None) -> Health:
    """`warn` from 75 % utilization, `bad` from 90 %."""
    if value is None:
        return "idle"
    if value >= BAD_SATURATION:
        return "bad"
    return "warn" if value >= WARN_SATURATION else "ok"


def coverage_health(coverage: float | None) -> Health:
    """`ok` when (nearly) every known request was mutual, `bad` below 90 %."""
    if coverage is None:
        return "idle"
    if coverage >= FULL_COVERAGE:
        return "ok"
    return "warn" if coverage >= WARN_COVERAGE else "bad"
