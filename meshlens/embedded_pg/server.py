"""`EmbeddedPostgres`: a private PostgreSQL server in a data folder, on a unix socket.

start() locks the data folder (one meshlens per folder), creates the cluster on first use,
clears what a killed server left behind, starts the server as the account `accounts` chooses
and creates the database; stop() stops the server by its PID and unlocks the folder.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg
from psycopg import sql

from meshlens.embedded_pg.accounts import Account, launch, private_dir, reaches, server_account
from meshlens.embedded_pg.errors import EmbeddedPostgresError
from meshlens.embedded_pg.installs import Install, choose_install, reachable_install
from meshlens.embedded_pg.processes import clear_stale_lock, terminate

PORT = 5432  # only part of the socket file's name: the server has no TCP listener
START_TIMEOUT = 30.0
MAX_SOCKET_PATH = 107  # bytes in sockaddr_un.sun_path, without the final NUL
MAX_LOG_BYTES = 64 * 1024 * 1024
# A telemetry ingest store on a small machine; commits stay synchronous (we ack after commit).
SERVER_SETTINGS = (
    "listen_addresses= max_connections=100 shared_buffers=256MB synchronous_commit=on "
    "wal_compression=on max_wal_size=2GB checkpoint_timeout=15min"
)


class EmbeddedPostgres:
    """A private PostgreSQL server in `data_dir / "pg"`, reached through a unix socket."""

    def __init__(
        self, data_dir: Path, *, database: str = "meshlens", bin_dir: Path | None = None
    ) -> None:
        self.data_dir, self.database, self._bin_dir = Path(data_dir).resolve(), database, bin_dir
        self.pgdata, self.log_path = self.data_dir / "pg", self.data_dir / "pg.log"
        self.socket_dir = self.data_dir / "run"
        socket_file = os.fsencode(self.socket_dir / f".s.PGSQL.{PORT}")
        if len(socket_file) > MAX_SOCKET_PATH or b"," in socket_file:  # libpq: "," lists hosts
            digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
            self.socket_dir = Path("/tmp") / f"meshlens-{digest}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._log_offset = 0
        self._mutex = threading.Lock()

    @property
    def url(self) -> str:
        """libpq URL of the database (psycopg; SQLAlchemy with `postgresql+psycopg://`)."""
        return self._url(self.database)

    def start(self) -> str:
        """Create the cluster on first use, start the server and the database; return the URL."""
        with self._mutex:
            if self._proc is not None and self._proc.poll() is None:
                return self.url
            self._release()
            try:
                self._start()
            except BaseException:
                self._release()
                raise
            atexit.register(self.stop)
            return self.url

    def stop(self) -> None:
        """Stop the server (if this object started it) and unlock the data folder."""
        with self._mutex:
            atexit.unregister(self.stop)
            self._release()
            if self.socket_dir.parent == Path("/tmp"):
                with contextlib.suppress(OSError):  # fails while a server still has its socket
                    self.socket_dir.rmdir()

    def __enter__(self) -> EmbeddedPostgres:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the server."""
        self.stop()

    def _url(self, database: str) -> str:
        """libpq URL of `database` on the server's socket."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://postgres@/{quote(database, safe='')}?host={host}&port={PORT}"

    def _start(self) -> None:
        """The steps of start()."""
        self._lock_data_dir()
        account = server_account(self.pgdata)
        if account is not None and not reaches(account, self.data_dir):
            raise EmbeddedPostgresError(
                f"meshlens runs as root, so PostgreSQL runs as the {account.pw_name} user, who "
                f"cannot reach {self.data_dir}; set MESHLENS_DATA_DIR to a folder that user can "
                "reach (e.g. /var/lib/meshlens)"
            )
        install = reachable_install(choose_install(self._bin_dir, self.pgdata), account)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(install, account)
        private_dir(self.socket_dir, account)
        clear_stale_lock(self.pgdata / "postmaster.pid", self.pgdata)
        clear_stale_lock(self.socket_dir / f".s.PGSQL.{PORT}.lock", self.pgdata)
        self._spawn(install, account)
        self._wait_ready()
        with psycopg.connect(self._url("postgres"), autocommit=True) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if conn.execute(query, (self.database,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _lock_data_dir(self) -> None:
        """Lock the data folder until stop(): one meshlens per data folder."""
        if not self.data_dir.exists():  # the server account needs to traverse it
            self.data_dir.mkdir(parents=True, mode=0o711 if os.geteuid() == 0 else 0o700)
        fd = os.open(self.data_dir / "pg.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedPostgresError(
                f"another meshlens already uses the data folder {self.data_dir}; stop it, or "
                "give this one its own MESHLENS_DATA_DIR"
            ) from None
        self._lock_fd = fd

    def _release(self) -> None:
        """Stop and reap the server if this object started it, and unlock the data folder."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                terminate(proc)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _initdb(self, install: Install, account: Account) -> None:
        """Create the cluster in a staging folder, then move it into place."""
        with contextlib.suppress(OSError):
            self.pgdata.rmdir()  # an empty folder may be replaced
        if self.pgdata.exists():
            raise EmbeddedPostgresError(f"{self.pgdata} is not a PostgreSQL data folder; move it")
        staging = self.data_dir / "pg.initdb"
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted initdb
        private_dir(staging, account)
        cmd = [str(install.bin_dir / "initdb"), "-D", str(staging), "--auth=trust"]
        cmd += ["--username=postgres", "--encoding=UTF8", "--locale=C"]
        proc = launch(cmd, account, subprocess.PIPE)
        out = proc.communicate()[0].decode(errors="replace").splitlines()
        if proc.returncode != 0:
            raise EmbeddedPostgresError("initdb failed:\n" + "\n".join(out[-20:]))
        staging.rename(self.pgdata)

    def _spawn(self, install: Install, account: Account) -> None:
        """Start the server, its output appended to pg.log."""
        if self.log_path.exists() and self.log_path.stat().st_size > MAX_LOG_BYTES:
            self.log_path.replace(self.data_dir / "pg.log.1")
        socket_dir = '"' + str(self.socket_dir).replace('"', '""') + '"'  # -k takes a list
        cmd = [str(install.bin_dir / "postgres"), "-D", str(self.pgdata), "-k", socket_dir]
        cmd += ["-p", str(PORT), *[a for s in SERVER_SETTINGS.split() for a in ("-c", s)]]
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._log_offset = os.fstat(fd).st_size
            self._proc = launch(cmd, account, fd)
        finally:
            os.close(fd)

    def _wait_ready(self) -> None:
        """Wait until the server accepts connections; fail with the log's tail if it does not."""
        deadline = time.monotonic() + START_TIMEOUT
        while self._proc is not None and self._proc.poll() is None:
            try:
                psycopg.connect(self._url("postgres"), connect_timeout=5).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise self._failure("did not accept connections in time") from None
                time.sleep(0.1)
        raise self._failure("exited while starting")

    def _failure(self, what: str) -> EmbeddedPostgresError:
        """An error about the server, with what it logged since it was started."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            tail = log.read().decode(errors="replace").splitlines()[-20:]
        return EmbeddedPostgresError(f"PostgreSQL {what}; {self.log_path}:\n" + "\n".join(tail))
