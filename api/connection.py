"""One read-only snapshot of the database for one answer, shared by the API and the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.http_errors import ApiError

_SETTINGS = (text("SET LOCAL jit = off"), text("SET LOCAL work_mem = '32MB'"))
"""JIT compiling costs more than these short queries save; a day of edge rows (about 8 MB with
their histograms) is grouped in memory, not in a sort spilled to disk."""


class DatabaseUnavailable(Exception):
    """The database did not answer; the message names the error."""


@asynccontextmanager
async def read_only(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction on one snapshot (its statements agree with each other);
    connection failures become `DatabaseUnavailable`."""
    try:
        async with engine.connect() as conn:
            await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            for setting in _SETTINGS:
                await conn.execute(setting)
            yield conn
    except (OperationalError, InterfaceError, OSError) as exc:
        raise DatabaseUnavailable(f"the database does not answer: {type(exc).__name__}") from exc


@asynccontextmanager
async def snapshot(request: Request) -> AsyncIterator[AsyncConnection]:
    """`read_only` on the request's app engine, for one API answer; a database that does not
    answer is a 503."""
    try:
        async with read_only(request.app.state.engine) as conn:
            yield conn
    except DatabaseUnavailable as exc:
        raise ApiError(503, str(exc)) from exc
