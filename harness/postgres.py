"""PostgreSQL for the tests and the benchmarks: the machine's server, and throwaway databases on
it (or on any server an admin URL reaches), each uniquely named and dropped at the end."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql

MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The machine's PostgreSQL (trust authentication), used when it answers."""


def postgres_answers(url: str, timeout: int = 3) -> bool:
    """True when a PostgreSQL server answers at `url` within `timeout` seconds."""
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False


def machine_postgres_answers() -> bool:
    """True when the machine's PostgreSQL (127.0.0.1:5432, trust auth) answers."""
    return postgres_answers(MACHINE_POSTGRES, timeout=2)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (works for host:port and unix-socket URLs)."""
    scheme, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


def create_database(admin_url: str, name: str) -> str:
    """Create the empty database `name` on the server of `admin_url`; its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def drop_databases(admin_url: str, names: list[str]) -> None:
    """Drop the databases `names` (if they exist), closing their open connections."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str = "meshlens_bench") -> Iterator[str]:
    """A fresh, empty database `<prefix>_<random>` on the server of `admin_url`; dropped on
    exit, always."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_databases(admin_url, [name])


class DatabaseFactory:
    """Creates uniquely named databases on one server and drops them all at the end (the
    process id in the name keeps parallel test workers apart)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._created: list[str] = []

    def create(self) -> str:
        name = f"meshlens_test_{os.getpid()}_{secrets.token_hex(4)}"
        url = create_database(self.admin_url, name)
        self._created.append(name)
        return url

    def drop_all(self) -> None:
        drop_databases(self.admin_url, self._created)
        self._created.clear()
