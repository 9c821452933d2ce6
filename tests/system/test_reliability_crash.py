"""Crash: `kill -9` of meshlens under sustained OpenTelemetry SDK load, three times.

Each kill lands under ingest load, while the deriver is in the middle of a pass (paired and
taken, not yet committed: see `kill_mid_derivation`).
A new `meshlens serve` starts on the same database and ports while the SDK exporters keep
going; what was in flight when the process died they retry by themselves. Then every span that
got a SUCCESS is stored exactly once, and the derived graph and service signals count every
stored request once, also after the last batches before each kill are sent again (as clients
whose answers were lost would).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from harness.waiting import wait_until
from tests.reliability_support import (
    PairMaker,
    SdkLoad,
    SpanKey,
    assert_stored_once,
    exporters,
    http_exporter,
    stored_counts,
)
from tests.support import (
    RunningServer,
    metric_total,
    restart_server,
    start_server,
    stop_server,
    unique_names,
)

KILLS = 3
SPANS_BETWEEN_KILLS = 4_000
DERIVE_INTERVAL = "0.2"  # seconds: many passes, so kills find one under way
RESOLUTIONS = (60, 600, 3600)


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_acknowledged_and_counts_once(
    database_url: str, tmp_path: Path
) -> None:
    name = unique_names()
    frontend, backend = name("frontend"), name("backend")
    server = start_server(
        database_url, tmp_path / "meshlens.log", MESHLENS_DERIVE_INTERVAL_SECONDS=DERIVE_INTERVAL
    )
    load = SdkLoad(exporters(server, 4, timeout=60), lambda: PairMaker(frontend, backend), 100)
    resends: list[Sequence[ReadableSpan]] = []
    restarts: list[float] = []
    try:
        with load:
            for kill in range(1, KILLS + 1):
                load.ledger.wait_acknowledged(kill * SPANS_BETWEEN_KILLS)
                kill_mid_derivation(server)
                resends.extend(load.ledger.acknowledged_batches[-4:])
                started = time.monotonic()
                server = restart_server(server, MESHLENS_DERIVE_INTERVAL_SECONDS=DERIVE_INTERVAL)
                restarts.append(time.monotonic() - started)
            load.ledger.wait_acknowledged((KILLS + 1) * SPANS_BETWEEN_KILLS)
            load.stop(timeout=90)
        acknowledged = load.ledger.acknowledged
        stored = check_stored_and_counted_once(server, acknowledged, frontend, backend)
        resender = http_exporter(server, timeout=30)
        for batch in resends:
            assert resender.export(batch) is SpanExportResult.SUCCESS
        resender.shutdown()
        assert check_stored_and_counted_once(server, acknowledged, frontend, backend) == stored
        pairs = stored_pairs(server, frontend, backend)
    finally:
        stop_server(server)
    print(
        f"\ncrash: {KILLS} kills mid-derivation; {len(load.ledger.emitted)} spans emitted, "
        f"{len(acknowledged)} acknowledged, {len(load.ledger.failed)} failed, "
        f"{sum(stored.values())} stored once each; {pairs} requests stored, counted once; "
        f"ready again in {max(restarts):.1f} s at most"
    )


def kill_mid_derivation(server: RunningServer) -> None:
    """SIGKILL `server` while its deriver is in the middle of a pass: the test holds the edge
    rollups (a table lock), so a pass that has paired halves and taken the inbox waits there
    to write them; it is killed waiting, with all of that done but not committed."""
    waiting = (  # in this database: tests in parallel lock the rollups of their own
        "SELECT 1 FROM pg_locks WHERE relation = 'edge_rollups'::regclass AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with psycopg.connect(server.database_url) as holder:
        holder.execute("LOCK TABLE edge_rollups IN EXCLUSIVE MODE")  # reads still pass
        with psycopg.connect(server.database_url, autocommit=True) as watcher:
            wait_until(
                lambda: watcher.execute(waiting).fetchone(),
                timeout=30,
                what="a derivation pass to come to its rollups",
                every=0.01,
            )
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        holder.rollback()


def check_stored_and_counted_once(
    server: RunningServer, acknowledged: list[SpanKey], frontend: str, backend: str
) -> Counter[SpanKey]:
    """Every acknowledged span is stored once; every stored request is counted once on the
    edge and in the service's signals, at every rollup resolution, and still so after two
    more derivation passes. Returns what is stored."""
    stored = stored_counts(server, [frontend, backend])
    assert_stored_once(stored, acknowledged)
    pairs = stored_pairs(server, frontend, backend)
    entries = stored_server_spans(server, backend)
    want = {
        "edge": dict.fromkeys(RESOLUTIONS, pairs),
        "service": dict.fromkeys(RESOLUTIONS, entries),
    }
    found: dict[str, dict[int, int]] = {}

    def counted_once() -> bool:
        found.update(derived(server, frontend, backend))
        return found == want

    wait_until(
        counted_once,
        timeout=60,
        what=lambda: f"derivation of every request: {found} != {want}",
    )
    passes = derive_passes(server)
    wait_until(
        lambda: derive_passes(server) >= passes + 2, timeout=60, what="two more derivation passes"
    )
    assert derived(server, frontend, backend) == want  # nothing counted again since
    return stored


def stored_pairs(server: RunningServer, frontend: str, backend: str) -> int:
    """Requests frontend -> backend whose client and server spans are both stored."""
    rows = server.query(
        "SELECT count(*) FROM spans c JOIN spans s"
        " ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id"
        " WHERE c.service = %s AND c.kind = 3 AND s.service = %s AND s.kind = 2",
        (frontend, backend),
    )
    return int(rows[0][0])


def stored_server_spans(server: RunningServer, backend: str) -> int:
    rows = server.query("SELECT count(*) FROM spans WHERE service = %s AND kind = 2", (backend,))
    return int(rows[0][0])


def derived(server: RunningServer, frontend: str, backend: str) -> dict[str, dict[int, int]]:
    """Requests on the edge frontend -> backend and into the backend, by rollup resolution."""
    edges = server.query(
        "SELECT resolution, sum(requests) FROM edge_rollups WHERE source = %s AND target = %s"
        " GROUP BY 1",
        (frontend, backend),
    )
    services = server.query(
        "SELECT resolution, sum(requests) FROM service_rollups WHERE service = %s"
        " AND operation = '' AND version = '' GROUP BY 1",
        (backend,),
    )
    return {
        "edge": {int(r): int(n) for r, n in edges},
        "service": {int(r): int(n) for r, n in services},
    }


def derive_passes(server: RunningServer) -> float:
    return metric_total(server, "meshlens_derive_run_seconds_count")
