"""The soak's traffic, run: a steady OTLP/HTTP load and reads of the web port (what it reads,
and the rules file, are in `harness.soak.traffic`).

The load is the ingest benchmark's generator (`bench.loadgen`) paced to a fixed rate; its
requests (`bench.templates`: 8 services, client/server pairs) are built again every
RETIME_SECONDS so the spans are timed now and fold into current rollups, as live traffic does.
The same seed gives the same pods and attributes each time: only the times and ids change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.loadgen import LoadGenerator, LoadStats, Pacer
from bench.server import HOST, Server
from bench.templates import build_templates
from harness.soak.options import SoakOptions
from harness.soak.traffic import RETIME_SECONDS, SERVICE, WEB_PATHS, WINDOW

WEB_TIMEOUT = 30.0
FIRST_DATA_TIMEOUT = 60.0


class SteadyLoad:
    """The paced load generator and the task that times its requests afresh."""

    def __init__(self, options: SoakOptions, server: Server, stats: LoadStats) -> None:
        self._options = options
        token, templates = build_templates(options.spans_per_request)
        pacer = Pacer(options.request_interval)
        self.generator = LoadGenerator(token, templates, server.otlp_http_port, stats, pacer)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.generator.connection())
            for _ in range(self._options.connections)
        ]
        self._tasks.append(asyncio.create_task(self._retime()))

    async def stop(self) -> None:
        """Stop sending; in-flight requests finish (or time out) first."""
        self.generator.stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for task in self._tasks:  # a bug in the generator must not pass silently
            if task.exception() is not None:
                raise RuntimeError("a load task crashed") from task.exception()

    async def _retime(self) -> None:
        stop = self.generator.stop
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETIME_SECONDS)
                return
            built = await asyncio.to_thread(build_templates, self._options.spans_per_request)
            self.generator.replace_templates(*built)


@dataclass(slots=True)
class WebStats:
    """Web-port reads: how many, and the failures (status or error) by path."""

    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)  # the first few

    def fail(self, path: str, what: str) -> None:
        self.failures[f"{path.partition('?')[0]}: {what}"] += 1
        if len(self.messages) < 5:
            self.messages.append(f"{path}: {what}")


class WebReader:
    """Reads every WEB_PATHS page and API answer each `interval` seconds, one at a time."""

    def __init__(self, server: Server, interval: int) -> None:
        self._base = f"http://{HOST}:{server.web_port}"
        self._interval = interval
        self.stats = WebStats()

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self._base, timeout=WEB_TIMEOUT) as client:
            await self._first_data(client, stop)
            while not stop.is_set():
                for path in WEB_PATHS:
                    await self._read(client, path)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)

    async def _first_data(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Wait until SERVICE is known: its pages answer 404 before its first spans."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_DATA_TIMEOUT
        while not stop.is_set() and loop.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.get(f"/api/v1/services/{SERVICE}?window={WINDOW}")
                if answer.status_code == 200:
                    return
            await asyncio.sleep(0.5)
        if not stop.is_set():
            self.stats.fail(f"/api/v1/services/{SERVICE}", "no data after 60 s")

    async def alerting_state(self) -> dict[str, Any]:
        """The rules the server has loaded and its alerts by state, read once."""
        async with httpx.AsyncClient(base_url=self._base, timeout=WEB_TIMEOUT) as client:
            rules = (await client.get("/api/v1/rules")).raise_for_status().json()["rules"]
            alerts = (await client.get("/api/v1/alerts")).raise_for_status().json()["alerts"]
        return {
            "rules_loaded": len(rules),
            "alerts_at_end": dict(Counter(alert["state"] for alert in alerts)),
        }

    async def _read(self, client: httpx.AsyncClient, path: str) -> None:
        self.stats.requests += 1
        try:
            answer = await client.get(path)
        except httpx.HTTPError as exc:
            self.stats.fail(path, f"{type(exc).__name__}: {exc}")
            return
        if answer.status_code != 200:
            self.stats.fail(path, f"HTTP {answer.status_code} {answer.text[:200]!r}")
