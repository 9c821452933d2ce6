"""Cardinality budget: what is admitted per kind, and points of series folded into an overflow.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

- `cardinality_known`: the services, operations and edges the deriver admitted (README,
  Cardinality budget); `seq` lets every meshlens process read only what was added since it
  last looked. Filled here from the rollups already stored, so what is known today stays
  accepted as itself whatever the caps.
- `cardinality_usage`: how many rows of `metric_series` are admitted series (not overflow
  series); its row lock serialises admission across writers and processes. Recounted when
  meshlens starts.
- `metric_points.overflow_key`: a point of a series folded into its metric's overflow series
  keeps the fingerprint of its own series here (0 for every other point), and the identity
  index takes it in, so two folded series' points at the same time are both stored and a
  resend is still stored once. Adding a NOT NULL column with a constant default rewrites
  nothing; the identity index is built again.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE cardinality_known (
            seq bigserial NOT NULL,
            kind text NOT NULL,
            a text NOT NULL,
            b text NOT NULL,
            PRIMARY KEY (kind, a, b)
        );
        CREATE INDEX cardinality_known_seq ON cardinality_known (seq);
        INSERT INTO cardinality_known (kind, a, b)
        SELECT 'service', name, '' FROM (
            SELECT service FROM service_rollups UNION SELECT source FROM edge_rollups
            UNION SELECT target FROM edge_rollups UNION SELECT service FROM saturation_rollups
        ) AS nodes (name)
        UNION ALL
        SELECT DISTINCT 'operation', service, operation FROM service_rollups WHERE operation <> ''
        UNION ALL
        SELECT DISTINCT 'edge', source, target FROM edge_rollups;

        CREATE TABLE cardinality_usage (kind text PRIMARY KEY, used bigint NOT NULL);
        INSERT INTO cardinality_usage (kind, used)
        SELECT 'series', count(*) FROM metric_series;

        ALTER TABLE metric_points ADD COLUMN overflow_key bigint NOT NULL DEFAULT 0;
        DROP INDEX metric_points_identity;
        CREATE UNIQUE INDEX metric_points_identity
            ON metric_points (series_id, time_unix_nano, overflow_key);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM metric_points WHERE overflow_key <> 0;
        DROP INDEX metric_points_identity;
        CREATE UNIQUE INDEX metric_points_identity ON metric_points (series_id, time_unix_nano);
        ALTER TABLE metric_points DROP COLUMN overflow_key;
        DROP TABLE cardinality_usage;
        DROP TABLE cardinality_known;
        """
    )
