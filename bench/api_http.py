"""Timing the JSON API of a running `meshlens serve`, and checking its answers are sane.

Requests go one at a time over one keep-alive connection (httpx), so each figure is the time
of one answer: sending the request, the server's queries and JSON, and reading the whole body.
meshlens sends no Server-Timing header, so there is no server-side figure: the times are the
client's, over the loopback interface. This process does no garbage collection while timing.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.report import percentile

WARMUP_CALLS = 3


@dataclass(frozen=True, slots=True)
class Case:
    """One endpoint and window to time."""

    label: str
    path: str
    window: str
    page: bool = False
    """A dashboard page (HTML; its Server-Timing header gives the server-side time)."""

    @property
    def key(self) -> str:
        return f"{self.label} {self.window}"


def cases(service: str) -> list[Case]:
    """The targets of issue 3 (services and graph at 15m and 24h), and two more at 24h."""
    return [
        Case("/services", "/api/v1/services", "15m"),
        Case("/services", "/api/v1/services", "24h"),
        Case("/graph", "/api/v1/graph", "15m"),
        Case("/graph", "/api/v1/graph", "24h"),
        Case("/services/{name}", f"/api/v1/services/{service}", "24h"),
        Case("/mtls", "/api/v1/mtls", "24h"),
        Case("page /", "/", "24h", page=True),
        Case("page /map", "/map", "24h", page=True),
        Case("page /services/{name}", f"/services/{service}", "24h", page=True),
        Case("page /mtls", "/mtls", "24h", page=True),
    ]


@dataclass(frozen=True, slots=True)
class Timing:
    """Client-side milliseconds of one case, and its last answer."""

    case: Case
    milliseconds: list[float]
    body_bytes: int
    answer: dict[str, Any]
    server_milliseconds: list[float]
    """Pages only: what their Server-Timing header says (queries, figures and rendering)."""

    def figures(self) -> dict[str, float]:
        values = self.milliseconds
        found = {
            "p50": round(percentile(values, 0.50), 1),
            "p95": round(percentile(values, 0.95), 1),
            "max": round(max(values), 1),
        }
        if self.server_milliseconds:
            found["server_p95"] = round(percentile(self.server_milliseconds, 0.95), 1)
        return found


def time_cases(base_url: str, end_unix: int, requests: int, service: str) -> list[Timing]:
    """Each case `requests` times after WARMUP_CALLS uncounted ones, on one connection."""
    timings = []
    gc.collect()
    gc.freeze()  # this process's collections must not add to the times: none while timing
    gc.disable()
    try:
        with httpx.Client(base_url=base_url, timeout=60.0) as client:
            for case in cases(service):
                timings.append(_time_case(client, case, end_unix, requests))
    finally:
        gc.enable()
        gc.unfreeze()
    return timings


def _time_case(client: httpx.Client, case: Case, end_unix: int, requests: int) -> Timing:
    parameters = {"window": case.window, "end": str(end_unix)}
    for _ in range(WARMUP_CALLS):
        _get(client, case.path, parameters)
    milliseconds, server = [], []
    for _ in range(requests):
        started = time.perf_counter()
        response = _get(client, case.path, parameters)
        milliseconds.append(1000 * (time.perf_counter() - started))
        if case.page:
            server.append(_server_timing(response))
    answer = {} if case.page else response.json()
    return Timing(case, milliseconds, len(response.content), answer, server)


def _server_timing(response: httpx.Response) -> float:
    """The `dur` of a `Server-Timing: page;dur=12.3` header, in milliseconds."""
    header = response.headers.get("server-timing", "")
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "dur":
            return float(value)
    raise RuntimeError(f"no Server-Timing duration on {response.url}: {header!r}")


def _get(client: httpx.Client, path: str, parameters: dict[str, str]) -> httpx.Response:
    response = client.get(path, params=parameters)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return response


def sanity(
    timings: list[Timing], services: int, servers: int, edge_requests: int
) -> tuple[dict[str, Any], list[str]]:
    """What the 24 h answers hold, and what is wrong with them (an empty list: nothing).

    Every loaded span lies in the 24 h window, so its services must count every SERVER span
    and its edges every request (a SERVER span, or a call to a virtual node) exactly.
    """
    by_key = {timing.case.key: timing.answer for timing in timings}
    listed = by_key["/services 24h"]["services"]
    graph = by_key["/graph 24h"]
    short = by_key["/graph 15m"]
    mtls = by_key["/mtls 24h"]
    detail = by_key["/services/{name} 24h"]
    types: dict[str, int] = {}
    for node in graph["nodes"]:
        types[node["type"]] = types.get(node["type"], 0) + 1
    found = {
        "services_24h": len(listed),
        "service_requests_24h": sum(s["requests"] for s in listed),
        "service_errors_24h": sum(s["errors"] for s in listed),
        "nodes_24h": types,
        "edges_24h": len(graph["edges"]),
        "edge_requests_24h": sum(e["requests"] for e in graph["edges"]),
        "edges_15m": len(short["edges"]),
        "services_15m": len(by_key["/services 15m"]["services"]),
        "edge_requests_15m": sum(e["requests"] for e in short["edges"]),
        "mtls_coverage_24h": mtls["coverage"],
        "detail": {
            "name": detail.get("name"),
            "upstream": len(detail["upstream"]),
            "downstream": len(detail["downstream"]),
            "operations": len(detail["operations"]),
            "versions": len(detail["versions"]),
        },
    }
    problems = []
    if found["services_24h"] != services:
        problems.append(f"/services 24h lists {found['services_24h']} services, not {services}")
    if found["service_requests_24h"] != servers:
        problems.append(
            f"/services 24h counts {found['service_requests_24h']:,} requests, "
            f"not the {servers:,} SERVER spans loaded"
        )
    if found["edge_requests_24h"] != edge_requests:
        problems.append(
            f"/graph 24h counts {found['edge_requests_24h']:,} edge requests, "
            f"not the {edge_requests:,} loaded"
        )
    if not found["edges_15m"]:
        problems.append("/graph 15m has no edges")
    if not 0 < (mtls["coverage"] or 0) < 1:
        problems.append(f"/mtls 24h coverage {mtls['coverage']} is not between 0 and 1")
    if len(detail["versions"]) != 2 or not detail["downstream"]:
        problems.append("/services/{name} 24h lacks its two versions or its downstream edges")
    return found, problems
