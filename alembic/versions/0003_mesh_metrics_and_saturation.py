"""Mesh-metric edges and saturation: points inbox, series cursors, plaintext reasons, saturation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Writers append the inserted points of Istio / Linkerd series, with the edge each series
describes, to `metric_points_inbox`, and the highest utilization per service and minute they
saw to `saturation_inbox`. The deriver turns cumulative points into deltas against
`series_cursors` (each series' newest point: state that outlives restarts and is shared by every
meshlens process), folds them into `edge_rollups` with source_kind 'mesh-metrics', and keeps the
highest utilization per bucket in `saturation_rollups`. `edge_rollups.plaintext_reasons` counts
plaintext requests by the reason the mesh gave (Linkerd `no_tls_reason`).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE metric_points_inbox (
            series_id bigint NOT NULL,
            resource_id bigint NOT NULL,
            cumulative boolean NOT NULL,
            start_unix_nano bigint NOT NULL,
            time_unix_nano bigint NOT NULL,
            value double precision NOT NULL,
            bucket_counts bigint[],
            explicit_bounds double precision[],
            role text NOT NULL,
            source text NOT NULL,
            source_type text NOT NULL,
            target text NOT NULL,
            target_type text NOT NULL,
            error boolean NOT NULL,
            mtls smallint NOT NULL,
            plaintext_reason text NOT NULL
        );
        COMMENT ON TABLE metric_points_inbox IS
            'inserted points of mesh series, not yet seen by the deriver';
        COMMENT ON COLUMN metric_points_inbox.value IS 'counter value, or histogram count';
        COMMENT ON COLUMN metric_points_inbox.explicit_bounds IS 'in nanoseconds';
        COMMENT ON COLUMN metric_points_inbox.role IS
            'requests (a counter: requests, errors, mTLS) or latency (a histogram)';

        CREATE TABLE series_cursors (
            series_id bigint PRIMARY KEY,
            resource_id bigint NOT NULL,
            first_unix_nano bigint NOT NULL,
            start_unix_nano bigint NOT NULL,
            time_unix_nano bigint NOT NULL,
            value double precision NOT NULL,
            bucket_counts bigint[],
            explicit_bounds double precision[]
        );
        CREATE INDEX series_cursors_resource ON series_cursors (resource_id);
        CREATE INDEX series_cursors_time ON series_cursors (time_unix_nano);
        COMMENT ON TABLE series_cursors IS
            'newest point of each cumulative mesh series: what the next point is a delta from';
        COMMENT ON COLUMN series_cursors.first_unix_nano IS 'time of the series'' first point';

        CREATE TABLE saturation_inbox (
            minute_unix bigint NOT NULL,
            service text NOT NULL,
            value double precision NOT NULL
        );

        CREATE TABLE saturation_rollups (
            resolution integer NOT NULL,
            bucket_unix bigint NOT NULL,
            service text NOT NULL,
            value double precision NOT NULL,
            PRIMARY KEY (resolution, bucket_unix, service)
        );
        COMMENT ON TABLE saturation_rollups IS
            'highest utilization (in [0, 1]) of the service''s gauges in the bucket';

        ALTER TABLE edge_rollups ADD COLUMN plaintext_reasons jsonb NOT NULL DEFAULT '{}';
        COMMENT ON COLUMN edge_rollups.plaintext_reasons IS
            '{reason: plaintext requests} for the reasons the mesh gave (Linkerd no_tls_reason)';
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE edge_rollups DROP COLUMN plaintext_reasons;"
        " DROP TABLE saturation_rollups, saturation_inbox, series_cursors, metric_points_inbox"
    )
