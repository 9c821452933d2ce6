"""Overload: more OTLP/HTTP traffic than meshlens can commit, from many connections at once.

With the default limits, uncommitted data in flight stays under `MESHLENS_INGEST_QUEUE_ITEMS`:
what comes on top is refused at once with 429 and a Retry-After (and nothing of it is stored),
rather than queued without bound; meshlens's memory stays under the documented bound; every
span answered 200 is stored exactly once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.otlp_payloads import trace_request
from tests.reliability_support import RSS_LIMIT_MIB, RssSampler
from tests.support import RunningServer, metric_total, running_server, unique_names

CONNECTIONS = 128
REQUESTS_PER_CONNECTION = 3
SPANS_PER_REQUEST = 1_000  # 128 requests at once: 128,000 spans, more than the queue takes
QUEUE_ITEMS = 100_000  # the default of MESHLENS_INGEST_QUEUE_ITEMS
RETRY_AFTER = "2"  # the default of MESHLENS_RETRY_AFTER_SECONDS
PROTOBUF = {"content-type": "application/x-protobuf"}


@dataclass
class Outcomes:
    """Each request's trace id (one per request, every span of it shares it) by answer."""

    by_status: dict[int, list[bytes]] = field(default_factory=dict)
    retry_after: Counter[str] = field(default_factory=Counter)

    def add(self, status: int, trace_id: bytes, retry_after: str | None) -> None:
        self.by_status.setdefault(status, []).append(trace_id)
        if retry_after is not None:
            self.retry_after[retry_after] += 1

    def count(self, status: int) -> int:
        return len(self.by_status.get(status, []))


def requests(service: str, count: int) -> list[tuple[bytes, bytes]]:
    """`count` requests of `SPANS_PER_REQUEST` server spans, each request its own trace id:
    (trace id, body), built before the load starts so the client spends its time sending."""
    template = trace_request(service, spans=SPANS_PER_REQUEST)
    spans = template.resource_spans[0].scope_spans[0].spans
    built = []
    for _ in range(count):
        trace_id = os.urandom(16)
        for span in spans:
            span.trace_id = trace_id
        built.append((trace_id, template.SerializeToString()))
    return built


class QueueSampler:
    """The most uncommitted items meshlens reported (its queue gauge), read in a thread."""

    def __init__(self, server: RunningServer) -> None:
        self._server = server
        self.most = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                queued = metric_total(self._server, "meshlens_ingest_queue_items")
            except httpx.HTTPError:
                continue  # the web port is busy too; the next sample will do
            self.most = max(self.most, queued)


async def offer(server: RunningServer, service: str) -> Outcomes:
    """CONNECTIONS connections, each sending REQUESTS_PER_CONNECTION requests back to back."""
    outcomes = Outcomes()
    # idle connections are let go after 1 s, before meshlens closes them (after 5 s): a
    # connection reused just as the server closes it would fail for the client's reasons
    limits = httpx.Limits(max_connections=CONNECTIONS, keepalive_expiry=1)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def connection(load: list[tuple[bytes, bytes]]) -> None:
            for trace_id, body in load:
                answer = await client.post(
                    f"{server.otlp_http}/v1/traces", content=body, headers=PROTOBUF
                )
                outcomes.add(answer.status_code, trace_id, answer.headers.get("retry-after"))

        built = requests(service, CONNECTIONS * REQUESTS_PER_CONNECTION)
        loads = [built[n::CONNECTIONS] for n in range(CONNECTIONS)]
        await asyncio.gather(*(connection(load) for load in loads))
    return outcomes


@pytest.mark.slow
def test_load_above_capacity_is_refused_not_queued(database_url: str, tmp_path: Path) -> None:
    service = unique_names()("overload")
    with running_server(database_url, tmp_path / "meshlens.log") as server:
        started = time.monotonic()
        with RssSampler(lambda: server.process.pid) as rss, QueueSampler(server) as queue:
            outcomes = asyncio.run(offer(server, service))
        seconds = time.monotonic() - started
        rows = server.query(
            "SELECT trace_id, count(*) FROM spans WHERE service = %s GROUP BY 1", (service,)
        )
    stored = {bytes(t): int(n) for t, n in rows}
    ok, refused = outcomes.by_status.get(200, []), outcomes.by_status.get(429, [])
    answers = {status: len(traces) for status, traces in outcomes.by_status.items()}
    print(
        f"\noverload: {CONNECTIONS} connections x {REQUESTS_PER_CONNECTION} requests of "
        f"{SPANS_PER_REQUEST} spans in {seconds:.1f} s; answers {answers}; "
        f"{sum(stored.values())} spans stored; most queued {queue.most:.0f}; "
        f"peak RSS {rss.peak_mib:.0f} MiB"
    )
    assert set(answers) <= {200, 429, 503}
    assert refused, "nothing was refused: everything offered was queued"
    assert outcomes.retry_after == {RETRY_AFTER: len(refused) + answers.get(503, 0)}
    assert queue.most <= QUEUE_ITEMS
    assert rss.peak_mib < RSS_LIMIT_MIB
    incomplete = sum(stored.get(trace) != SPANS_PER_REQUEST for trace in ok)
    assert incomplete == 0, f"{incomplete} requests answered 200 are not stored once in full"
    kept = sum(trace in stored for trace in refused)
    assert kept == 0, f"{kept} requests answered 429 were stored"
