"""The web application in this process (httpx's ASGI transport), on a database of the test's,
with its clock set: what the API answers, without a server or ports."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from api.app import create_app
from meshlens.database import Database


def get(database_url: str, path: str, now: float) -> httpx.Response:
    """GET `path` from the API over the database at `database_url`, at clock `now`."""

    async def call() -> httpx.Response:
        engine = create_async_engine(Database(database_url).sqlalchemy_url, poolclass=NullPool)
        app = create_app(engine, CollectorRegistry(), ingest_healthy=lambda: True)
        app.state.clock = lambda: now
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://meshlens") as c:
                return await c.get(path)
        finally:
            await engine.dispose()

    return asyncio.run(call())


def get_ok(database_url: str, path: str, now: float) -> Any:
    """The JSON of a 200 answer to GET `path`; any other status fails the test."""
    response = get(database_url, path, now)
    assert response.status_code == 200, response.text
    return response.json()
