"""The service map (`/map`): the graph as a plotly figure, built as a plain dict.

Nodes sit where `dashboards.layout.layered_positions` puts them (callers left of callees); their
shape says their type and their colour their health (error ratio). Edges are coloured by error
ratio, as wide as their requests per second (log scale) and dashed when some of their requests
were plaintext, dotted when one-way TLS; an arrowhead at the callee shows the direction.

Trace order (drawing order, bottom to top), every trace a `scatter` with a stable `uid`:

1. `edges:<kind>:<health>:<width>`: the edge lines, one trace per look (line styles cannot
   vary along a trace), segments separated by nulls. kind: `plaintext`, `tls`, `mutual`.
2. `arrows:<kind>`: an arrowhead marker per edge at its callee.
3. `edge-hover:<kind>`: a faint marker at each edge's middle, carrying its hover text.
4. `nodes:<type>`: one trace per node type (service, database, messaging, external, client,
   then any other), a point per node with its label, hover text and `customdata`: the URL of the
   service's page for services, null for the others (the page opens it on click).
5. `legend:...`: point-less traces giving the legend its entries (node types, edge kinds) in
   neutral colours; each shares a `legendgroup` with the traces it stands for, so clicking it
   hides or shows them.

Names, types and reasons come from telemetry: plotly draws text as HTML-ish markup, so every
one of them is escaped (`plotly_text`), and only this package's own `<b>`/`<br>` stay markup.

- `looks`: node symbols, edge kinds and the colours and fonts every part shares.
- `nodes`: the node traces (4). `edges`: the edge lines, arrows and hover markers (1-3), along
  the curves `edge_paths` draws. `hover`: the hover text of nodes and edges.
- `figure`: `map_figure`, the legend traces (5) and the plotly layout.
"""

from __future__ import annotations

from dashboards.charts import plotly_text
from dashboards.health import BAD_ERROR_RATE, HEALTH_COLOURS, WARN_ERROR_RATE, Health, health
from dashboards.layout import focus, layered_positions
from dashboards.service_map.figure import map_figure

__all__ = [
    "BAD_ERROR_RATE",
    "HEALTH_COLOURS",
    "WARN_ERROR_RATE",
    "Health",
    "focus",
    "health",
    "layered_positions",
    "map_figure",
    "plotly_text",
]
