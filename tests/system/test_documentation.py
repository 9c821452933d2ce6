"""Every setting is documented (README and `meshlens serve --help`); code and schema agree; CI
runs the README's test command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from sqlalchemy import inspect

from collector.rows import POINT_COLUMNS, SPAN_COLUMNS
from collector.series_budget import FOLDED_POINT_COLUMNS
from harness.repo import REPO
from meshlens.database import Database
from meshlens.migrations import current_revision, head_revision, upgrade_to_head
from meshlens.schema import metadata
from meshlens.settings import Settings
from tests.support import run_meshlens


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"MESHLENS_{name.upper()}" not in readme]
    assert missing == []


def test_every_setting_is_in_serve_help() -> None:
    shown = run_meshlens("serve", "--help")
    assert shown.returncode == 0, shown.stderr
    help_text = shown.stdout
    for name, field in Settings.model_fields.items():
        assert f"--{name.replace('_', '-')}" in help_text
        assert f"MESHLENS_{name.upper()}" in help_text.replace("\n", "").replace(" ", "")
        assert field.description


def test_bad_setting_is_a_clear_error() -> None:
    result = run_meshlens("serve", "--otlp-http-port", "ninety")
    assert result.returncode == 2
    assert "otlp_http_port (MESHLENS_OTLP_HTTP_PORT)" in result.stderr


FAKE_README = """# a project

```sh
echo decoy-before
```

<!-- test command: .ci/run runs the line below verbatim -->
```sh
{command}
```

```sh
echo decoy-after
```
"""


def ci_run(
    checkout: Path, readme: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`.ci/run` of this repository, run in `checkout` (a folder of its own) whose README.md is
    `readme`; `path` replaces the PATH it finds commands on."""
    (checkout / ".ci").mkdir(exist_ok=True)
    shutil.copy2(REPO / ".ci" / "run", checkout / ".ci" / "run")
    (checkout / "README.md").write_text(readme)
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    return subprocess.run(
        ["/bin/bash", str(checkout / ".ci" / "run")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def readme_test_command(readme: str) -> str:
    """The README's test command as a reader finds it: the sh block after the marker."""
    after_marker = readme.split("<!-- test command", 1)[1]
    return after_marker.split("```sh\n", 1)[1].split("\n```", 1)[0]


def test_ci_runs_the_readme_test_command_and_nothing_else(tmp_path: Path) -> None:
    command = 'echo "marker $((6 * 7))" && echo second'
    done = ci_run(tmp_path, FAKE_README.format(command=command))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"+ {command}\nmarker 42\nsecond\n"


def test_ci_fails_when_the_command_fails_or_is_missing(tmp_path: Path) -> None:
    failed = ci_run(tmp_path, FAKE_README.format(command="echo ran && exit 3"))
    assert (failed.returncode, failed.stdout) == (3, "+ echo ran && exit 3\nran\n")
    missing = ci_run(tmp_path, FAKE_README.replace("<!-- test command", "<!-- a command"))
    assert missing.returncode == 1
    assert "no test command found in README.md" in missing.stderr


def test_ci_hands_bash_exactly_the_readme_test_command(tmp_path: Path) -> None:
    """The README of this repository, with a `bash` on the PATH that only records its
    arguments: .ci/run extracts the README's command verbatim and runs it with `bash -c`."""
    fake_bin, checkout = tmp_path / "bin", tmp_path / "checkout"
    fake_bin.mkdir()
    checkout.mkdir()
    record = tmp_path / "bash-arguments"
    bash = fake_bin / "bash"
    bash.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    bash.chmod(0o755)
    readme = (REPO / "README.md").read_text()
    done = ci_run(checkout, readme, path=f"{fake_bin}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    command = readme_test_command(readme)
    assert command.startswith("python3 -m venv .venv && ")
    assert record.read_text() == f"-c\n{command}\n"
    assert done.stdout == f"+ {command}\n"


def test_migrations_match_the_schema_description(database_url: str) -> None:
    engine = Database(database_url).sync_engine()
    try:
        upgrade_to_head(engine)
        upgrade_to_head(engine)  # idempotent
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            live = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            described = {c.name: c.nullable for c in table.columns}
            assert live == described, table.name
            live_indexes = {
                index["name"]: tuple(index["column_names"])
                for index in inspector.get_indexes(table.name)
            }
            described_indexes = {
                index.name: tuple(column.name for column in index.columns)
                for index in table.indexes
            }
            assert live_indexes == described_indexes, table.name
            live_key = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert live_key == [column.name for column in table.primary_key], table.name
    finally:
        engine.dispose()
    with psycopg.connect(database_url) as conn:
        # points of their own series are COPYed without the last column (overflow_key, 0)
        assert FOLDED_POINT_COLUMNS[:-1] == POINT_COLUMNS
        for table, columns in (("spans", SPAN_COLUMNS), ("metric_points", FOLDED_POINT_COLUMNS)):
            cursor = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            assert cursor.description is not None
            assert tuple(c.name for c in cursor.description) == columns
