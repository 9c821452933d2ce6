"""Who runs the embedded PostgreSQL, and starting a command as that account.

PostgreSQL refuses to run as root: when meshlens runs as root, initdb and the server run as the
cluster's owner, else the `postgres` account, else `nobody`. No account is ever created.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import subprocess
from pathlib import Path

from meshlens.embedded_pg.errors import EmbeddedPostgresError

Account = pwd.struct_passwd | None  # who runs initdb and the server; None: this process's user


def server_account(pgdata: Path) -> Account:
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


def launch(cmd: list[str], account: Account, output: int) -> subprocess.Popen[bytes]:
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


def reaches(account: pwd.struct_passwd, *paths: Path) -> bool:
    """Whether `account` may search (or run) every one of `paths`, as `test -x` says."""
    script = 'for p do test -x "$p" || exit 1; done'
    cmd = ["sh", "-c", script, "sh", *map(str, paths)]
    return launch(cmd, account, subprocess.DEVNULL).wait() == 0


def private_dir(path: Path, account: Account) -> None:
    """Create `path` (mode 0700) for the server account; refuse one planted by someone else."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info, owner = path.lstat(), (account.pw_uid if account else os.geteuid())
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (owner, os.geteuid()):
        raise EmbeddedPostgresError(f"{path} is not a folder owned by uid {owner}; remove it")
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(0o700)
