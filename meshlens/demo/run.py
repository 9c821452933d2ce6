"""A run of `meshlens demo`: check that meshlens answers, introduce the mesh, backfill, stream,
then say what was sent.

The OpenTelemetry SDK (and httpx) are imported only when the demo runs, so `meshlens serve`
does not pay for them.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from meshlens.demo.console import complain, say
from meshlens.demo.endpoint import check_endpoint, dashboard_url, otlp_endpoint
from meshlens.demo.mesh import ISTIO, LINKERD, Mesh
from meshlens.demo.options import DemoOptions
from meshlens.demo.phases import backfill, stream
from meshlens.demo.prometheus_scrape import SCRAPE_INTERVAL_SECONDS
from meshlens.demo.stop_signal import StopSignal
from meshlens.demo.topology import shop
from meshlens.demo.utilization import UtilizationModel, gauge_name
from meshlens.settings import Settings

MESH_NAMES = {ISTIO: "Istio sidecars", LINKERD: "Linkerd proxies"}
NANOS_PER_SECOND = 1_000_000_000

if TYPE_CHECKING:
    from meshlens.demo.pipelines import Pipelines
    from meshlens.demo.traffic import Traffic


def run_demo(options: DemoOptions, settings: Settings) -> int:
    """Run the demo; 0 when everything sent was delivered."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    if settings.log_level != "debug":  # the demo reports failed deliveries itself, once
        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    endpoint = otlp_endpoint(options, settings)
    problem = check_endpoint(endpoint)
    if problem is not None:
        print(
            f"meshlens demo: {problem}.\nStart meshlens first (`meshlens serve`, in another "
            "terminal), or point --endpoint at its OTLP/HTTP port.",
            file=sys.stderr,
        )
        return 1
    from meshlens.demo.pipelines import Pipelines
    from meshlens.demo.traffic import Traffic

    anchor = time.time_ns()  # the backfill ends here, the stream starts here
    started = anchor - int(options.backfill * 60 * NANOS_PER_SECOND)  # the pods' start
    mesh = shop(rollout=_restarted_at(started))
    gauge = gauge_name(settings.saturation_metrics)
    _introduce(mesh, endpoint, dashboard_url(endpoint, settings), gauge)
    rng = random.Random(options.seed)
    pipelines = Pipelines(mesh, endpoint, gauge, UtilizationModel(options.seed), started)
    traffic = Traffic(mesh, pipelines.tracer, pipelines, rng)
    with StopSignal() as stop:
        try:
            try:
                if options.backfill > 0:
                    backfill(traffic, pipelines, rng, options, anchor, stop)
                if not stop.is_set():
                    pipelines.start_gauges()
                    stream(traffic, pipelines, rng, options, anchor, stop)
            finally:
                if not stop.interrupted_twice:
                    say("stopping: sending what is left ...")
                    pipelines.shutdown()
        except KeyboardInterrupt:  # a second Ctrl-C: leave without waiting for exports
            print("\nmeshlens demo: interrupted, unsent spans are dropped", file=sys.stderr)
            return 130
    return _summary(traffic, pipelines, endpoint)


def _restarted_at(unix_ns: int) -> str:
    """`kubectl rollout restart`'s annotation value (`kubectl.kubernetes.io/restartedAt`)."""
    moment = datetime.fromtimestamp(unix_ns / NANOS_PER_SECOND, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _introduce(mesh: Mesh, endpoint: str, dashboard: str, gauge: str | None) -> None:
    services = ", ".join(mesh.services)
    externals = ", ".join(mesh.external_hosts())
    plaintext = ", ".join(f"{a} -> {b}" for a, b in mesh.plaintext_edges())
    say(f"meshlens demo: a simulated web shop, sent over OTLP/HTTP to {endpoint}")
    say(f"  {len(mesh.services)} services: {services}")
    say(
        f"  also: user (the client), {mesh.database} ({mesh.database_system} database), "
        f"{mesh.broker} ({mesh.broker_system} broker), {externals} (external API)"
    )
    say(f"  proxies: {_proxies(mesh)}")
    say(f"  every call between services is mutual TLS except {plaintext}")
    say(
        "  metrics: every proxy's request counters and latency histograms (Istio "
        "istio_requests_total, Linkerd response_total), scraped every "
        f"{SCRAPE_INTERVAL_SECONDS} s as a Collector's prometheus receiver sends them"
    )
    say("  look for:")
    width = max(len(h.title) for h in mesh.highlights)
    for highlight in mesh.highlights:
        say(f"    {highlight.title:<{width}}  {highlight.detail}")
    if gauge is None:
        say("  saturation: not sent (MESHLENS_SATURATION_METRICS names no gauge)")
    else:
        say(f"  saturation: every workload reports {gauge}")
    wait = Settings.model_fields["unpaired_count_after_seconds"].default
    say(
        f"  note: calls to {mesh.broker} and {externals} have no server half; meshlens draws "
        "them once they have waited for one (MESHLENS_UNPAIRED_COUNT_AFTER_SECONDS, "
        f"{wait:g} s by default)"
    )
    say(f"  dashboard: {dashboard}")


def _proxies(mesh: Mesh) -> str:
    """Which mesh's proxy fronts which services, and the gateway."""
    by_mesh: dict[str | None, list[str]] = {}
    for service in mesh.services.values():
        by_mesh.setdefault(service.proxy, []).append(service.name)
    parts = [
        f"{MESH_NAMES[proxy]} in front of {', '.join(by_mesh[proxy])}"
        for proxy in (ISTIO, LINKERD)
        if proxy in by_mesh
    ]
    if mesh.gateway is not None:
        parts.append(
            f"the Istio ingress gateway {mesh.gateway.name} in front of {mesh.entry_service}"
        )
    if None in by_mesh:
        parts.append(f"none in front of {', '.join(by_mesh[None])}")
    return "; ".join(parts)


def _summary(traffic: Traffic, pipelines: Pipelines, endpoint: str) -> int:
    counts = pipelines.counts
    say(
        f"meshlens demo: sent {traffic.requests:,} requests ({counts.sent:,} spans, "
        f"{counts.points_sent:,} metric points) to {endpoint}"
    )
    if counts.failed or counts.points_failed:
        complain(
            f"{counts.failed:,} spans and {counts.points_failed:,} metric points could not be "
            f"delivered to {endpoint}"
        )
        return 1
    return 0
