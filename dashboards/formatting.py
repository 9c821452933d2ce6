"""How numbers read on the pages: short, with their unit, and a dash for unknown."""

from __future__ import annotations

from urllib.parse import quote

DASH = "—"
SAMPLED = "sampled, rate unknown (lower bound)"
"""Said next to a rate counted from spans sampled at a rate nobody declared (in the templates'
`sampled_marker` too)."""


def ms(value: float | None) -> str:
    """Milliseconds: 0.42 ms, 12.3 ms, 1,250 ms, 12.5 s."""
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def percent(value: float | None) -> str:
    """A ratio in [0, 1] as a percentage: 0 %, 0.05 %, 1.2 %, 12 %, 100 %."""
    if value is None:
        return DASH
    shown = value * 100
    if shown == 0 or shown >= 99.95:
        return f"{shown:.0f} %"
    if shown >= 10:
        return f"{shown:.1f} %"
    if shown >= 0.1:
        return f"{shown:.2f} %"
    return "< 0.1 %"


def rate(value: float | None) -> str:
    """Requests per second: 0/s, 0.05/s, 3.2/s, 1,234/s."""
    if value is None:
        return DASH
    if value == 0:
        return "0/s"
    if value >= 100:
        return f"{value:,.0f}/s"
    if value >= 1:
        return f"{value:.1f}/s"
    return f"{value:.2f}/s"


def count(value: int | None) -> str:
    """A whole number with thousands separators."""
    return DASH if value is None else f"{value:,}"


def sort_value(value: float | None) -> str:
    """The `data-value` a sortable table cell carries (unknown sorts lowest)."""
    return "-1" if value is None else repr(float(value))


def service_path(name: str) -> str:
    """The service page of `name` (every character percent-encoded but unreserved ones)."""
    return "/services/" + quote(name, safe="")
