"""Databases for the tests: the machine's PostgreSQL when it answers, else an embedded one.

Every test run creates its own databases (unique names) and drops them at the end; nothing is
shared with another run or left dirty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import (
    MACHINE_POSTGRES,
    DatabaseFactory,
    machine_postgres_answers,
    with_database,
)
from tests.support import FAST_DERIVATION, RunningServer, reachable_temp_dir, running_server


@pytest.fixture(scope="session")
def databases() -> Iterator[DatabaseFactory]:
    if machine_postgres_answers():
        factory = DatabaseFactory(MACHINE_POSTGRES)
        yield factory
        factory.drop_all()
        return
    from meshlens.embedded_pg import EmbeddedPostgres

    with reachable_temp_dir() as folder, EmbeddedPostgres(folder) as server:
        factory = DatabaseFactory(with_database(server.url, "postgres"))
        yield factory
        factory.drop_all()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    """A fresh, empty database for one test."""
    return databases.create()


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`meshlens serve` on a fresh database, shared by the tests of one module."""
    log_path: Path = tmp_path_factory.mktemp("serve") / "meshlens.log"
    with running_server(databases.create(), log_path) as running:
        yield running


@pytest.fixture(scope="module")
def twin_servers(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two collector processes on one database, deriving fast, shared by a module's tests."""
    url = databases.create()
    logs = tmp_path_factory.mktemp("twins")
    with (
        running_server(url, logs / "a.log", **FAST_DERIVATION) as first,
        running_server(url, logs / "b.log", **FAST_DERIVATION) as second,
    ):
        yield first, second
