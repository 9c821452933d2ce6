"""Derivation lag under load: how long until an acknowledged request shows in the graph.

Every few seconds during the load, a probe sends the client half of a request, then (in a
separate request, so PostgreSQL and not the batch pairs them) the server half, and polls the
API until the service's `upstream` lists the probe's client: the lag is measured from the
server half's acknowledgement. Beside it, a call with no server half (to a host outside the
mesh) is sent, and the API polled until the caller's `downstream` lists that host: the lag of a
client-only edge, from its acknowledgement (it waits `MESHLENS_UNPAIRED_COUNT_AFTER_SECONDS`
for a server half that never comes). Probes poll every POLL_SECONDS: that is the lag's
resolution. After the load, `derive_passes` reads from /metrics how many derivation passes ran
and how long they took on average.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from dataclasses import dataclass, field

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.server import HOST, Server

EVERY_SECONDS = 5.0
POLL_SECONDS = 0.5  # the lag's resolution; at 0.2 s the probes' API calls took 7 % of the server
GIVE_UP_SECONDS = 60.0
PROTOBUF = {"content-type": "application/x-protobuf"}


@dataclass(slots=True)
class LagStats:
    """Lags of the probes that became visible, and how many never did."""

    seconds: list[float] = field(default_factory=list)
    missing: int = 0

    def summary(self) -> dict[str, float | int | None]:
        """Median and max lag (s), probe counts."""
        done = sorted(self.seconds)
        p95 = done[min(len(done) - 1, math.ceil(0.95 * len(done)) - 1)] if done else None
        return {
            "probes": len(done) + self.missing,
            "missing": self.missing,
            "median_s": round(statistics.median(done), 2) if done else None,
            "p95_s": round(p95, 2) if p95 is not None else None,
            "max_s": round(done[-1], 2) if done else None,
        }


def _half(
    service: str, kind: int, trace_id: bytes, span_id: bytes, parent: bytes, peer: str = ""
) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add(key="service.name")
    attribute.value.string_value = service
    span = resource_spans.scope_spans.add().spans.add()
    now = time.time_ns()
    span.trace_id, span.span_id, span.parent_span_id = trace_id, span_id, parent
    span.name = "lag probe"
    span.kind = kind  # type: ignore[assignment]  # SpanKind values are ints on the wire
    span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
    if peer:
        address = span.attributes.add(key="server.address")
        address.value.string_value = peer
    return request.SerializeToString()


class LagProbe:
    """Sends probes until `stop` is set; the results are in `stats`."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.stats = LagStats()
        self.client_only = LagStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every EVERY_SECONDS; each probe is followed in its own task."""
        probes: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(timeout=30) as client:
            number = 0
            while not stop.is_set():
                probes.append(asyncio.create_task(self._probe(client, number)))
                probes.append(asyncio.create_task(self._probe_alone(client, number)))
                number += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), EVERY_SECONDS)
            await asyncio.gather(*probes)

    async def _probe(self, client: httpx.AsyncClient, number: int) -> None:
        tag = f"{os.getpid()}-{number}"
        caller, callee = f"lag-probe-client-{tag}", f"lag-probe-server-{tag}"
        trace_id, client_id = os.urandom(16), os.urandom(8)
        otlp = f"http://{HOST}:{self._server.otlp_http_port}/v1/traces"
        client_half = _half(caller, 3, trace_id, client_id, b"")
        server_half = _half(callee, 2, trace_id, os.urandom(8), client_id)
        if not await _acknowledged(client, otlp, client_half):
            self.stats.missing += 1
            return
        await asyncio.sleep(1.0)  # a later request: the halves meet in PostgreSQL
        if not await _acknowledged(client, otlp, server_half):
            self.stats.missing += 1
            return
        acknowledged = time.perf_counter()
        api = f"http://{HOST}:{self._server.web_port}/api/v1/services/{callee}"
        while time.perf_counter() - acknowledged < GIVE_UP_SECONDS:
            answer = await client.get(api, params={"window": "15m"})
            if answer.status_code == 200 and any(
                edge["source"] == caller for edge in answer.json().get("upstream", [])
            ):
                self.stats.seconds.append(time.perf_counter() - acknowledged)
                return
            await asyncio.sleep(POLL_SECONDS)
        self.stats.missing += 1

    async def _probe_alone(self, client: httpx.AsyncClient, number: int) -> None:
        tag = f"{os.getpid()}-{number}"
        caller, host = f"lag-probe-alone-{tag}", f"lag-probe-{tag}.example.com"
        otlp = f"http://{HOST}:{self._server.otlp_http_port}/v1/traces"
        call = _half(caller, 3, os.urandom(16), os.urandom(8), b"", peer=host)
        if not await _acknowledged(client, otlp, call):
            self.client_only.missing += 1
            return
        acknowledged = time.perf_counter()
        api = f"http://{HOST}:{self._server.web_port}/api/v1/services/{caller}"
        while time.perf_counter() - acknowledged < GIVE_UP_SECONDS:
            answer = await client.get(api, params={"window": "15m"})
            if answer.status_code == 200 and any(
                edge["target"] == host for edge in answer.json().get("downstream", [])
            ):
                self.client_only.seconds.append(time.perf_counter() - acknowledged)
                return
            await asyncio.sleep(POLL_SECONDS)
        self.client_only.missing += 1


async def _acknowledged(client: httpx.AsyncClient, url: str, body: bytes) -> bool:
    for _ in range(20):  # retried like an SDK would when refused under load
        answer = await client.post(url, content=body, headers=PROTOBUF)
        if answer.status_code == 200:
            return True
        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
    return False


async def derive_passes(server: Server) -> dict[str, float | int | None]:
    """The server's derivation passes so far (`meshlens_derive_run_seconds`): count, mean."""
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"http://{HOST}:{server.web_port}/metrics")
    if answer.status_code != 200:
        return {"passes": None, "mean_s": None}
    values = {}
    for line in answer.text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("meshlens_derive_run_seconds_count", "meshlens_derive_run_seconds_sum"):
            values[name.rsplit("_", 1)[1]] = float(value)
    count, total = int(values.get("count", 0)), values.get("sum", 0.0)
    return {"passes": count, "mean_s": round(total / count, 2) if count else None}
