"""The HTTP run: the load for warm-up plus the measured window, sampling and progress."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from bench.lag import LagProbe, derive_passes
from bench.loadgen import LoadGenerator, LoadStats
from bench.options import Options
from bench.procstat import (
    PostgresCpu,
    machine_cpu_delta,
    machine_cpu_seconds,
    own_cpu_seconds,
    tree_cpu_seconds,
    tree_rss_bytes,
)
from bench.server import Server
from bench.templates import TemplateSet

PROGRESS_EVERY = 10  # seconds


@dataclass(frozen=True, slots=True)
class Usage:
    """Server and client resource use over the measured window."""

    server_cpu_seconds: float
    server_rss_max: int
    server_rss_end: int
    client_cpu_seconds: float
    postgres_cpu_seconds: dict[str, float] | None
    machine_seconds: tuple[float, float]  # busy, iowait
    lag: dict[str, float | int | None] | None = None  # derivation lag probes (bench.lag)


class Monitor:
    """Samples the server's memory every second and its CPU over the measured window."""

    def __init__(self, server: Server, postgres: PostgresCpu | None) -> None:
        self._server = server
        self._postgres = postgres
        self._rss_max = 0

    async def watch(self, stats: LoadStats) -> Usage:
        """Wait out the warm-up and the window, sampling; the usage over the window."""
        while time.perf_counter() < stats.window_start:
            self._sample_memory()
            await _sleep_until(min(stats.window_start, time.perf_counter() + 1))
        server_cpu, client_cpu, machine = self._cpu(), own_cpu_seconds(), machine_cpu_seconds()
        if self._postgres is not None:
            await asyncio.to_thread(self._postgres.start)
        for second in range(1, stats.seconds + 1):
            await _sleep_until(stats.window_start + second)
            self._sample_memory()
            if self._postgres is not None:
                await asyncio.to_thread(self._postgres.sample)
            if second % PROGRESS_EVERY == 0 or second == stats.seconds:
                _progress(stats, second)
        return Usage(
            server_cpu_seconds=self._cpu() - server_cpu,
            server_rss_max=self._rss_max,
            server_rss_end=tree_rss_bytes(self._server.process.pid),
            client_cpu_seconds=own_cpu_seconds() - client_cpu,
            postgres_cpu_seconds=self._postgres.seconds() if self._postgres else None,
            machine_seconds=machine_cpu_delta(machine_cpu_seconds(), machine),
        )

    def _alive(self) -> int:
        if self._server.process.poll() is not None:
            raise RuntimeError(f"meshlens serve died during the run:\n{self._server.log_tail()}")
        return self._server.process.pid

    def _cpu(self) -> float:
        return tree_cpu_seconds(self._alive())

    def _sample_memory(self) -> None:
        self._rss_max = max(self._rss_max, tree_rss_bytes(self._alive()))


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


def _progress(stats: LoadStats, second: int) -> None:
    recent = stats.per_second[max(0, second - PROGRESS_EVERY) : second]
    refused = sum(stats.refused.values())
    extra = f"   {refused} refused" if refused else ""
    print(
        f"  [{second:4d}/{stats.seconds} s]  {sum(recent) / len(recent):>9,.0f} spans/s{extra}",
        flush=True,
    )


async def drive(options: Options, workload: TemplateSet, server: Server) -> tuple[LoadStats, Usage]:
    """Run the load for warm-up plus --seconds, then let in-flight requests finish."""
    postgres = await asyncio.to_thread(PostgresCpu.attach, server.database_url)
    stats = LoadStats(
        options.spans_per_request, time.perf_counter() + options.warmup, options.seconds
    )
    generator = LoadGenerator(
        workload.token,
        workload.templates,
        server.otlp_http_port,
        stats,
        grouped=workload.grouped,
    )
    connections = [asyncio.create_task(generator.connection()) for _ in range(options.connections)]
    probe = LagProbe(server)
    probing = asyncio.create_task(probe.run(generator.stop))
    try:
        usage = await Monitor(server, postgres).watch(stats)
    finally:
        generator.stop.set()
        await asyncio.gather(*connections, return_exceptions=True)
        await asyncio.gather(probing, return_exceptions=True)
        if postgres is not None:
            postgres.close()
    for task in connections:  # a bug in the generator must not pass silently
        if task.exception() is not None:
            raise RuntimeError("a load connection crashed") from task.exception()
    lag = {
        **probe.stats.summary(),
        "client_only": probe.client_only.summary(),
        "derive_passes": await derive_passes(server),
    }
    return stats, dataclasses.replace(usage, lag=lag)


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` on uvloop when it is installed (as meshlens serve does)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
