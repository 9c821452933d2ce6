"""Derivation tables: halves waiting to be paired, and per-minute / per-hour rollups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Writers append to `edge_halves_inbox` (every CLIENT/PRODUCER span, and every SERVER/CONSUMER
span with a parent or a link) and to `rollup_inbox` (signals they aggregated from the batch
itself). The deriver pairs halves in SQL over a lookback window (`edge_halves` holds those still
waiting) and folds everything into `service_rollups` and `edge_rollups`, at two resolutions
(60 s and 3600 s), so no API query reads raw spans. Histograms are sparse log buckets
(`meshlens.signals.histogram`): `latency_keys` smallint[] with `latency_counts` bigint[].
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_HALF_COLUMNS = """
    trace_id bytea NOT NULL,
    span_id bytea NOT NULL,
    side smallint NOT NULL,
    service text NOT NULL,
    start_unix_nano bigint NOT NULL,
    duration_ns bigint NOT NULL,
    error boolean NOT NULL,
    mtls smallint NOT NULL,
    peer text NOT NULL,
    peer_type text NOT NULL
"""

_SIGNAL_COLUMNS = """
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    latency_keys smallint[] NOT NULL,
    latency_counts bigint[] NOT NULL,
    mtls_mutual bigint NOT NULL,
    mtls_tls bigint NOT NULL,
    mtls_plaintext bigint NOT NULL,
    mtls_unknown bigint NOT NULL
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE edge_halves_inbox ({_HALF_COLUMNS});
        COMMENT ON TABLE edge_halves_inbox IS
            'halves of requests written by ingest, not yet seen by the deriver';
        COMMENT ON COLUMN edge_halves_inbox.span_id IS
            'the CLIENT/PRODUCER span id: its own for side 1, its parent or link for side 2';

        CREATE TABLE edge_halves (
            {_HALF_COLUMNS},
            arrived_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (trace_id, span_id, side)
        );
        CREATE INDEX edge_halves_arrived ON edge_halves (arrived_at);

        CREATE TABLE rollup_inbox (
            kind text NOT NULL,
            minute_unix bigint NOT NULL,
            a text NOT NULL,
            b text NOT NULL,
            c text NOT NULL,
            d text NOT NULL,
            source_kind text NOT NULL,
            {_SIGNAL_COLUMNS}
        );
        COMMENT ON TABLE rollup_inbox IS
            'signals aggregated by writers: kind service (a service, b operation, c version) '
            'or edge (a source, b source type, c target, d target type)';

        CREATE TABLE service_rollups (
            resolution integer NOT NULL,
            bucket_unix bigint NOT NULL,
            service text NOT NULL,
            operation text NOT NULL,
            version text NOT NULL,
            {_SIGNAL_COLUMNS},
            PRIMARY KEY (resolution, bucket_unix, service, operation, version)
        );
        COMMENT ON TABLE service_rollups IS
            'entry-span signals per bucket; operation = version = '''' is the service total';

        CREATE TABLE edge_rollups (
            resolution integer NOT NULL,
            bucket_unix bigint NOT NULL,
            source text NOT NULL,
            source_type text NOT NULL,
            target text NOT NULL,
            target_type text NOT NULL,
            source_kind text NOT NULL,
            {_SIGNAL_COLUMNS},
            PRIMARY KEY (resolution, bucket_unix, source, target, source_kind)
        );
        COMMENT ON COLUMN edge_rollups.source_kind IS 'traces or mesh-metrics';
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE edge_rollups, service_rollups, rollup_inbox, edge_halves, edge_halves_inbox"
    )
