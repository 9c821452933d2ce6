"""The soak's sampler: every few seconds, the server's memory and CPU from /proc, the database's
size, meshlens's own counters from `/metrics`, and what the load generator and the web reads saw
(`harness.soak.samples` holds the Sample and parses the `/metrics` text).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from bench.loadgen import LoadStats
from bench.procstat import machine_cpu_seconds, tree_cpu_seconds, tree_rss_bytes
from bench.server import HOST, Server
from bench.soak_traffic import WebStats
from harness.soak.samples import Sample, Scrape, parse_metrics

MIB = 1024 * 1024
SCRAPE_TIMEOUT = 30.0


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
