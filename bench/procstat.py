"""CPU time and memory of processes on this machine, read from /proc."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} reports no VmRSS")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (meshlens's decode workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its descendants."""
    return sum(_quietly(cpu_seconds, p) for p in process_tree(pid))


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants, added up."""
    return sum(int(_quietly(rss_bytes, p)) for p in process_tree(pid))


def _quietly(read: Callable[[int], float], pid: int) -> float:
    try:
        return read(pid)
    except (OSError, RuntimeError):  # the process exited between listing and reading
        return 0


def own_cpu_seconds() -> float:
    """CPU time of this process (every thread)."""
    times = os.times()
    return times.user + times.system


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU time of the whole machine (every core): busy, and idle waiting for I/O."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, iowait = ticks[3], ticks[4]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - idle - iowait) / CLOCK_TICKS, iowait / CLOCK_TICKS


def machine_cpu_delta(end: tuple[float, ...], begin: tuple[float, ...]) -> tuple[float, float]:
    """The machine's CPU time (busy, iowait) between two readings of machine_cpu_seconds()."""
    busy, iowait = (e - b for e, b in zip(end, begin, strict=True))
    return busy, iowait


class PostgresCpu:
    """CPU time of the PostgreSQL processes working for the bench database, from /proc.

    Counts the backends connected to the database (the server's writers and API pool) and the
    cluster's WAL writer, checkpointer and background writer, which write what they commit.
    Only possible when PostgreSQL runs on this machine.
    """

    QUERY = (
        "SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
        "(datname = current_database() "
        " OR backend_type IN ('walwriter', 'checkpointer', 'background writer'))"
    )

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._kind: dict[int, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, url: str) -> PostgresCpu | None:
        """A probe for the database at `url`, or None when its processes are not readable."""
        host = str(conninfo_to_dict(url).get("host") or "")
        if not (host == "" or host.startswith("/") or host in {"127.0.0.1", "localhost", "::1"}):
            return None  # the pids it reports are another machine's
        probe = cls(psycopg.connect(url, autocommit=True))
        if not probe._read():
            probe.close()
            return None
        return probe

    def close(self) -> None:
        self._conn.close()

    def start(self) -> None:
        """Start counting from now."""
        with self._lock:
            self._first, self._last, self._kind = {}, {}, {}
        self.sample()

    def sample(self) -> None:
        """Take a reading; call often enough to see short-lived backends."""
        readings = self._read()
        with self._lock:
            started = bool(self._first)
            for pid, (kind, seconds) in readings.items():
                self._first.setdefault(pid, seconds if not started else 0.0)
                self._last[pid] = seconds
                self._kind[pid] = kind

    def seconds(self) -> dict[str, float]:
        """CPU seconds since start(), as {"backends": .., "background": ..}."""
        totals = {"backends": 0.0, "background": 0.0}
        with self._lock:
            for pid, last in self._last.items():
                totals[self._kind[pid]] += last - self._first[pid]
        return totals

    def _read(self) -> dict[int, tuple[str, float]]:
        readings = {}
        for pid, backend_type in self._conn.execute(self.QUERY).fetchall():
            kind = "backends" if backend_type == "client backend" else "background"
            try:
                if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
                    continue
                readings[pid] = (kind, cpu_seconds(pid))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return readings
