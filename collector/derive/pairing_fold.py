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
from collector.derive.classify import MTLS_UNKNOWN
from collector.derive.halves import paired_mtls
from collector.derive.pairing import EdgeRequests, Hop, Nest
from collector.derive.rollup_fold import RollupFold
from collector.derive.span_facts import UNKNOWN_VERSION
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


def fold_hop(fold: RollupFold, hop: Hop) -> None:
    """An app's client span met its sidecar's span of the same call."""
    if hop.counted:  # the app's span waited alone and counted on its virtual node: take back
        early = EdgeRequests(hop.minute_unix, hop.service, hop.peer, hop.peer_type, hop.error,
                             hop.mtls, hop.unknown_rate, [hop.duration_ns],
                             [hop.weight])  # fmt: skip
        add_edge(fold, early, sign=-1)
    if hop.proxy_service != hop.service:  # a gateway's one CLIENT span: a request into it
        state = paired_mtls(hop.proxy_mtls, hop.mtls)
        key = (hop.service, "service", hop.proxy_service, "service")
        caller = _signals([hop.duration_ns], [hop.weight], hop.proxy_error, state,
                          hop.unknown_rate)  # fmt: skip
        fold.add("edge", hop.minute_unix, key, caller, "traces")
        signals = _signals([hop.proxy_duration_ns], [hop.proxy_weight], hop.proxy_error,
                           hop.proxy_mtls, hop.proxy_unknown)  # fmt: skip
        _fold_service(fold, hop.proxy_minute_unix, hop.proxy_service, hop.proxy_operation,
                      hop.proxy_version, signals)  # fmt: skip
    elif hop.proxy_counted:  # the sidecar's call counted with its own duration: the app's now
        signals = RollupSignals()
        counts = signals.latency.counts
        counts[bucket_of(hop.proxy_duration_ns)] = -hop.proxy_weight
        app = bucket_of(hop.duration_ns)
        counts[app] = counts.get(app, 0) + hop.proxy_weight
        key = (hop.service, "service", hop.proxy_peer, hop.proxy_peer_type)
        fold.add("edge", hop.proxy_minute_unix, key, signals, "traces")


def fold_nest(fold: RollupFold, nest: Nest) -> None:
    """A sidecar's entry span and its app's are one request: the app's counts it (its
    operation is the route, its latency the app's work); the sidecar's is taken back. What
    only the sidecar knew (the version Istio labels, the mTLS state, that the proxy sampled
    at an unknown rate) moves to the app's."""
    outer = _signals([nest.duration_ns], [nest.weight], nest.error, nest.mtls,
                     nest.unknown_rate, sign=-1)  # fmt: skip
    _fold_service(fold, nest.minute_unix, nest.service, nest.operation, nest.version, outer)
    version, mtls = nest.inner_version, nest.inner_mtls
    if version == UNKNOWN_VERSION and nest.version != UNKNOWN_VERSION:
        version = nest.version
    if mtls == MTLS_UNKNOWN:
        mtls = nest.mtls
    unknown = nest.inner_unknown or nest.unknown_rate
    if (version, mtls, unknown) == (nest.inner_version, nest.inner_mtls, nest.inner_unknown):
        return
    minute, service, operation = nest.inner_minute_unix, nest.service, nest.inner_operation
    duration, weight, error = [nest.inner_duration_ns], [nest.inner_weight], nest.inner_error
    taken = _signals(duration, weight, error, nest.inner_mtls, nest.inner_unknown, sign=-1)
    _fold_service(fold, minute, service, operation, nest.inner_version, taken)
    merged = _signals(duration, weight, error, mtls, unknown)
    _fold_service(fold, minute, service, operation, version, merged)


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
