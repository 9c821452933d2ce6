"""Nodes of one name and different types through the JSON API, on known rollup rows.

The mesh, every minute of the 10 before 12:00 UTC on 2026-11-26:
- `redis` is a service (an instrumented proxy in front of Redis): 5 entry spans a minute, all
  from `cart` (traces), which mesh metrics count as 4 a minute (the service's counts then come
  from the metrics: 4 a minute);
- `redis` is also a database: 7 calls a minute from `cart` (client spans with
  `db.system=redis`, `server.address=redis`), plaintext, one failing;
- `payments` is a service (2 entry spans a minute, from `checkout`) and an external node
  (3 calls a minute from `checkout` naming `peer.service=payments` without a server half);
- utilization gauges of `redis` (0.5) and `payments` (0.25): services' own.
Expected values are spelled out from that list.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.postgres import DatabaseFactory
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from tests import rollup_scenario as scenario
from tests.api import in_process
from tests.rollup_scenario import MS, MUTUAL, PLAINTEXT, Reading, Request, T

MINUTES = [T - 600 + 60 * i for i in range(10)]
WINDOW = "window=10m&end=2026-11-26T12:00:00Z"
LATER = T + 3600


def _requests() -> list[Request]:
    found = []
    for minute in MINUTES:
        for _ in range(5):
            found.append(Request(minute, "redis", MS, False, MUTUAL, "GET", "7.2"))
            found.append(Request(minute, "redis", 2 * MS, False, MUTUAL, source="cart",
                                 source_type="service"))  # fmt: skip
        for _ in range(4):
            found.append(Request(minute, "redis", 2 * MS, False, MUTUAL, source="cart",
                                 source_type="service", kind="mesh-metrics"))  # fmt: skip
        for j in range(7):
            found.append(Request(minute, "redis", MS, j == 0, PLAINTEXT, source="cart",
                                 source_type="service", target_type="database"))  # fmt: skip
        for _ in range(2):
            found.append(Request(minute, "payments", 30 * MS, False, MUTUAL, "POST /pay", "1"))
            found.append(Request(minute, "payments", 31 * MS, False, MUTUAL, source="checkout",
                                 source_type="service"))  # fmt: skip
        for _ in range(3):
            found.append(Request(minute, "payments", 80 * MS, True, MUTUAL, source="checkout",
                                 source_type="service", target_type="external"))  # fmt: skip
    return found


def _readings() -> list[Reading]:
    return [Reading(m, s, v) for m in MINUTES for s, v in (("redis", 0.5), ("payments", 0.25))]


@pytest.fixture(scope="module")
def url(databases: DatabaseFactory) -> str:
    found = databases.create()
    engine = Database(found).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    scenario.insert(found, _requests(), _readings())
    return found


def _get(url: str, path: str) -> httpx.Response:
    return in_process.get(url, path, LATER)


def _ok(url: str, path: str) -> Any:
    return in_process.get_ok(url, path, LATER)


def _ends(edges: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(e["source"], e["source_type"], e["target"], e["target_type"]) for e in edges]


def test_the_graph_has_a_node_per_name_and_type(url: str) -> None:
    answer = _ok(url, f"/api/v1/graph?{WINDOW}")
    nodes = [(n["id"], n["name"], n["type"], n["requests"]) for n in answer["nodes"]]
    assert nodes == [
        ("cart", "cart", "service", 0),
        ("checkout", "checkout", "service", 0),
        ("payments", "payments", "service", 20),
        ("external:payments", "payments", "external", 30),
        ("redis", "redis", "service", 40),  # its inbound mesh metrics, not its 50 entry spans
        ("database:redis", "redis", "database", 70),
    ]
    by_id = {n["id"]: n for n in answer["nodes"]}
    assert by_id["redis"]["signals_from"] == "entry-spans"
    assert by_id["database:redis"]["signals_from"] == "inbound-edges"
    assert by_id["database:redis"]["errors"] == 10
    assert by_id["database:redis"]["mtls"]["plaintext"] == 70
    assert by_id["redis"]["saturation"] == 0.5  # the service's gauges, not the database's
    assert by_id["database:redis"]["saturation"] is None
    assert by_id["payments"]["saturation"] == 0.25
    assert by_id["external:payments"]["saturation"] is None
    edges = answer["edges"]
    assert _ends(edges) == [
        ("cart", "service", "redis", "service"),
        ("cart", "service", "redis", "database"),
        ("checkout", "service", "payments", "service"),
        ("checkout", "service", "payments", "external"),
    ]
    assert [(e["source_id"], e["target_id"]) for e in edges] == [
        ("cart", "redis"),
        ("cart", "database:redis"),
        ("checkout", "payments"),
        ("checkout", "external:payments"),
    ]
    # mesh metrics count the edge to the service; the database's traces still count
    assert [(e["requests"], e["errors"], e["sources"]) for e in edges] == [
        (40, 0, ["mesh-metrics", "traces"]),
        (70, 10, ["traces"]),
        (20, 0, ["traces"]),
        (30, 30, ["traces"]),
    ]
    assert [e["latency_ms"]["p50"] is not None for e in edges] == [True] * 4
    assert set(by_id) == {e["source_id"] for e in edges} | {e["target_id"] for e in edges}


def test_services_are_the_service_nodes(url: str) -> None:
    answer = _ok(url, f"/api/v1/services?{WINDOW}")
    services = [(s["name"], s["requests"]) for s in answer["services"]]
    assert services == [("cart", 0), ("checkout", 0), ("payments", 20), ("redis", 40)]


def test_a_name_alone_is_the_service_and_type_picks_the_other(url: str) -> None:
    service = _ok(url, f"/api/v1/services/redis?{WINDOW}")
    assert (service["type"], service["requests"], service["saturation"]) == ("service", 40, 0.5)
    assert service["sampling"]["source"] == "mesh-metrics"
    assert _ends(service["upstream"]) == [("cart", "service", "redis", "service")]
    # operations and versions come from the entry spans, their shares of the 50 entry spans
    assert [(o["operation"], o["requests"], o["share"]) for o in service["operations"]] == [
        ("GET", 50, 1.0)
    ]
    assert [(v["version"], v["requests"], v["share"]) for v in service["versions"]] == [
        ("7.2", 50, 1.0)
    ]
    assert service["versions"][0]["sampling"]["source"] == "traces"
    assert _ok(url, f"/api/v1/services/redis?type=service&{WINDOW}") == service

    database = _ok(url, f"/api/v1/services/redis?type=database&{WINDOW}")
    assert (database["type"], database["requests"], database["errors"]) == ("database", 70, 10)
    assert database["signals_from"] == "inbound-edges"
    assert database["saturation"] is None
    assert _ends(database["upstream"]) == [("cart", "service", "redis", "database")]
    assert database["downstream"] == database["operations"] == database["versions"] == []

    external = _ok(url, f"/api/v1/services/payments?type=external&{WINDOW}")
    assert (external["type"], external["requests"], external["errors"]) == ("external", 30, 30)
    cart = _ok(url, f"/api/v1/services/cart?{WINDOW}")
    assert _ends(cart["downstream"]) == [
        ("cart", "service", "redis", "service"),
        ("cart", "service", "redis", "database"),
    ]


def test_series_of_each_node(url: str) -> None:
    service = _ok(url, f"/api/v1/services/redis/series?step=5m&{WINDOW}")
    assert (service["type"], service["signals_from"]) == ("service", "entry-spans")
    assert [p["requests"] for p in service["points"]] == [20, 20]  # the mesh metrics'
    assert [p["saturation"] for p in service["points"]] == [0.5, 0.5]
    database = _ok(url, f"/api/v1/services/redis/series?type=database&step=5m&{WINDOW}")
    assert (database["type"], database["signals_from"]) == ("database", "inbound-edges")
    assert [p["requests"] for p in database["points"]] == [35, 35]
    assert [p["errors"] for p in database["points"]] == [5, 5]
    assert [p["saturation"] for p in database["points"]] == [None, None]
    external = _ok(url, f"/api/v1/services/payments/series?type=external&step=5m&{WINDOW}")
    assert [p["requests"] for p in external["points"]] == [15, 15]


def test_nodes_seen_before_the_window(url: str) -> None:
    empty = "window=1m&end=2026-11-26T12:30:00Z"
    service = _ok(url, f"/api/v1/services/redis?{empty}")
    assert (service["type"], service["requests"]) == ("service", 0)
    database = _ok(url, f"/api/v1/services/redis?type=database&{empty}")
    assert (database["type"], database["requests"]) == ("database", 0)
    series = _ok(url, f"/api/v1/services/redis/series?type=database&{empty}")
    assert series["type"] == "database"
    assert [p["requests"] for p in series["points"]] == [0]
    assert _get(url, f"/api/v1/services/redis?type=external&{empty}").status_code == 404


@pytest.mark.parametrize(
    "query", ["type=messaging", "type=%00", "type=servic", "type=" + "x" * 1000, "type=%ED%A0%80"]
)
def test_a_type_the_name_never_had_is_404(url: str, query: str) -> None:
    for path in ("/api/v1/services/redis", "/api/v1/services/redis/series"):
        answer = _get(url, f"{path}?{query}&{WINDOW}")
        assert answer.status_code == 404, answer.text
        assert answer.json()["status"] == 404
        assert "redis" in answer.json()["message"]


def test_mtls_keeps_the_edges_apart(url: str) -> None:
    answer = _ok(url, f"/api/v1/mtls?step=5m&{WINDOW}")
    assert _ends(answer["edges"]) == [
        ("cart", "service", "redis", "service"),
        ("cart", "service", "redis", "database"),
        ("checkout", "service", "payments", "service"),
        ("checkout", "service", "payments", "external"),
    ]
    assert _ends(answer["plaintext_edges"]) == [("cart", "service", "redis", "database")]
    assert answer["plaintext"] == 70
    assert answer["mutual"] == 40 + 20 + 30
