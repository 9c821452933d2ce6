"""Durations of rules, receivers and query windows: `30s`, `5m`, `1h30m`, `2d`, `1w`, or `0`.

Prometheus' spelling: one or more `<integer><unit>` parts, largest unit first, units `w`, `d`,
`h`, `m`, `s`; `0` alone means no time. Durations are whole seconds (`model.Rule` keeps seconds),
so `500ms` and `1.5m` are refused rather than rounded. Query windows read the same spelling
(`read.windows.parse_duration`, through `units_seconds`): there it must be at least a minute and
is rounded up to whole minutes; here any number of seconds is kept as is.
"""

from __future__ import annotations

import re

from meshlens.timeunits import DAY, HOUR, MINUTE

UNITS = {"w": 7 * DAY, "d": DAY, "h": HOUR, "m": MINUTE, "s": 1}
MAX_SECONDS = 10 * 365 * DAY
"""Ten years: longer is a typo (and would overflow timestamps downstream)."""

_DURATION = re.compile("".join(rf"(?:(\d{{1,9}}){unit})?" for unit in UNITS), re.ASCII)
EXAMPLES = "30s, 5m, 1h30m, 2d"


class DurationError(ValueError):
    """Not a duration; the message says what is wrong and shows examples."""


def parse_duration(text: str) -> int:
    """Whole seconds in `text` (`30s`, `5m`, `1h30m`, `2d`, `1w`, `0`)."""
    stripped = text.strip()
    if stripped == "0":
        return 0
    seconds = units_seconds(stripped)
    if seconds is None:
        raise DurationError(_explain(stripped))
    if seconds > MAX_SECONDS:
        raise DurationError(f"{stripped!r} is longer than ten years")
    return seconds


def units_seconds(text: str) -> int | None:
    """Seconds in `text` spelled as `<integer><unit>` parts, largest unit first (`1h30m`); None
    when it is not (`0`, empty, spaces around, over 40 characters). No upper limit."""
    match = _DURATION.fullmatch(text) if 0 < len(text) <= 40 else None
    if match is None or not any(match.groups()):
        return None
    amounts = zip(match.groups(), UNITS.values(), strict=True)
    return sum(int(amount) * unit for amount, unit in amounts if amount)


def format_duration(seconds: int) -> str:
    """The shortest spelling `parse_duration` reads back: 90 -> `1m30s`, 0 -> `0s`."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {seconds}")
    if seconds == 0:
        return "0s"
    parts = []
    rest = seconds
    for unit, size in UNITS.items():
        if unit == "w" and rest % size:  # `1w` only when whole weeks; else days read better
            continue
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _explain(text: str) -> str:
    shown = repr(text[:40])
    if re.fullmatch(r"\d+", text):
        return f"{shown} has no unit: write {text}s (or {EXAMPLES})"
    if re.fullmatch(r"\d+(\.\d+)?ms", text) or re.fullmatch(r"\d*\.\d+[wdhms]", text):
        return f"{shown}: durations are whole seconds (for example {EXAMPLES})"
    if text.startswith("-"):
        return f"{shown}: a duration cannot be negative"
    return f"{shown} is not a duration (for example {EXAMPLES}; units w, d, h, m, s)"
