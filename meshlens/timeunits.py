"""Units of time shared by every stage: one definition of each.

OTLP times are integers of nanoseconds since the Unix epoch (`*_unix_nano`); rollups are keyed by
whole Unix seconds at three resolutions.
"""

from __future__ import annotations

NANOS_PER_SECOND = 1_000_000_000
MINUTE = 60
TEN_MINUTES = 600
HOUR = 3600
DAY = 86_400
NANOS_PER_MINUTE = MINUTE * NANOS_PER_SECOND
NANOS_PER_DAY = DAY * NANOS_PER_SECOND

RESOLUTIONS = (HOUR, TEN_MINUTES, MINUTE)
"""Rollup resolutions in seconds, coarsest first: hour, 10-minute and minute rows. The deriver
folds into each; a read covers a window with the coarsest rows that fit."""
