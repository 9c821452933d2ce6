"""PostgreSQL for the benchmark: the server to run on (a throwaway database on it is
`harness.postgres.throwaway_database`), and what the reports read of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict

from harness.postgres import MACHINE_POSTGRES, postgres_answers


class DatabaseChoice(Protocol):
    """The options that say which PostgreSQL server to run on (every bench's command line)."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def embedded(self) -> bool: ...


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
