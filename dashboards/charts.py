"""Time-series charts as plotly figure dicts (plain dicts: plotly's validating classes cost
milliseconds per figure and add nothing for figures this module controls).

Trace names come from telemetry (service names): plotly draws them as HTML-ish text, so they
are escaped here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape as _escape
from typing import Any

Figure = dict[str, Any]

PALETTE = (
    "#2563eb",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#ea580c",
    "#4f46e5",
    "#0d9488",
    "#9333ea",
    "#ca8a04",
)
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


def plotly_text(text: str) -> str:
    """`text` shown as itself in plotly's HTML-ish labels and hover text.

    `html.escape` for `&`, `<` and `>`; quotes become numeric entities, since plotly decodes
    those but not `&quot;` (with `<` escaped no tag, hence no attribute, can start anyway).
    """
    return _escape(text, quote=False).replace('"', "&#34;").replace("'", "&#39;")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a chart: its name (untrusted), values (None: a gap) and looks."""

    name: str
    values: Sequence[float | None]
    colour: str | None = None
    dash: str = "solid"
    fill: bool = False


def timestamps(starts_unix: Sequence[int]) -> list[str]:
    """Point starts as ISO 8601 UTC, the x values of every chart."""
    return [
        dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for start in starts_unix
    ]


def line_chart(
    title: str,
    x: Sequence[str],
    lines: Sequence[Line],
    *,
    unit: str = "",
    percent: bool = False,
    y_max: float | None = None,
    height: int = 240,
) -> Figure:
    """A time-series chart of `lines` over `x` (ISO times); `percent` formats y as 0-100 %."""
    data = [_trace(n, line, x, unit, percent) for n, line in enumerate(lines)]
    y_axis: dict[str, Any] = {
        "rangemode": "tozero",
        "gridcolor": "#e5e7eb",
        "zeroline": False,
        "ticksuffix": "" if percent else (f" {unit}" if unit else ""),
        "tickformat": ".2~%" if percent else ",.2~f",
        "automargin": True,
        "fixedrange": True,
    }
    if y_max is not None:
        y_axis["range"] = [0, y_max]
    return {
        "data": data,
        "layout": {
            "title": {"text": plotly_text(title), "x": 0, "xanchor": "left", "font": {"size": 14}},
            "height": height,
            "margin": {"l": 56, "r": 16, "t": 40, "b": 36},
            "font": {"family": FONT, "size": 12, "color": "#1f2937"},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "hovermode": "x unified",
            "showlegend": len(lines) > 1,
            "legend": {"orientation": "h", "y": -0.18, "x": 0},
            "xaxis": {"type": "date", "gridcolor": "#f3f4f6", "showspikes": False},
            "yaxis": y_axis,
            "uirevision": title,
        },
    }


def _trace(number: int, line: Line, x: Sequence[str], unit: str, percent: bool) -> dict[str, Any]:
    colour = line.colour or PALETTE[number % len(PALETTE)]
    value = "%{y:.2%}" if percent else f"%{{y:,.3~f}}{' ' + unit if unit else ''}"
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines+markers",
        "marker": {"size": 4, "color": colour},
        "name": plotly_text(line.name),
        "x": list(x),
        "y": list(line.values),
        "line": {"color": colour, "width": 2, "dash": line.dash, "shape": "linear"},
        "connectgaps": False,
        "hovertemplate": f"{value}<extra>{plotly_text(line.name)}</extra>",
    }
    if line.fill:
        trace["fill"] = "tozeroy"
        trace["fillcolor"] = _translucent(colour)
    return trace


def _translucent(colour: str) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.12)"
