"""The service map's hover text: a node's or an edge's signals, escaped for plotly."""

from __future__ import annotations

from dashboards.charts import plotly_text
from dashboards.formatting import SAMPLED, ms, percent, rate
from meshlens.read.results import MESH_METRICS, Edge, Node, Signals


def node_hover(node: Node) -> str:
    """Name, type, signals, inbound mTLS coverage and saturation of `node`."""
    signals = node.signals
    lines = [f"<b>{plotly_text(node.name)}</b>", plotly_text(node.type)]
    lines += _signal_lines(signals)
    coverage = signals.mtls.coverage
    lines.append(f"inbound mTLS coverage: {percent(coverage)}")
    if signals.saturation is not None:
        lines.append(f"saturation: {percent(signals.saturation)}")
    if node.type == "service":
        lines.append("<i>click to open the service page</i>")
    return "<br>".join(lines)


def edge_hover(edge: Edge) -> str:
    """Caller and callee, signals, mTLS counts, the plaintext reason and sources of `edge`."""
    signals, mtls = edge.signals, edge.signals.mtls
    lines = [
        f"<b>{plotly_text(edge.source)} → {plotly_text(edge.target)}</b>",
        f"{plotly_text(edge.source_type)} → {plotly_text(edge.target_type)}",
    ]
    lines += _signal_lines(signals)
    coverage = mtls.coverage
    lines.append(
        f"mTLS: {mtls.mutual:,} mutual · {mtls.tls:,} one-way TLS · "
        f"{mtls.plaintext:,} plaintext · {mtls.unknown:,} unknown"
    )
    lines.append(f"mTLS coverage: {percent(coverage)}")
    reason = edge.plaintext_reason
    if reason is not None:
        lines.append(f"plaintext because: {plotly_text(reason)}")
    lines.append(f"from: {plotly_text(', '.join(edge.sources)) or '–'}")
    return "<br>".join(lines)


def _signal_lines(signals: Signals) -> list[str]:
    if not signals.requests:
        return ["no requests in the window"]
    latency = signals.latency_ms()
    lines = [f"{rate(signals.rps)} · {signals.requests:,} requests"]
    if signals.rate_is_lower_bound:
        lines[0] = "≥ " + lines[0]
        lines.append(f"<b>⚠ {SAMPLED}</b>: {percent(signals.unknown_rate_share)} of them")
    elif signals.counted_from == MESH_METRICS:
        lines.append("counted from mesh metrics")
    return [
        *lines,
        f"errors: {percent(signals.error_rate)} ({signals.errors:,})",
        "p50 / p95 / p99: " + " / ".join(ms(latency[name]) for name in ("p50", "p95", "p99")),
    ]
