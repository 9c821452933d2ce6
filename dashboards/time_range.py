"""The time range a page shows, read from and written back to its URL (`window`, `end`,
`refresh`), so that a view can be shared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from meshlens.read.windows import Series, Window, WindowError, rfc3339, series_for, window_for

PRESETS = (("15m", "15 minutes"), ("1h", "1 hour"), ("6h", "6 hours"), ("24h", "24 hours"))
REFRESH = (("off", "off"), ("10s", "10 s"), ("30s", "30 s"), ("1m", "1 min"))
REFRESH_SECONDS = {"off": 0, "10s": 10, "30s": 30, "1m": 60}
DEFAULT_WINDOW = "15m"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """What the URL asked for, and the window and series it gives."""

    window_text: str
    end_text: str
    refresh: str
    window: Window
    series: Series

    @property
    def custom(self) -> bool:
        """Not one of the presets ending now."""
        return bool(self.end_text) or self.window_text not in dict(PRESETS)

    @property
    def refresh_seconds(self) -> int:
        return REFRESH_SECONDS[self.refresh]

    @property
    def label(self) -> str:
        """`the last 15 minutes`, or `1h until 2026-11-26T12:00:00Z`."""
        if not self.end_text and self.window_text in dict(PRESETS):
            return f"the last {dict(PRESETS)[self.window_text]}"
        if not self.end_text:
            return f"the last {self.window_text}"
        return f"{self.window_text} until {rfc3339(self.window.end_unix)}"

    def query(self, **extra: str) -> str:
        """The query string that keeps this range on a link (with `extra` parameters)."""
        params = {"window": self.window_text}
        if self.end_text:
            params["end"] = self.end_text
        if self.refresh != "off":
            params["refresh"] = self.refresh
        params.update({key: value for key, value in extra.items() if value})
        return "?" + urlencode(params)


def time_range(params: Mapping[str, str], now: float) -> TimeRange:
    """The range of a page's query parameters; WindowError says what is wrong with them."""
    window_text = (params.get("window") or DEFAULT_WINDOW).strip()
    if window_text == "custom":  # the picker's form, sent without its script
        window_text = (params.get("custom_window") or DEFAULT_WINDOW).strip()
    end_text = (params.get("end") or "").strip()
    refresh = params.get("refresh") or "off"
    if refresh not in REFRESH_SECONDS:
        raise WindowError(f"refresh must be one of {', '.join(REFRESH_SECONDS)}, got {refresh!r}")
    window = window_for(window_text, end_text or None, now)
    return TimeRange(window_text, end_text, refresh, window, series_for(window, None))
