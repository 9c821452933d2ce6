"""The web port's own 404 and 405 answers: the API's `{"status", "message"}`, and an `Allow`
naming every method of the path (the API fuzzing found both answered otherwise)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from dashboards.routes import Ports, include_dashboards


def _request(method: str, path: str) -> httpx.Response:
    """`method path` answered by the web application, which reaches no database here."""

    async def call() -> httpx.Response:
        engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
        app = create_app(engine, CollectorRegistry(), ingest_healthy=lambda: True)
        include_dashboards(app, Ports(4317, 4318))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://meshlens") as c:
                return await c.request(method, path)
        finally:
            await engine.dispose()

    return asyncio.run(call())


def test_a_path_nothing_serves_is_a_404_in_the_api_format() -> None:
    """A name holding a newline matches no route: the 404 still has the documented body."""
    response = _request("GET", "/api/v1/rules/a%0Ab")

    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "message": "nothing is served at '/api/v1/rules/a\\nb'",
    }


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/rules", "GET, POST"),
        ("/api/v1/rules/SlowCheckout", "DELETE, GET, PUT"),
        ("/api/v1/silences", "GET, POST"),
        ("/api/v1/silences/some-id", "DELETE"),
    ],
)
def test_a_405_names_every_method_of_the_path(path: str, allowed: str) -> None:
    response = _request("PATCH", path)

    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json() == {
        "status": 405,
        "message": f"PATCH is not allowed on {path!r}; allowed: {allowed}",
    }
