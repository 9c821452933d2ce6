"""The deriver's cardinality budget kept in PostgreSQL: `cardinality_known`.

Only the deriver admits services, operations and edges, inside its pass, one meshlens process
at a time (its advisory lock). At the start of a pass it reads the rows other passes added
since it last looked (`seq` grows in commit order, since inserts happen under that lock); at
the end it inserts what this pass admitted, in the same transaction as the rollups. So the
budget is exact with any number of meshlens processes on one database, and survives restarts.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from collector.derive.cardinality import DimensionBudget


class KnownDimensions:
    """A `DimensionBudget` and how far it has read `cardinality_known`."""

    def __init__(self, budget: DimensionBudget) -> None:
        self.budget = budget
        self._seen_seq = 0

    async def catch_up(self, conn: AsyncConnection) -> None:
        """Learn the values admitted since the last read (by any process)."""
        cursor = await conn.execute(
            "SELECT seq, kind, a, b FROM cardinality_known WHERE seq > %s ORDER BY seq",
            (self._seen_seq,),
        )
        rows = await cursor.fetchall()
        if rows:
            self.budget.learn((kind, a, b) for _, kind, a, b in rows)
            self._seen_seq = rows[-1][0]

    async def save_pending(self, conn: AsyncConnection) -> None:
        """Insert what this pass admitted (committed with the pass, or not at all)."""
        pending = self.budget.pending
        if not pending:
            return
        await conn.execute(
            "INSERT INTO cardinality_known (kind, a, b)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
            ([row[0] for row in pending], [row[1] for row in pending], [row[2] for row in pending]),
        )
