"""The range of item times meshlens accepts."""

from __future__ import annotations

from dataclasses import dataclass

from meshlens.timeunits import NANOS_PER_DAY, NANOS_PER_SECOND


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Item times meshlens accepts: not older than retention, not too far in the future.

    Older items would be deleted by retention at once, and a span from 1970 would otherwise
    create a partition of its own: both are rejected through partial success instead.
    """

    earliest_unix_nano: int
    latest_unix_nano: int

    @classmethod
    def around(cls, now_unix_nano: int, retention_days: int, future_skew_s: int) -> TimeWindow:
        """The window for `now`: [now - retention, now + skew]."""
        return cls(
            now_unix_nano - retention_days * NANOS_PER_DAY,
            now_unix_nano + future_skew_s * NANOS_PER_SECOND,
        )

    def problem(self, unix_nano: int, what: str) -> str | None:
        """Why `unix_nano` is not accepted, or None when it is."""
        if unix_nano <= 0:
            return f"{what} is missing"
        if unix_nano < self.earliest_unix_nano:
            return f"{what} is older than the retention period"
        if unix_nano > self.latest_unix_nano:
            return f"{what} is too far in the future"
        return None
