"""The layout's rules that import contracts cannot see (those are checked by `lint-imports`).

- Signals are read through the read layer: SQL over the tables ingest and derivation write
  (spans, points, inboxes, rollups) appears only in the collector, `meshlens/read` and the
  kernel's schema and partitions; the API, the dashboards and alerting hold none.
- Product modules stay small (house style: about 400 lines); declarations (the schema) aside.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("meshlens", "collector", "api", "dashboards", "alerting")
TELEMETRY_TABLES = re.compile(
    r"\b(spans|metric_points|metric_series|series_cursors|resources|senders|"
    r"edge_halves(_inbox)?|rollup_inbox|metric_points_inbox|saturation_inbox|"
    r"service_rollups|edge_rollups|saturation_rollups)\b"
)
SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|DELETE\s+FROM|UPDATE|COPY)\b")
MAY_READ_TELEMETRY = (
    "collector/",
    "meshlens/read/",
    "meshlens/schema.py",
    "meshlens/partitions.py",
)
MAX_LINES = 400
DECLARATIONS = {"meshlens/schema.py"}  # the tables, one declaration each


def _modules() -> list[Path]:
    return sorted(p for top in PRODUCT for p in (REPO / top).rglob("*.py"))


def _sql_over_telemetry(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if SQL.search(text) and TELEMETRY_TABLES.search(text):
                found.append(f"{name}:{node.lineno}: {text.strip()[:60]!r}")
    return found


def test_only_the_collector_and_the_read_layer_query_telemetry_tables() -> None:
    outside = [p for p in _modules() if not str(p.relative_to(REPO)).startswith(MAY_READ_TELEMETRY)]
    offending = [
        hit
        for path in outside
        for hit in _sql_over_telemetry(path.read_text(), str(path.relative_to(REPO)))
    ]
    assert offending == [], "read signals through meshlens.read:\n" + "\n".join(offending)


def test_the_check_finds_sql_over_telemetry() -> None:
    """The rule above can fail: a page module that selects from the rollups is caught."""
    page = 'QUERY = "SELECT requests FROM service_rollups WHERE resolution = 60"\n'
    assert _sql_over_telemetry(page, "dashboards/page.py") == [
        "dashboards/page.py:1: 'SELECT requests FROM service_rollups WHERE resolution = 60'"
    ]
    assert _sql_over_telemetry('HELP = "the service rollups"\n', "dashboards/help.py") == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_product_modules_stay_small(path: Path) -> None:
    relative = str(path.relative_to(REPO))
    lines = len(path.read_text().splitlines())
    if relative not in DECLARATIONS:
        assert lines <= MAX_LINES, f"{relative} has {lines} lines: split it by what it does"
