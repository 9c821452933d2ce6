"""Edge rollups keyed by both ends' types: what the fold writes, and migration 0008 up and down.

A service `redis` (an instrumented proxy in front of Redis) and a database `redis` (client spans
with `db.system=redis`, `server.address=redis`) called by one service are two edges, two rows
per bucket, never one row typed by whichever was written last.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from psycopg.types.json import Jsonb

from alembic import command
from collector.derive.batch import RollupSignals
from collector.derive.rollup_fold import RollupFold
from harness.postgres import DatabaseFactory
from meshlens.database import Database
from meshlens.migrations import script_location, upgrade_to_head
from meshlens.signals.histogram import LatencyHistogram

MINUTE = 1_795_000_020 // 60 * 60
TO_SERVICE = ("cart", "service", "redis", "service")
TO_DATABASE = ("cart", "service", "redis", "database")


def _signals(requests: int, errors: int = 0, plaintext: int = 0, ms: int = 2) -> RollupSignals:
    latency = LatencyHistogram()
    for _ in range(requests):
        latency.add(ms * 1_000_000)
    mutual = requests - plaintext
    return RollupSignals(requests, errors, latency, [0, plaintext, 0, mutual])


def _write(url: str, fold: RollupFold) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await fold.write(conn)

    asyncio.run(run())


def _edge_rows(url: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """(resolution, source, source type, target, target type, kind) -> requests, errors,
    plaintext, reasons, histogram count."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT resolution, source, source_type, target, target_type, source_kind,"
            " requests, errors, mtls_plaintext, plaintext_reasons,"
            " (SELECT coalesce(sum(c), 0) FROM unnest(latency_counts) AS c)"
            " FROM edge_rollups"
        ).fetchall()
    return {tuple(row[:6]): tuple(row[6:]) for row in rows}


@pytest.fixture
def migrated_url(databases: DatabaseFactory) -> str:
    url = databases.create()
    engine = Database(url).sync_engine()
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    return url


def test_a_service_and_a_database_of_one_name_are_two_rows(migrated_url: str) -> None:
    fold = RollupFold()
    fold.add("edge", MINUTE, TO_SERVICE, _signals(3), "traces")
    fold.add("edge", MINUTE, TO_DATABASE, _signals(5, errors=1, plaintext=5), "traces", {"x": 5})
    _write(migrated_url, fold)
    later = RollupFold()  # a later pass adds to each row, never to the other one
    later.add("edge", MINUTE, TO_DATABASE, _signals(2, plaintext=2), "traces", {"x": 2})
    later.add("edge", MINUTE, TO_SERVICE, _signals(4, errors=2), "traces")
    _write(migrated_url, later)
    rows = _edge_rows(migrated_url)
    assert rows == {
        (resolution, *key, "traces"): counts
        for resolution in (60, 600, 3600)
        for key, counts in (
            (TO_SERVICE, (7, 2, 0, {}, 7)),
            (TO_DATABASE, (7, 1, 7, {"x": 7}, 7)),
        )
    }


# --- migration 0008 ------------------------------------------------------------------------------


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


def _revision() -> Script:
    """This migration, found by its file (its number may change when revisions are chained)."""
    for script in ScriptDirectory.from_config(_config()).walk_revisions():
        if script.path.endswith("_edge_rollups_keyed_by_node_types.py"):
            return script
    raise AssertionError("no migration keying edge_rollups by node types")


def _migrate(url: str, how: str, to: str) -> None:
    engine = Database(url).sync_engine()
    try:
        config = _config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, how)(config, to)
    finally:
        engine.dispose()


def _primary_key(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.attname FROM pg_index i"
            " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON TRUE"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = 'edge_rollups'::regclass AND i.indisprimary ORDER BY k.n"
        ).fetchall()
    return [row[0] for row in rows]


_INSERT = (
    "INSERT INTO edge_rollups (resolution, bucket_unix, source, source_type, target, target_type,"
    " source_kind, requests, errors, latency_keys, latency_counts, mtls_mutual, mtls_tls,"
    " mtls_plaintext, mtls_unknown, plaintext_reasons)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _row(key: tuple[str, str, str, str], kind: str, signals: RollupSignals, **reasons: int) -> Any:
    signal_columns = signals.columns()[:8]  # those of revision 0008 (unknown_rate came in 0009)
    return (60, MINUTE, *key, kind, *signal_columns, Jsonb(reasons))


def _all(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT * FROM edge_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall()


@pytest.fixture
def before_url(databases: DatabaseFactory) -> str:
    """A database at the revision before this migration."""
    url = databases.create()
    _migrate(url, "upgrade", str(_revision().down_revision))
    return url


def test_the_migration_keeps_every_row_and_widens_the_key(before_url: str) -> None:
    old = [
        _row(TO_SERVICE, "traces", _signals(3)),
        _row(TO_SERVICE, "mesh-metrics", _signals(4, plaintext=1), no_identity=1),
        _row(("user", "client", "cart", "service"), "traces", _signals(9)),
    ]
    with psycopg.connect(before_url) as conn:
        conn.cursor().executemany(_INSERT, old)
    stored = _all(before_url)
    assert _primary_key(before_url) == [
        "resolution",
        "bucket_unix",
        "source",
        "target",
        "source_kind",
    ]
    _migrate(before_url, "upgrade", _revision().revision)
    assert _all(before_url) == stored
    assert _primary_key(before_url) == [
        "resolution",
        "bucket_unix",
        "source",
        "source_type",
        "target",
        "target_type",
        "source_kind",
    ]
    with psycopg.connect(before_url) as conn:  # the database redis beside the service redis
        conn.execute(_INSERT, _row(TO_DATABASE, "traces", _signals(5, errors=1, plaintext=5)))
    assert len(_all(before_url)) == 4


def test_the_downgrade_merges_what_only_the_types_tell_apart(before_url: str) -> None:
    _migrate(before_url, "upgrade", _revision().revision)
    rows = [
        _row(TO_SERVICE, "traces", _signals(3, ms=2), no_identity=1),
        _row(TO_DATABASE, "traces", _signals(5, errors=1, plaintext=5, ms=40), no_identity=2),
        _row(("cart", "service", "redis", "external"), "traces", _signals(1, ms=2), disabled=1),
        _row(TO_SERVICE, "mesh-metrics", _signals(4)),  # alone under its narrow key
    ]
    with psycopg.connect(before_url) as conn:
        conn.cursor().executemany(_INSERT, rows)
    _migrate(before_url, "downgrade", str(_revision().down_revision))
    merged = _signals(3, ms=2)
    merged.merge(_signals(5, errors=1, plaintext=5, ms=40))
    merged.merge(_signals(1, ms=2))
    assert _primary_key(before_url) == [
        "resolution",
        "bucket_unix",
        "source",
        "target",
        "source_kind",
    ]
    assert (
        _all(before_url)
        == [
            (  # the types of the row with the most requests: the database's
                60,
                MINUTE,
                *TO_DATABASE,
                "traces",
                *merged.columns()[:8],
                {"no_identity": 3, "disabled": 1},
            ),
            (60, MINUTE, *TO_SERVICE, "mesh-metrics", *_signals(4).columns()[:8], {}),
        ]
    )
    _migrate(before_url, "upgrade", _revision().revision)  # and up again
    assert len(_all(before_url)) == 2
