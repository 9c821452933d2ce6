"""Results of the query layer as the rows and cards the templates show."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dashboards.health import SEVERITY, health
from meshlens.read.results import Edge, Mtls, Node, Share, Signals


def mtls_state(mtls: Mtls) -> str:
    """What an edge's requests were: `mutual`, `tls`, `plaintext`, `mixed` or `unknown`."""
    known = {name for name, value in (("mutual", mtls.mutual), ("tls", mtls.tls)) if value > 0} | (
        {"plaintext"} if mtls.plaintext > 0 else set()
    )
    if not known:
        return "unknown"
    return known.pop() if len(known) == 1 else "mixed"


@dataclass(frozen=True, slots=True)
class SignalRow:
    """The golden signals of one service, edge, operation or version, ready to show."""

    name: str
    requests: int
    rps: float
    errors: int
    error_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    saturation: float | None
    coverage: float | None
    health: str
    lower_bound: bool = False
    """Some requests come from spans sampled at an unknown rate: the true rate is higher."""
    unknown_share: float | None = None
    """Share of the requests from spans sampled at an unknown rate."""
    source: str | None = None
    """Where the counts come from: `mesh-metrics`, `traces`, `mixed` (None: no requests)."""

    @property
    def severity(self) -> tuple[int, float, float]:
        """Worst first: health, then error ratio, then p95."""
        return (-SEVERITY[self.health], -(self.error_rate or 0.0), -(self.p95 or 0.0))


def signal_row(name: str, signals: Signals) -> SignalRow:
    latency = signals.latency_ms()
    return SignalRow(
        name=name,
        requests=signals.requests,
        rps=signals.rps,
        errors=signals.errors,
        error_rate=signals.error_rate,
        p50=latency["p50"],
        p95=latency["p95"],
        p99=latency["p99"],
        saturation=signals.saturation,
        coverage=signals.mtls.coverage,
        health=health(signals.error_rate),
        lower_bound=signals.rate_is_lower_bound,
        unknown_share=signals.unknown_rate_share,
        source=signals.counted_from,
    )


def worst_first(rows: Iterable[SignalRow]) -> list[SignalRow]:
    return sorted(rows, key=lambda row: (row.severity, row.name))


def service_rows(nodes: Iterable[Node]) -> list[SignalRow]:
    """Services (not virtual nodes), worst first."""
    return worst_first(
        signal_row(node.name, node.signals) for node in nodes if node.type == "service"
    )


@dataclass(frozen=True, slots=True)
class EdgeRow:
    """An edge with its signals and mTLS state."""

    source: str
    source_type: str
    target: str
    target_type: str
    signals: SignalRow
    mtls: Mtls
    state: str
    plaintext_reason: str | None
    sources: tuple[str, ...]


def edge_rows(edges: Iterable[Edge]) -> list[EdgeRow]:
    rows = [
        EdgeRow(
            source=edge.source,
            source_type=edge.source_type,
            target=edge.target,
            target_type=edge.target_type,
            signals=signal_row(f"{edge.source} → {edge.target}", edge.signals),
            mtls=edge.signals.mtls,
            state=mtls_state(edge.signals.mtls),
            plaintext_reason=edge.plaintext_reason,
            sources=edge.sources,
        )
        for edge in edges
    ]
    return sorted(rows, key=lambda row: (row.signals.severity, row.source, row.target))


@dataclass(frozen=True, slots=True)
class ShareRow:
    """An operation or version with its share of the service's requests."""

    name: str
    share: float | None
    signals: SignalRow


def share_rows(shares: Sequence[Share]) -> list[ShareRow]:
    return [
        ShareRow(share.name, share.share, signal_row(share.name, share.signals)) for share in shares
    ]
