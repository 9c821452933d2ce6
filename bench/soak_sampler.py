"""The soak's samples: every few seconds, the server's memory and CPU from /proc, the database's
size, meshlens's own counters from `/metrics`, and what the load generator and the web reads saw.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import LoadStats
from bench.procstat import machine_cpu_seconds, tree_cpu_seconds, tree_rss_bytes
from bench.server import HOST, Server
from bench.soak_traffic import WebStats

MIB = 1024 * 1024
SCRAPE_TIMEOUT = 30.0

# `/metrics` families kept: name -> [(labels, value)]; counters are named with `_total`
Scrape = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Scrape:
    """The counters and gauges of meshlens in a Prometheus text exposition."""
    found: Scrape = defaultdict(list)
    for family in text_string_to_metric_families(text):
        if family.type not in {"counter", "gauge"} or not family.name.startswith("meshlens_"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_created"):  # when a counter was made: not a count
                found[sample.name].append((dict(sample.labels), sample.value))
    return dict(found)


def metric_total(scrape: Scrape, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for have, value in scrape.get(name, [])
        if all(have.get(k) == v for k, v in labels.items())
    )


def metric_by(scrape: Scrape, name: str, label: str, **labels: str) -> dict[str, float]:
    """`name`'s samples whose labels include `labels`, summed by the value of `label`."""
    totals: dict[str, float] = defaultdict(float)
    for have, value in scrape.get(name, []):
        if all(have.get(k) == v for k, v in labels.items()):
            totals[have.get(label, "")] += value
    return dict(sorted(totals.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading; counts and CPU seconds are cumulative since the start of the load."""

    second: float  # since the start of the load
    rss_mib: float  # the server and its children (decode workers)
    cpu_seconds: float  # the same processes, user + system
    machine_busy_seconds: float  # every process on the machine, every core
    database_mib: float
    sent_spans: int
    acknowledged_spans: int
    refused_requests: dict[int, int]  # by HTTP status
    dropped_requests: int  # sent, never answered
    rejected_spans: int
    web_requests: int
    web_failures: int
    scrape: Scrape  # empty when /metrics did not answer


def load_counts(stats: LoadStats) -> dict[str, Any]:
    """The load generator's cumulative counts. Every request sent ends acknowledged (with its
    rejected spans), refused, or dropped without an answer."""
    dropped = sum(stats.failures.values())
    return {
        "sent_spans": stats.acknowledged_total
        + stats.rejected_spans
        + stats.refused_spans
        + dropped * stats.spans_per_request,
        "acknowledged_spans": stats.acknowledged_total,
        "refused_requests": dict(sorted(stats.refused.items())),
        "dropped_requests": dropped,
        "rejected_spans": stats.rejected_spans,
    }


class Sampler:
    """Takes a Sample every `period` seconds for `seconds`, from `started` on."""

    def __init__(
        self,
        server: Server,
        load: LoadStats,
        web: WebStats,
        started: float,
    ) -> None:
        self._server = server
        self._load = load
        self._web = web
        self._started = started
        self._database = psycopg.connect(server.database_url, autocommit=True)
        self._client = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT)
        self.scrape_failures: list[str] = []
        self.samples: list[Sample] = []

    async def run(
        self, seconds: int, period: int, on_sample: Callable[[Sample], None] | None = None
    ) -> None:
        """Sample at 0, period, 2 * period, ... up to `seconds`; `on_sample(sample)` after each."""
        for moment in range(0, seconds + 1, period):
            await asyncio.sleep(max(0.0, self._started + moment - time.perf_counter()))
            self.samples.append(await self.sample())
            if on_sample is not None:
                on_sample(self.samples[-1])

    async def sample(self) -> Sample:
        pid = self._alive()
        second = time.perf_counter() - self._started
        rss, cpu = tree_rss_bytes(pid), tree_cpu_seconds(pid)
        busy, _ = machine_cpu_seconds()
        size = await asyncio.to_thread(self._database_bytes)
        return Sample(
            second=round(second, 2),
            rss_mib=round(rss / MIB, 2),
            cpu_seconds=round(cpu, 2),
            machine_busy_seconds=round(busy, 2),
            database_mib=round(size / MIB, 1),
            **load_counts(self._load),
            web_requests=self._web.requests,
            web_failures=sum(self._web.failures.values()) + len(self.scrape_failures),
            scrape=await self.scrape(),
        )

    async def scrape(self) -> Scrape:
        """meshlens's counters now; a failure is recorded (it fails the soak) and gives {}."""
        url = f"http://{HOST}:{self._server.web_port}/metrics"
        try:
            answer = await self._client.get(url)
        except httpx.HTTPError as exc:
            self.scrape_failures.append(f"/metrics: {type(exc).__name__}: {exc}")
            return {}
        if answer.status_code != 200:
            self.scrape_failures.append(f"/metrics: HTTP {answer.status_code}")
            return {}
        return parse_metrics(answer.text)

    async def close(self) -> None:
        await self._client.aclose()
        self._database.close()

    def _alive(self) -> int:
        if self._server.process.poll() is not None:
            raise RuntimeError(f"meshlens serve died during the soak:\n{self._server.log_tail()}")
        return self._server.process.pid

    def _database_bytes(self) -> int:
        row = self._database.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
