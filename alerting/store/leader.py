"""The evaluator's lock and a round's session: with several meshlens processes on one database,
the one holding a session-level advisory lock (on a connection kept open for it) evaluates."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

EVALUATOR_LOCK = 0x6D6C616C  # "mlal": the advisory lock of the evaluating process


async def try_lead(conn: AsyncConnection) -> bool:
    """Take the evaluator lock on `conn` if no other session holds it."""
    taken = await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": EVALUATOR_LOCK})
    return bool(taken.scalar())


async def ping(conn: AsyncConnection) -> None:
    """Raise when the connection holding the lock is gone (and the lock with it)."""
    await conn.execute(text("SELECT 1"))


async def round_settings(conn: AsyncConnection) -> None:
    """For an evaluation round's transaction: no JIT (it costs more than its short queries)."""
    await conn.execute(text("SET LOCAL jit = off"))
