"""What a pairing pass (`pairing.PairingPass`) adds to the rollups, and what it takes back.

Every request a pass finds is folded here, each with its weight (a sampled span's adjusted
count): pairs and calls that waited alone add to their edge; a call counted alone and then
paired is taken back from its virtual edge; a hop moves latency from a sidecar's client span to
its app's; a nest takes back the request a sidecar's entry span counted and moves what only the
sidecar knew (version label, mTLS state, unknown sampling rate) onto the app's request.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.derive.batch import RollupSignals
from collector.derive.halves import paired_mtls
from collector.derive.pairing import (
    EdgeRequests,
    GatewayHop,
    LatencyMove,
    NestMove,
    ServiceRequests,
)
from collector.derive.rollup_fold import RollupFold
from meshlens.signals.histogram import bucket_of


def _signals(
    durations: Iterable[int],
    weights: Iterable[int],
    error: bool,
    mtls: int,
    unknown: bool = False,
    sign: int = 1,
) -> RollupSignals:
    """Requests of these durations, each counted its weight (taken back when sign < 0)."""
    signals = RollupSignals()
    for duration, weight in zip(durations, weights, strict=True):
        signals.add(bucket_of(duration), error, mtls, sign * weight, unknown)
    return signals


def add_edge(fold: RollupFold, edge: EdgeRequests, sign: int = 1) -> int:
    """Add (or take back) the requests of `edge`; returns how many spans they came from."""
    signals = _signals(edge.durations, edge.weights, edge.error, edge.mtls, edge.unknown_rate, sign)
    key = (edge.source, "service", edge.target, edge.target_type)
    fold.add("edge", edge.minute_unix, key, signals, "traces")
    return len(edge.durations)


def fold_gateway_hop(fold: RollupFold, hop: GatewayHop) -> None:
    """An old gateway's one CLIENT span under a caller's client span: a request caller ->
    gateway, and a request into the gateway."""
    state = paired_mtls(hop.proxy_mtls, hop.mtls)
    key = (hop.service, "service", hop.proxy_service, "service")
    caller = _signals([hop.duration_ns], [hop.weight], hop.proxy_error, state, hop.unknown_rate)
    fold.add("edge", hop.minute_unix, key, caller, "traces")
    signals = _signals([hop.proxy_duration_ns], [hop.proxy_weight], hop.proxy_error,
                       hop.proxy_mtls, hop.proxy_unknown)  # fmt: skip
    _fold_service(fold, hop.proxy_minute_unix, hop.proxy_service, hop.proxy_operation,
                  hop.proxy_version, signals)  # fmt: skip


def fold_latency_move(fold: RollupFold, move: LatencyMove) -> None:
    """Sidecar calls counted with the sidecar's durations take their apps' durations."""
    signals = RollupSignals()
    counts = signals.latency.counts
    for counted, app, weight in zip(
        move.counted_durations, move.app_durations, move.weights, strict=True
    ):
        was, now = bucket_of(counted), bucket_of(app)
        counts[was] = counts.get(was, 0) - weight
        counts[now] = counts.get(now, 0) + weight
    key = (move.source, "service", move.target, move.target_type)
    fold.add("edge", move.minute_unix, key, signals, "traces")


def fold_nest_taken_back(fold: RollupFold, taken: ServiceRequests) -> None:
    """A sidecar's entry spans whose apps' own spans count the requests: taken back."""
    signals = _signals(taken.durations, taken.weights, taken.error, taken.mtls,
                       taken.unknown_rate, sign=-1)  # fmt: skip
    _fold_service(fold, taken.minute_unix, taken.service, taken.operation, taken.version, signals)


def fold_nest_move(fold: RollupFold, move: NestMove) -> None:
    """Apps' requests move to their sidecar's version, mTLS state, unknown sampling rate."""
    minute, service, operation = move.minute_unix, move.service, move.operation
    durations, weights, error = move.durations, move.weights, move.error
    taken = _signals(durations, weights, error, move.mtls, move.unknown_rate, sign=-1)
    _fold_service(fold, minute, service, operation, move.version, taken)
    merged = _signals(durations, weights, error, move.merged_mtls, move.merged_unknown)
    _fold_service(fold, minute, service, operation, move.merged_version, merged)


def _fold_service(
    fold: RollupFold,
    minute: int,
    service: str,
    operation: str,
    version: str,
    signals: RollupSignals,
) -> None:
    """Signals of requests into `service`, for the service, its operation and its version."""
    fold.add("service", minute, (service, "", "", ""), signals, "traces")
    for op, ver in ((operation, ""), ("", version)):
        if op or ver:  # ingest always names both; a half without them counts in the total only
            fold.add("service", minute, (service, op, ver, ""), signals, "traces")
