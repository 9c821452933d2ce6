"""Ingest tables: resources, spans and metric points (daily partitions), metric series.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE resources (
            id bigint PRIMARY KEY,
            service text NOT NULL,
            attributes jsonb NOT NULL,
            first_seen_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON COLUMN resources.id IS 'fingerprint of the sorted attributes';

        CREATE TABLE spans (
            trace_id bytea NOT NULL,
            span_id bytea NOT NULL,
            parent_span_id bytea,
            resource_id bigint NOT NULL,
            service text NOT NULL,
            scope_name text NOT NULL,
            scope_version text NOT NULL,
            name text NOT NULL,
            kind smallint NOT NULL,
            start_unix_nano bigint NOT NULL,
            end_unix_nano bigint NOT NULL,
            status_code smallint NOT NULL,
            status_message text NOT NULL,
            attributes jsonb NOT NULL,
            links jsonb
        ) PARTITION BY RANGE (start_unix_nano);
        CREATE UNIQUE INDEX spans_identity ON spans (trace_id, span_id, start_unix_nano);

        CREATE TABLE metric_series (
            id bigint PRIMARY KEY,
            name text NOT NULL,
            description text NOT NULL,
            unit text NOT NULL,
            type text NOT NULL,
            temporality smallint NOT NULL,
            is_monotonic boolean,
            resource_id bigint NOT NULL,
            service text NOT NULL,
            scope_name text NOT NULL,
            attributes jsonb NOT NULL,
            first_seen_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX metric_series_name ON metric_series (name);

        CREATE TABLE metric_points (
            series_id bigint NOT NULL,
            start_unix_nano bigint NOT NULL,
            time_unix_nano bigint NOT NULL,
            as_double double precision,
            as_int bigint,
            count bigint,
            sum double precision,
            min double precision,
            max double precision,
            bucket_counts bigint[],
            explicit_bounds double precision[],
            scale integer,
            zero_count bigint,
            positive_offset integer,
            positive_bucket_counts bigint[],
            negative_offset integer,
            negative_bucket_counts bigint[],
            quantiles jsonb,
            flags bigint NOT NULL
        ) PARTITION BY RANGE (time_unix_nano);
        CREATE UNIQUE INDEX metric_points_identity ON metric_points (series_id, time_unix_nano);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE metric_points, metric_series, spans, resources")
