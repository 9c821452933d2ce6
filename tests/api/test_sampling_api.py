"""Sampling through the read layer and the JSON API, on known rollup rows: which counts are
lower bounds, and where mesh metrics describe a service, its counts come from them.

The mesh, every minute from 08:00 to 12:00 UTC on 2026-11-26 (minute index i from 0):
- `shop`: 8 entry spans a minute, all from its Istio sidecar with no sampling rate declared
  (`unknown_rate`): 6 from `gateway` (v1, 40 ms), 2 from `batch` (v2, 90 ms), the first
  failing every third minute; the edges gateway -> shop and batch -> shop in traces likewise.
- gateway -> shop in mesh metrics (Istio, destination-reported): 30 a minute, 3 failing,
  mutual, 200 ms, only from 10:00 (i >= 120).
- `cart`: 3 entry spans a minute from shop, sampled at a declared rate (not `unknown_rate`).
- shop -> `orders-db` (database): 7 a minute, unknown rate; cart -> orders-db: 3, known rate.
- shop -> `ledger`: mesh metrics only, 5 a minute, mutual, 20 ms.
Expected values come from this list (`rollup_scenario.summed`), never from the code under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from harness.postgres import DatabaseFactory
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from meshlens.read import queries
from meshlens.read.snapshot import read_only
from meshlens.read.windows import series_for, window_for
from tests import rollup_scenario as scenario
from tests.api import in_process
from tests.rollup_scenario import MS, MUTUAL, UNKNOWN, Request, T, latency_ms, summed

FIRST = T - 4 * 3600  # 08:00
METRICS_FROM = T - 2 * 3600  # 10:00
LATER = T + 3600


def _minute(i: int) -> list[Request]:
    at = FIRST + 60 * i
    found = []
    for j in range(8):
        caller, version, took = ("gateway", "v1", 40) if j < 6 else ("batch", "v2", 90)
        error = j == 0 and i % 3 == 0
        found.append(Request(at, "shop", took * MS, error, UNKNOWN, "GET /items", version,
                             unknown_rate=True))  # fmt: skip
        found.append(Request(at, "shop", (took + 1) * MS, error, UNKNOWN, source=caller,
                             source_type="service", unknown_rate=True))  # fmt: skip
    if at >= METRICS_FROM:
        for j in range(30):
            found.append(Request(at, "shop", 200 * MS, j < 3, MUTUAL, source="gateway",
                                 source_type="service", kind="mesh-metrics"))  # fmt: skip
    for _ in range(3):
        found.append(Request(at, "cart", 5 * MS, False, MUTUAL, "POST /cart", "2.0"))
        found.append(Request(at, "cart", 6 * MS, False, MUTUAL, source="shop",
                             source_type="service"))  # fmt: skip
        found.append(Request(at, "orders-db", MS, False, UNKNOWN, source="cart",
                             source_type="service", target_type="database"))  # fmt: skip
    for _ in range(7):
        found.append(Request(at, "orders-db", MS, False, UNKNOWN, source="shop",
                             source_type="service", target_type="database",
                             unknown_rate=True))  # fmt: skip
    for _ in range(5):
        found.append(Request(at, "ledger", 20 * MS, False, MUTUAL, source="shop",
                             source_type="service", kind="mesh-metrics"))  # fmt: skip
    return found


REQUESTS = [request for i in range(240) for request in _minute(i)]


@pytest.fixture(scope="module")
def url(databases: DatabaseFactory) -> str:
    found = databases.create()
    engine = Database(found).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    scenario.insert(found, REQUESTS)
    return found


def _ok(url: str, path: str) -> Any:
    return in_process.get_ok(url, path, LATER)


def _select(lo: int, hi: int, match: Callable[[Request], bool]) -> list[Request]:
    return [r for r in REQUESTS if lo <= r.minute < hi and match(r)]


def _entry(service: str, lo: int, hi: int, **fields: str) -> list[Request]:
    def match(r: Request) -> bool:
        wanted = all(getattr(r, k) == v for k, v in fields.items())
        return not r.source and r.target == service and wanted

    return _select(lo, hi, match)


def _edge(source: str, target: str, kind: str, lo: int, hi: int) -> list[Request]:
    return _select(lo, hi, lambda r: (r.source, r.target, r.kind) == (source, target, kind))


def _sampling(requests: list[Request], source: str) -> dict[str, Any]:
    total = summed(requests)
    share = total.unknown_rate / total.requests
    return {"source": source, "unknown_rate_share": share, "rate_is_lower_bound": share > 0}


def _counts(answer: dict[str, Any]) -> tuple[int, int]:
    return answer["requests"], answer["errors"]


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def _edges(answer: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(edge["source"], edge["target"]): edge for edge in answer["edges"]}


def test_a_service_with_mesh_metrics_counts_them_and_keeps_its_entry_latency(url: str) -> None:
    lo, hi = T - 600, T
    services = _by(_ok(url, f"/api/v1/services?window=10m&end={hi}")["services"], "name")
    shop = services["shop"]
    metrics = _edge("gateway", "shop", "mesh-metrics", lo, hi)
    assert _counts(shop) == (300, 30) == (len(metrics), summed(metrics).errors)
    assert shop["rps"] == 300 / 600
    assert shop["mtls"]["mutual"] == 300
    assert shop["sampling"] == {
        "source": "mesh-metrics",
        "unknown_rate_share": 0.0,
        "rate_is_lower_bound": False,
    }
    assert shop["signals_from"] == "entry-spans"
    assert shop["latency_ms"] == latency_ms(_entry("shop", lo, hi))  # not the metrics' 200 ms
    assert services["cart"]["sampling"] == _sampling(_entry("cart", lo, hi), "traces")
    assert services["cart"]["sampling"]["rate_is_lower_bound"] is False
    ledger = services["ledger"]  # mesh metrics only
    assert (ledger["requests"], ledger["signals_from"]) == (50, "inbound-edges")
    assert ledger["sampling"]["source"] == "mesh-metrics"


def test_before_the_metrics_the_service_is_counted_from_its_sampled_spans(url: str) -> None:
    lo, hi = METRICS_FROM - 3600, METRICS_FROM  # 09:00-10:00: no mesh metrics into shop
    shop = _by(_ok(url, f"/api/v1/services?window=1h&end={hi}")["services"], "name")["shop"]
    entry = _entry("shop", lo, hi)
    assert _counts(shop) == (len(entry), summed(entry).errors) == (480, 20)
    assert shop["sampling"] == {
        "source": "traces",
        "unknown_rate_share": 1.0,
        "rate_is_lower_bound": True,
    }


@pytest.mark.parametrize(
    ("window", "end"),
    [("10m", T), ("2h", T), ("1h30m", T - 420), ("24h", T - 420), ("1h", METRICS_FROM)],
)
def test_every_edge_and_node_says_whether_its_rate_is_a_lower_bound(
    url: str, window: str, end: int
) -> None:
    """Over minute, 10-minute and hour rows (11:53 ends in a ragged minute range)."""
    answer = _ok(url, f"/api/v1/graph?window={window}&end={end}")
    lo = answer["window"]["start_unix"]
    edges = _edges(answer)
    metered = _edge("gateway", "shop", "mesh-metrics", lo, end)
    gateway = edges[("gateway", "shop")]
    if metered:
        assert gateway["sources"] == ["mesh-metrics", "traces"]
        assert gateway["sampling"] == _sampling(metered, "mesh-metrics")
        assert gateway["sampling"]["rate_is_lower_bound"] is False
    else:
        assert gateway["sampling"] == _sampling(_edge("gateway", "shop", "traces", lo, end),
                                                "traces")  # fmt: skip
        assert gateway["sampling"]["rate_is_lower_bound"] is True
    batch = _edge("batch", "shop", "traces", lo, end)
    assert edges[("batch", "shop")]["requests"] == len(batch)
    assert edges[("batch", "shop")]["sampling"] == _sampling(batch, "traces")
    assert edges[("shop", "cart")]["sampling"]["rate_is_lower_bound"] is False
    nodes = _by(answer["nodes"], "id")
    into_db = _select(lo, end, lambda r: r.target == "orders-db")
    assert nodes["orders-db"]["requests"] == len(into_db)
    assert nodes["orders-db"]["sampling"] == _sampling(into_db, "traces")
    assert nodes["orders-db"]["sampling"]["unknown_rate_share"] == 0.7
    shop = nodes["shop"]
    expected = metered or _entry("shop", lo, end)
    assert shop["requests"] == len(expected)
    assert shop["sampling"] == _sampling(expected, "mesh-metrics" if metered else "traces")


def test_versions_and_operations_stay_from_spans_and_are_marked(url: str) -> None:
    lo, hi = T - 600, T
    detail = _ok(url, f"/api/v1/services/shop?window=10m&end={hi}")
    assert _counts(detail) == (300, 30)  # the metrics'
    versions = _by(detail["versions"], "version")
    assert list(versions) == ["v1", "v2"]
    for version, share in (("v1", 0.75), ("v2", 0.25)):  # of the 80 entry spans, not of 300
        entry = _entry("shop", lo, hi, version=version)
        assert (versions[version]["requests"], versions[version]["share"]) == (len(entry), share)
        assert versions[version]["sampling"] == _sampling(entry, "traces")
    (operation,) = detail["operations"]
    assert (operation["requests"], operation["share"]) == (80, 1.0)
    assert operation["sampling"]["rate_is_lower_bound"] is True
    upstream = {edge["source"]: edge["sampling"] for edge in detail["upstream"]}
    assert upstream["gateway"]["source"] == "mesh-metrics"
    assert upstream["batch"]["rate_is_lower_bound"] is True
    cart = _ok(url, f"/api/v1/services/cart?window=10m&end={hi}")
    assert cart["versions"][0]["sampling"]["rate_is_lower_bound"] is False


def test_series_points_count_like_the_window(url: str) -> None:
    hi = T
    series = _ok(url, f"/api/v1/services/shop/series?window=10m&step=5m&end={hi}")
    assert series["signals_from"] == "entry-spans"
    for point in series["points"]:
        lo = point["start_unix"]
        metered = _edge("gateway", "shop", "mesh-metrics", lo, lo + 300)
        assert _counts(point) == (len(metered), summed(metered).errors) == (150, 15)
        assert point["sampling"]["source"] == "mesh-metrics"
        assert point["latency_ms"] == latency_ms(_entry("shop", lo, lo + 300))
    early = METRICS_FROM
    series = _ok(url, f"/api/v1/services/shop/series?window=10m&step=5m&end={early}")
    for point in series["points"]:
        entry = _entry("shop", point["start_unix"], point["start_unix"] + 300)
        assert point["requests"] == len(entry) == 40
        assert point["sampling"] == _sampling(entry, "traces")
    ledger = _ok(url, f"/api/v1/services/ledger/series?window=10m&step=5m&end={hi}")
    assert [p["requests"] for p in ledger["points"]] == [25, 25]
    assert {p["sampling"]["source"] for p in ledger["points"]} == {"mesh-metrics"}


@pytest.mark.parametrize(("end", "metered"), [(T, True), (METRICS_FROM, False)])
def test_the_mesh_series_sums_services_as_the_services_list_does(
    url: str, end: int, metered: bool
) -> None:
    async def read() -> list[Any]:
        engine = create_async_engine(Database(url).sqlalchemy_url, poolclass=NullPool)
        try:
            series = series_for(window_for("10m", str(end), LATER), "5m")
            async with read_only(engine) as conn:
                return await queries.mesh_series(conn, series)
        finally:
            await engine.dispose()

    for point in asyncio.run(read()):
        lo, hi = point.start_unix, point.end_unix
        shop = _edge("gateway", "shop", "mesh-metrics", lo, hi) if metered else []
        shop = shop or _entry("shop", lo, hi)
        counted = shop + _entry("cart", lo, hi) + _edge("shop", "ledger", "mesh-metrics", lo, hi)
        total = summed(counted)
        signals = point.signals
        assert (signals.requests, signals.errors) == (total.requests, total.errors)
        assert signals.unknown_rate == total.unknown_rate == (0 if metered else 40)
        assert signals.rate_is_lower_bound is not metered
        assert signals.latency_ms() == latency_ms(_entry("shop", lo, hi) + _entry("cart", lo, hi))
