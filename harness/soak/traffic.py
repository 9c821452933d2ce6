"""What traffic the soak makes of `meshlens serve`, besides its load of spans: the pages and API
answers it reads, and the alert rules file it loads, whose receiver is a local webhook sink.

The load's requests are built again every RETIME_SECONDS so the spans are timed now and fold
into current rollups, as live traffic does (`bench/soak_traffic.py` runs the load and the reads).
"""

from __future__ import annotations

RETIME_SECONDS = 10.0
WINDOW = "5m"  # reads and rules look back 5 minutes: steady once the warm-up is over
SERVICE = "checkout"  # a service of bench.mesh, read in detail
WEB_PATHS = (
    f"/api/v1/services?window={WINDOW}",
    f"/api/v1/graph?window={WINDOW}",
    f"/api/v1/services/{SERVICE}?window={WINDOW}",
    f"/api/v1/services/{SERVICE}/series?window={WINDOW}",
    f"/api/v1/mtls?window={WINDOW}",
    "/api/v1/alerts",
    "/api/v1/rules",
    f"/?window={WINDOW}",
    f"/map?window={WINDOW}",
    f"/services/{SERVICE}?window={WINDOW}",
    "/alerts",
)
RULES = 3  # in rules_file_text


def rules_file_text(sink_url: str) -> str:
    """Three rules: one fires for every service (the mesh fails about 4 % of its requests) and
    notifies the sink every 5 minutes; two watch for what should not happen."""
    return f"""\
receivers:
  - name: soak-sink
    type: webhook
    url: {sink_url}
rules:
  - name: SoakServiceErrors
    signal: error_rate
    scope: service
    condition: "> 2%"
    window: {WINDOW}
    for: 1m
    receivers: [soak-sink]
    group_by: [alertname, service]
    group_wait: 0s
    group_interval: 1m
    repeat_interval: 5m
  - name: SoakSlowEdges
    signal: latency_p99
    scope: edge
    condition: "> 5s"
    window: {WINDOW}
    receivers: [soak-sink]
  - name: SoakTrafficStopped
    signal: request_rate
    scope: mesh
    condition: "< 1"
    window: {WINDOW}
    for: 2m
    receivers: [soak-sink]
"""
