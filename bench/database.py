"""PostgreSQL for the benchmark: the server to run on, and a throwaway database on it."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.support import MACHINE_POSTGRES, with_database


class DatabaseChoice(Protocol):
    """The options that say which PostgreSQL server to run on (every bench's command line)."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def embedded(self) -> bool: ...


def postgres_answers(url: str) -> bool:
    """True when a PostgreSQL server answers at `url`."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def postgres_server(options: DatabaseChoice, workdir: Path) -> Iterator[str]:
    """An admin URL of the server to benchmark on (an embedded one is stopped on exit)."""
    if options.database_url is not None:
        if not postgres_answers(options.database_url):
            raise SystemExit(f"no PostgreSQL answers at {redacted(options.database_url)}")
        yield options.database_url
        return
    if not options.embedded and postgres_answers(MACHINE_POSTGRES):
        yield MACHINE_POSTGRES
        return
    from meshlens.embedded_pg import EmbeddedPostgres  # only needed without a machine server

    print("starting an embedded PostgreSQL for the run", flush=True)
    workdir.chmod(0o711)  # when run as root, the server account must reach its data folder
    with EmbeddedPostgres(workdir / "pg", database="postgres") as server:
        yield server.url


@contextlib.contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of `admin_url`; dropped on exit, always."""
    name = f"meshlens_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def redacted(url: str) -> str:
    """`url` without its password."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "local socket"
    return f"{params.get('user', '')}@{host}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def count_spans(url: str) -> int:
    """Spans stored by the load (the derivation-lag probes' own spans are not counted)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM spans WHERE service NOT LIKE 'lag-probe-%'"
        ).fetchone()
    return int(row[0]) if row else 0


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"
