"""The JSON API on known rollup rows: exact counts, rates, percentiles, shares, windows, errors.

Expected values are computed from the scenario's list of requests (tests/rollup_scenario.py),
never from the code under test; a handful are spelled out as literals too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from harness.postgres import DatabaseFactory
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from meshlens.signals.histogram import LatencyHistogram
from tests import rollup_scenario as scenario
from tests.api import in_process
from tests.rollup_scenario import Request, T, highest, latency_ms, summed

REQUESTS = scenario.requests()
READINGS = scenario.readings()
LATER = T + 3600  # the clock of most tests: every window below ends in the past


def _migrated(url: str) -> str:
    engine = Database(url).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def mesh_url(databases: DatabaseFactory) -> str:
    url = _migrated(databases.create())
    scenario.insert(url, REQUESTS, READINGS)
    return url


def _get(url: str, path: str, now: float = LATER) -> httpx.Response:
    return in_process.get(url, path, now)


def _ok(url: str, path: str, now: float = LATER) -> Any:
    return in_process.get_ok(url, path, now)


def _select(lo: int, hi: int, match: Callable[[Request], bool]) -> list[Request]:
    return [r for r in REQUESTS if lo <= r.minute < hi and match(r)]


def _entry(service: str, lo: int, hi: int, **fields: str) -> list[Request]:
    return _select(
        lo,
        hi,
        lambda r: (
            not r.source
            and r.target == service
            and all(getattr(r, k) == v for k, v in fields.items())
        ),
    )


def _edge(source: str, target: str, kind: str, lo: int, hi: int) -> list[Request]:
    return _select(lo, hi, lambda r: (r.source, r.target, r.kind) == (source, target, kind))


def _assert_signals(answer: dict[str, Any], expected: list[Request], seconds: float) -> None:
    total = summed(expected)
    assert answer["requests"] == total.requests
    assert answer["errors"] == total.errors
    assert answer["error_rate"] == (total.errors / total.requests if total.requests else None)
    assert answer["rps"] == total.requests / seconds
    assert answer["latency_ms"] == latency_ms(expected)


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


# --- services and windows ----------------------------------------------------------------------


def test_services_over_15_minutes(mesh_url: str) -> None:
    answer = _ok(mesh_url, "/api/v1/services?window=15m&end=2026-11-26T12:00:00Z")
    assert answer["window"] == {
        "start": "2026-11-26T11:45:00Z",
        "end": "2026-11-26T12:00:00Z",
        "start_unix": T - 900,
        "end_unix": T,
        "seconds": 900.0,
    }
    services = _by(answer["services"], "name")
    assert list(services) == ["cart", "checkout", "inventory"]
    checkout = services["checkout"]
    assert checkout["requests"] == 300  # 10 + 20 + 30 a minute, five times
    assert checkout["rps"] == 300 / 900
    _assert_signals(checkout, _entry("checkout", T - 900, T), 900)
    assert checkout["saturation"] == highest(READINGS, "checkout", T - 900, T) == 0.99
    assert checkout["signals_from"] == "entry-spans"
    assert checkout["mtls"] == {
        "mutual": 230,
        "tls": 0,
        "plaintext": 0,
        "unknown": 70,  # j % 4 == 3: 2, 5 and 7 of 10, 20 and 30 requests
        "coverage": 1.0,
    }
    _assert_signals(services["cart"], _entry("cart", T - 900, T), 900)
    assert services["cart"]["mtls_coverage"] == pytest.approx(
        services["cart"]["mtls"]["mutual"] / services["cart"]["requests"]
    )
    inventory = services["inventory"]  # mesh metrics only: the sum of its inbound edges
    assert inventory["signals_from"] == "inbound-edges"
    assert inventory["requests"] == 45
    _assert_signals(inventory, _edge("checkout", "inventory", "mesh-metrics", T - 900, T), 900)
    assert inventory["mtls_coverage"] == 1.0
    assert inventory["saturation"] is None  # no utilization gauges
    assert services["cart"]["saturation"] == highest(READINGS, "cart", T - 900, T)


def test_minutes_just_outside_the_window_do_not_count(mesh_url: str) -> None:
    one = _by(_ok(mesh_url, f"/api/v1/services?window=1m&end={T}")["services"], "name")
    two = _by(_ok(mesh_url, f"/api/v1/services?window=2m&end={T}")["services"], "name")
    assert one["checkout"]["requests"] == len(_entry("checkout", T - 60, T)) == 30
    assert two["checkout"]["requests"] == len(_entry("checkout", T - 120, T)) == 50


def test_three_hours_mixing_all_resolutions_count_each_request_once(mesh_url: str) -> None:
    # 08:29-11:29: minute 08:29, 10-minute rows 08:30-08:50, hours 09 and 10, 10-minute rows
    # 11:00 and 11:10, minutes 11:20-11:28
    end = T - 1860
    answer = _ok(mesh_url, f"/api/v1/graph?window=3h&end={end}")
    nodes = _by(answer["nodes"], "id")
    _assert_signals(nodes["checkout"], _entry("checkout", end - 10800, end), 10800)
    _assert_signals(nodes["cart"], _entry("cart", end - 10800, end), 10800)
    for service in ("checkout", "cart"):
        assert nodes[service]["saturation"] == highest(READINGS, service, end - 10800, end)
    edges = {(e["source"], e["target"]): e for e in answer["edges"]}
    expected = _edge("checkout", "cart", "mesh-metrics", end - 10800, end)
    _assert_signals(edges[("checkout", "cart")], expected, 10800)


def test_a_day_reads_hours_and_the_ragged_minutes(mesh_url: str) -> None:
    end = T + 300  # 12:05: every request before it, from hours 08-11 and minutes 12:00-12:04
    services = _by(_ok(mesh_url, f"/api/v1/services?window=24h&end={end}")["services"], "name")
    _assert_signals(services["checkout"], _entry("checkout", 0, end), 86400)
    assert services["checkout"]["saturation"] == highest(READINGS, "checkout", 0, end)
    end = T + 540  # 12:09: minutes 12:00-12:08 (the 10-minute row 12:00 is not whole)
    services = _by(_ok(mesh_url, f"/api/v1/services?window=24h&end={end}")["services"], "name")
    _assert_signals(services["cart"], _entry("cart", 0, end), 86400)
    assert services["cart"]["saturation"] == highest(READINGS, "cart", 0, end)


def test_the_current_minute_counts_and_rates_use_the_seconds_passed(mesh_url: str) -> None:
    answer = _ok(mesh_url, "/api/v1/services", now=T + 30)  # 12:00:30, default window 15m
    assert answer["window"]["start"] == "2026-11-26T11:46:00Z"
    assert answer["window"]["end"] == "2026-11-26T12:01:00Z"
    assert answer["window"]["seconds"] == 870.0
    services = _by(answer["services"], "name")
    _assert_signals(services["checkout"], _entry("checkout", T - 840, T + 60), 870)


@pytest.mark.parametrize("end", [T, T - 1860, T + 540])
@pytest.mark.parametrize("window", ["15m", "3h", "24h"])
def test_services_are_the_graph_service_nodes(mesh_url: str, window: str, end: int) -> None:
    """/services skips the histograms of edges no node sums: its answers must not change."""
    query = f"window={window}&end={end}"
    services = _ok(mesh_url, f"/api/v1/services?{query}")["services"]
    nodes = _ok(mesh_url, f"/api/v1/graph?{query}")["nodes"]
    assert services == [
        {"name": node.pop("id"), **node} for node in nodes if node.pop("type") == "service"
    ]
    assert {s["signals_from"] for s in services} == {"entry-spans", "inbound-edges"}


# --- graph -------------------------------------------------------------------------------------


def test_graph_nodes_and_edges(mesh_url: str) -> None:
    answer = _ok(mesh_url, f"/api/v1/graph?window=15m&end={T}")
    assert {node["id"]: node["type"] for node in answer["nodes"]} == {
        "cart": "service",
        "checkout": "service",
        "inventory": "service",
        "payments.example.com": "external",
        "queue/orders": "messaging",
        "redis": "database",
        "user": "client",
    }
    edges = {(e["source"], e["target"]): e for e in answer["edges"]}
    assert list(edges) == sorted(edges)
    assert {key: edge["sources"] for key, edge in edges.items()} == {
        ("cart", "redis"): ["traces"],
        ("checkout", "cart"): ["mesh-metrics", "traces"],
        ("checkout", "inventory"): ["mesh-metrics"],
        ("checkout", "payments.example.com"): ["traces"],
        ("inventory", "queue/orders"): ["traces"],
        ("user", "checkout"): ["traces"],
    }
    both = edges[("checkout", "cart")]  # counts from mesh metrics only, not metrics + traces
    metrics = _edge("checkout", "cart", "mesh-metrics", T - 900, T)
    assert _edge("checkout", "cart", "traces", T - 900, T)  # seen in traces too, not added
    _assert_signals(both, metrics, 900)
    assert both["mtls"] == {
        "mutual": sum(r.mtls == scenario.MUTUAL for r in metrics),
        "tls": 0,
        "plaintext": sum(r.mtls == scenario.PLAINTEXT for r in metrics),
        "unknown": 0,
        "coverage": sum(r.mtls == scenario.MUTUAL for r in metrics) / len(metrics),
    }
    assert (both["source_type"], both["target_type"]) == ("service", "service")
    _assert_signals(
        edges[("user", "checkout")], _edge("user", "checkout", "traces", T - 900, T), 900
    )
    assert edges[("cart", "redis")]["mtls"]["coverage"] == 0.0
    assert edges[("inventory", "queue/orders")]["mtls"]["coverage"] is None
    redis = _by(answer["nodes"], "id")["redis"]
    assert redis["signals_from"] == "inbound-edges"
    assert redis["requests"] == edges[("cart", "redis")]["requests"]
    assert redis["saturation"] is None
    assert _by(answer["nodes"], "id")["cart"]["saturation"] == highest(READINGS, "cart", T - 900, T)
    assert "batch" not in _by(answer["nodes"], "id")  # utilization without requests: no node
    assert both["plaintext_reasons"] == scenario.reasons(metrics)
    assert set(both["plaintext_reasons"]) == {"no_identity", "not_provided_by_remote"}
    assert edges[("cart", "redis")]["plaintext_reasons"] == {}  # traces give no reason


# --- one service -------------------------------------------------------------------------------


def test_service_detail(mesh_url: str) -> None:
    answer = _ok(mesh_url, f"/api/v1/services/checkout?window=1h&end={T}")
    lo = T - 3600
    assert (answer["name"], answer["type"]) == ("checkout", "service")
    _assert_signals(answer, _entry("checkout", lo, T), 3600)
    assert answer["saturation"] == highest(READINGS, "checkout", lo, T)
    versions = answer["versions"]
    assert [(v["version"], v["share"]) for v in versions] == [("v1", 0.9), ("v2", 0.1)]
    for version in versions:
        _assert_signals(version, _entry("checkout", lo, T, version=version["version"]), 3600)
    assert versions[1]["error_rate"] == 0.5  # the canary fails on every other minute
    operations = answer["operations"]
    assert [(o["operation"], o["share"]) for o in operations] == [
        ("POST /pay", 0.6),
        ("GET /cart", 0.4),
    ]
    _assert_signals(operations[1], _entry("checkout", lo, T, operation="GET /cart"), 3600)
    assert [(e["source"], e["target"]) for e in answer["upstream"]] == [("user", "checkout")]
    assert [e["target"] for e in answer["downstream"]] == [
        "cart",
        "inventory",
        "payments.example.com",
    ]


def test_virtual_node_with_a_slash_in_its_name(mesh_url: str) -> None:
    answer = _ok(mesh_url, f"/api/v1/services/queue%2Forders?window=15m&end={T}")
    assert (answer["name"], answer["type"]) == ("queue/orders", "messaging")
    _assert_signals(answer, _edge("inventory", "queue/orders", "traces", T - 900, T), 900)
    assert answer["versions"] == answer["operations"] == answer["downstream"] == []
    series = _ok(mesh_url, f"/api/v1/services/queue%2Forders/series?window=15m&end={T}")
    assert series["name"] == "queue/orders"
    assert sum(p["requests"] for p in series["points"]) == answer["requests"]


def test_service_seen_before_the_window_has_zero_signals(mesh_url: str) -> None:
    answer = _ok(mesh_url, f"/api/v1/services/checkout?window=15m&end={T - 86400}")
    assert (answer["requests"], answer["rps"], answer["error_rate"]) == (0, 0.0, None)
    assert answer["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    assert answer["saturation"] is None


def test_a_service_with_utilization_only(mesh_url: str) -> None:
    end = T - 1860  # 11:29, a window reading every resolution
    answer = _ok(mesh_url, f"/api/v1/services/batch?window=3h&end={end}")
    assert (answer["name"], answer["type"], answer["requests"]) == ("batch", "service", 0)
    assert answer["saturation"] == highest(READINGS, "batch", end - 10800, end)
    series = _ok(mesh_url, f"/api/v1/services/batch/series?window=3h&end={end}&step=30m")
    for point in series["points"]:
        lo = point["start_unix"]
        hi = lo + int(point["seconds"])
        assert point["saturation"] == highest(READINGS, "batch", lo, hi), lo
    assert series["points"][0]["saturation"] is not None


# --- series ------------------------------------------------------------------------------------


def test_series_points(mesh_url: str) -> None:
    answer = _ok(mesh_url, f"/api/v1/services/checkout/series?window=1h&end={T}&step=5m")
    points = answer["points"]
    assert (answer["step_seconds"], len(points)) == (300, 12)
    for n, point in enumerate(points):
        lo = T - 3600 + 300 * n
        assert point["start_unix"] == lo
        assert point["seconds"] == 300.0
        _assert_signals(point, _entry("checkout", lo, lo + 300), 300)
        assert point["saturation"] == highest(READINGS, "checkout", lo, lo + 300)
    assert points[0]["start"] == "2026-11-26T11:00:00Z"


def test_series_points_align_to_the_step_and_clip_to_the_window(mesh_url: str) -> None:
    end = T - 1800  # 11:30, window 10:00:00-11:30 in hours: [10:30, 11:00) and [11:00, 11:30)
    answer = _ok(mesh_url, f"/api/v1/services/cart/series?window=1h&end={end}&step=1h")
    points = answer["points"]
    assert [(p["start_unix"], p["seconds"]) for p in points] == [
        (T - 5400, 1800.0),
        (T - 3600, 1800.0),
    ]
    _assert_signals(points[0], _entry("cart", T - 5400, T - 3600), 1800)
    _assert_signals(points[1], _entry("cart", T - 3600, end), 1800)
    assert points[0]["saturation"] == highest(READINGS, "cart", T - 5400, T - 3600)
    assert points[1]["saturation"] == highest(READINGS, "cart", T - 3600, end)


def test_series_default_step(mesh_url: str) -> None:
    minutes = _ok(mesh_url, f"/api/v1/services/checkout/series?end={T}")
    assert (minutes["step_seconds"], len(minutes["points"])) == (60, 15)
    day = _ok(mesh_url, f"/api/v1/services/checkout/series?window=24h&end={T}")
    assert (day["step_seconds"], len(day["points"])) == (3600, 24)
    assert sum(p["requests"] for p in day["points"]) == len(_entry("checkout", 0, T))


# --- mTLS --------------------------------------------------------------------------------------


def test_mtls_summary(mesh_url: str) -> None:
    answer = _ok(mesh_url, f"/api/v1/mtls?window=15m&end={T}&step=5m")
    counted = [
        r
        for r in _select(T - 900, T, lambda r: bool(r.source))
        if (r.source, r.target, r.kind) != ("checkout", "cart", "traces")
    ]
    states = [sum(r.mtls == state for r in counted) for state in range(4)]
    unknown, plaintext, tls, mutual = states
    assert (answer["mutual"], answer["tls"], answer["plaintext"], answer["unknown"]) == (
        mutual,
        tls,
        plaintext,
        unknown,
    )
    assert answer["coverage"] == mutual / (mutual + tls + plaintext)
    assert [(e["source"], e["target"]) for e in answer["plaintext_edges"]] == [
        ("cart", "redis"),
        ("checkout", "cart"),
    ]
    assert [(e["source"], e["target"]) for e in answer["tls_edges"]] == [
        ("checkout", "payments.example.com")
    ]
    redis, cart = answer["plaintext_edges"]
    assert (redis["reason"], redis["reasons"]) == (None, {})  # traces give no reason
    reasons = scenario.reasons(_edge("checkout", "cart", "mesh-metrics", T - 900, T))
    assert cart["reasons"] == cart["plaintext_reasons"] == reasons
    assert reasons["no_identity"] > reasons["not_provided_by_remote"] > 0
    assert cart["reason"] == "no_identity"
    (payments,) = answer["tls_edges"]
    assert (payments["reason"], payments["reasons"]) == (None, {})
    assert len(answer["edges"]) == 6
    series = answer["series"]
    assert (answer["step_seconds"], len(series)) == (300, 3)
    for state in ("mutual", "tls", "plaintext", "unknown"):
        assert sum(point[state] for point in series) == answer[state]


@pytest.mark.parametrize("end", [T - 1860, T + 540, T])
def test_plaintext_reasons_over_every_resolution(mesh_url: str, end: int) -> None:
    answer = _ok(mesh_url, f"/api/v1/mtls?window=3h&end={end}")
    edge = _by([e for e in answer["plaintext_edges"] if e["source"] == "checkout"], "target")
    reasons = scenario.reasons(_edge("checkout", "cart", "mesh-metrics", end - 10800, end))
    assert edge["cart"]["reasons"] == reasons
    assert edge["cart"]["reason"] == min(reasons, key=lambda reason: (-reasons[reason], reason))


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=abc", "window must be a duration"),
        ("window=30s", "at least 1m"),
        ("window=91d", "at most 90d"),
        ("window=-5m", "window must be a duration"),
        ("window=" + "9" * 100 + "m", "window must be a duration"),
        ("end=yesterday", "end must be RFC 3339"),
        ("end=2026-11-26T12:00:00", "needs a UTC offset"),
        ("end=999999999999", "beyond the year 9999"),
        ("end=1e9", "end must be RFC 3339"),
    ],
)
def test_bad_window_or_end_is_400_with_a_message(mesh_url: str, query: str, message: str) -> None:
    for path in ("/api/v1/services", "/api/v1/graph", "/api/v1/services/checkout", "/api/v1/mtls"):
        response = _get(mesh_url, f"{path}?{query}")
        assert response.status_code == 400, (path, response.text)
        assert response.json()["status"] == 400
        assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=7d&step=1m", "at most 1000"),
        ("step=1x", "step must be a duration"),
        ("step=10s", "at least 1m"),
    ],
)
def test_bad_step_is_400(mesh_url: str, query: str, message: str) -> None:
    for path in ("/api/v1/services/checkout/series", "/api/v1/mtls"):
        response = _get(mesh_url, f"{path}?{query}")
        assert response.status_code == 400, response.text
        assert message in response.json()["message"]


@pytest.mark.parametrize(
    "name",
    ["nosuch", "a%2Fb", "%00", "x" * 5000, "%C3%BC%27%22%3B--", "%FF%FE", "..%2F..", "series"],
)
def test_unknown_or_odd_names_are_404(mesh_url: str, name: str) -> None:
    for path in (f"/api/v1/services/{name}", f"/api/v1/services/{name}/series"):
        response = _get(mesh_url, path)
        assert response.status_code == 404, (path, response.text)
        assert "no service or node named" in response.json()["message"]


def test_an_encoded_slash_series_is_part_of_the_name(mesh_url: str) -> None:
    response = _get(mesh_url, "/api/v1/services/checkout%2Fseries")
    assert response.status_code == 404
    assert response.json()["message"] == "no service or node named 'checkout/series' in any rollup"


def test_database_down_is_503() -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    response = _get(url, "/api/v1/services")
    assert response.status_code == 503
    assert response.json()["message"].startswith("the database does not answer")


def test_openapi_documents_the_api(mesh_url: str) -> None:
    spec = _ok(mesh_url, "/openapi.json")
    for path in ("/services", "/graph", "/services/{name}", "/services/{name}/series", "/mtls"):
        assert f"/api/v1{path}" in spec["paths"]
    rps = spec["components"]["schemas"]["ServiceModel"]["properties"]["rps"]
    assert "requests / window seconds" in rps["description"]


# --- which rows are read -----------------------------------------------------------------------


@pytest.fixture
def marked_url(database_url: str) -> str:
    """Service `probe` whose rows deliberately disagree across resolutions: 1 request a minute
    in minute rows, 100 in 10-minute rows (10 if they agreed), 10000 in hour rows (60), and
    saturation 0.01, 0.1 and 1.0; so every answer tells which resolution was read for which
    time. Rows from 09:00 to 12:09 (hour and 10-minute rows holding 12:00 too)."""
    _migrated(database_url)
    one_ms = LatencyHistogram()
    one_ms.add(10**6)
    keys, _ = one_ms.to_arrays()
    marks = {60: (1, 0.01), 600: (100, 0.1), 3600: (10000, 1.0)}
    rows = [
        (resolution, bucket, *marks[resolution])
        for resolution in marks
        for bucket in range(T - 3 * 3600, T + 600, resolution)
    ]
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO service_rollups"
            " VALUES (%s, %s, 'probe', '', '', %s, 0, %s, %s, 0, 0, 0, %s)",
            [(res, bucket, n, keys, [n], n) for res, bucket, n, _ in rows],
        )
        conn.cursor().executemany(
            "INSERT INTO saturation_rollups VALUES (%s, %s, 'probe', %s)",
            [(res, bucket, value) for res, bucket, _, value in rows],
        )
    return database_url


def test_the_coarsest_rows_that_fit_are_read(marked_url: str) -> None:
    def requests(query: str) -> int:
        answer = _ok(marked_url, f"/api/v1/services/probe?{query}")
        return int(answer["requests"])

    assert requests(f"window=5m&end={T}") == 5
    assert requests(f"window=10m&end={T}") == 100
    assert requests(f"window=15m&end={T}") == 5 + 100  # 11:45-11:49 by minute, 11:50 block
    assert requests(f"window=59m&end={T}") == 9 + 500  # 11:01-11:09, blocks 11:10-11:50
    assert requests(f"window=60m&end={T}") == 10000
    assert requests(f"window=90m&end={T}") == 300 + 10000  # blocks 10:30-10:50, hour 11
    # 09:05-09:09 by minute, blocks 09:10-09:50, hours 10 and 11, 12:00-12:04 by minute
    assert requests(f"window=3h&end={T + 300}") == 5 + 500 + 20000 + 5
    # 09:12-09:19 by minute, blocks 09:20-09:50, hours 10 and 11, block 12:00, 12:10-12:11
    assert requests(f"window=3h&end={T + 720}") == 8 + 400 + 20000 + 100 + 0


def test_saturation_is_read_from_the_same_rows(marked_url: str) -> None:
    def saturation(query: str) -> float:
        answer = _ok(marked_url, f"/api/v1/services/probe?{query}")
        return float(answer["saturation"])

    assert saturation(f"window=5m&end={T}") == 0.01
    assert saturation(f"window=15m&end={T}") == 0.1
    assert saturation(f"window=90m&end={T}") == 1.0
    points = _ok(marked_url, f"/api/v1/services/probe/series?window=1h&end={T}&step=30m")
    assert [p["saturation"] for p in points["points"]] == [0.1, 0.1]
    before = _ok(marked_url, f"/api/v1/services/probe?window=5m&end={T - 4 * 3600}")
    assert before["saturation"] is None


def test_series_use_coarse_rows_only_inside_points(marked_url: str) -> None:
    def points(query: str) -> list[int]:
        answer = _ok(marked_url, f"/api/v1/services/probe/series?{query}")
        return [p["requests"] for p in answer["points"]]

    assert points(f"window=3h&end={T}&step=1h") == [10000, 10000, 10000]
    assert points(f"window=3h&end={T}&step=30m") == [300] * 6
    assert points(f"window=3h&end={T}&step=15m") == [105] * 12  # a block and 5 minutes each
    assert points(f"window=3h&end={T}&step=5m") == [5] * 36
    assert points(f"window=3h&end={T}&step=2h") == [10000, 20000]  # points 08-10 and 10-12
    assert points(f"window=2h&end={T - 1800}&step=1h") == [300, 10000, 300]
    # too many ranges with hour rows: 10-minute rows throughout (every point holds whole blocks)
    odd = points(f"window=7d&end={T}&step=90m")
    assert (len(odd), sum(odd)) == (112, 1800)
    # too many with 10-minute rows too: minute rows throughout
    odder = points(f"window=7d&end={T}&step=13m")
    assert (sum(odder), max(odder)) == (180, 13)
