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

# The files that take longest (20 s to 100 s each on 2 cores with four workers), longest first.
# `pytest -n 4 --dist loadfile` runs a whole file on one worker and hands out files in the order
# of the collection: these go out first, so the short files fill the gaps at the end instead of
# one long file starting last and running alone (which cost about a minute). A file missing
# here only loses its head start; a renamed one is simply scheduled in its usual place.
LONGEST_FIRST = (
    "tests/api/test_api_fuzz.py",
    "tests/collector/test_derivation.py",
    "tests/meshlens/test_embedded_pg.py",
    "tests/system/test_reliability_outage.py",
    "tests/dashboards/test_dashboards_browser.py",
    "tests/collector/test_mesh_metrics.py",
    "tests/alerting/test_alerting_flow.py",
    "tests/collector/unit/test_decoder_fuzz.py",
    "tests/collector/test_cardinality.py",
    "tests/alerting/test_alerting_durability.py",
    "tests/system/test_soak.py",
    "tests/meshlens/test_demo.py",
    "tests/collector/test_unpaired_calls.py",
    "tests/system/test_sampling_e2e.py",
    "tests/collector/test_proxy_hops.py",
    "tests/collector/test_bad_input.py",
    "tests/meshlens/test_tls.py",
    "tests/system/test_reliability_crash.py",
    "tests/dashboards/test_sampling_browser.py",
    "tests/system/test_same_name_nodes.py",
    "tests/collector/test_durability.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist otherwise reorders the files by their number of tests, which puts many quick
    # tests first and the long files wherever they fall
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (see LONGEST_FIRST), every other file after them in its usual
    order; the order of the tests within a file is kept."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    first = len(rank)
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], first))


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
