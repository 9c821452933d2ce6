"""Stopping embedded PostgreSQL servers by PID, and clearing what a killed one left behind.

A meshlens killed with -9 leaves the server's lock files (postmaster.pid, the socket's .lock),
and perhaps the server itself, still running on the data folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from meshlens.embedded_pg.errors import EmbeddedPostgresError

STOP_STEPS = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))  # signal, wait

log = logging.getLogger("meshlens.embedded_pg")


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


def clear_stale_lock(lock_file: Path, pgdata: Path) -> None:
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


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server by PID: fast shutdown (SIGINT), then SIGQUIT, then SIGKILL."""
    for sig, timeout in STOP_STEPS:
        proc.send_signal(sig)  # does nothing once the process has been reaped
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
            return
    raise EmbeddedPostgresError(f"PostgreSQL (PID {proc.pid}) did not stop, even on SIGKILL")
