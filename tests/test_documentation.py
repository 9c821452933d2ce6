"""Every setting is documented (README and `meshlens serve --help`); code and schema agree."""

from __future__ import annotations

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


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "README.md" in ci


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
    finally:
        engine.dispose()
    with psycopg.connect(database_url) as conn:
        # points of their own series are COPYed without the last column (overflow_key, 0)
        assert FOLDED_POINT_COLUMNS[:-1] == POINT_COLUMNS
        for table, columns in (("spans", SPAN_COLUMNS), ("metric_points", FOLDED_POINT_COLUMNS)):
            cursor = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            assert cursor.description is not None
            assert tuple(c.name for c in cursor.description) == columns
