"""10-minute rollups (backfilled from the minute rows), and indexes that start with the name.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

From now on the deriver writes every rollup at a third resolution, 600 s, beside 60 s and
3600 s (no change to the tables), and the API reads whole 10-minute blocks from those rows. So
that windows over earlier times still count everything, the 10-minute rows are built here from
the minute rows already stored (kept as long as the hour rows): sums, histograms merged bucket
by bucket, plaintext reasons summed, the highest saturation. This reads every minute row once.

The primary keys start with (resolution, bucket_unix), so asking about one service (its detail,
its series, its saturation, whether the name was ever seen) read every key's rows of the window
and kept the name's. The new indexes lead with the name: `service_rollups` and
`saturation_rollups` by service, `edge_rollups` by source and by target (a service's downstream
and upstream edges). The deriver's upserts still conflict on the primary keys.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = (
    ("service_rollups_by_service", "service_rollups", "service"),
    ("edge_rollups_by_source", "edge_rollups", "source"),
    ("edge_rollups_by_target", "edge_rollups", "target"),
    ("saturation_rollups_by_service", "saturation_rollups", "service"),
)

_SUMS = """
    sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
    sum(mtls_mutual)::bigint AS mtls_mutual, sum(mtls_tls)::bigint AS mtls_tls,
    sum(mtls_plaintext)::bigint AS mtls_plaintext, sum(mtls_unknown)::bigint AS mtls_unknown"""


def _histograms(table: str, keys: str) -> str:
    """Minute histograms of `table` merged per 10-minute bucket and `keys`."""
    return f"""
    SELECT bucket, {keys}, array_agg(k ORDER BY k) AS latency_keys,
           array_agg(c ORDER BY k) AS latency_counts
    FROM (SELECT bucket_unix / 600 * 600 AS bucket, {keys}, u.k, sum(u.c)::bigint AS c
          FROM {table}, unnest(latency_keys, latency_counts) AS u(k, c)
          WHERE resolution = 60
          GROUP BY 1, {keys}, u.k) AS per_key
    GROUP BY bucket, {keys}"""


_SERVICES = f"""
INSERT INTO service_rollups (resolution, bucket_unix, service, operation, version, requests,
    errors, latency_keys, latency_counts, mtls_mutual, mtls_tls, mtls_plaintext, mtls_unknown)
SELECT 600, s.bucket, s.service, s.operation, s.version, s.requests, s.errors,
       coalesce(h.latency_keys, '{{}}'), coalesce(h.latency_counts, '{{}}'),
       s.mtls_mutual, s.mtls_tls, s.mtls_plaintext, s.mtls_unknown
FROM (SELECT bucket_unix / 600 * 600 AS bucket, service, operation, version, {_SUMS}
      FROM service_rollups WHERE resolution = 60
      GROUP BY 1, service, operation, version) AS s
LEFT JOIN ({_histograms("service_rollups", "service, operation, version")}) AS h
    USING (bucket, service, operation, version)
ON CONFLICT (resolution, bucket_unix, service, operation, version) DO NOTHING
"""

_EDGES = f"""
INSERT INTO edge_rollups (resolution, bucket_unix, source, source_type, target, target_type,
    source_kind, requests, errors, latency_keys, latency_counts, mtls_mutual, mtls_tls,
    mtls_plaintext, mtls_unknown, plaintext_reasons)
SELECT 600, e.bucket, e.source, e.source_type, e.target, e.target_type, e.source_kind,
       e.requests, e.errors, coalesce(h.latency_keys, '{{}}'), coalesce(h.latency_counts, '{{}}'),
       e.mtls_mutual, e.mtls_tls, e.mtls_plaintext, e.mtls_unknown,
       coalesce(r.plaintext_reasons, '{{}}')
FROM (SELECT bucket_unix / 600 * 600 AS bucket, source, target, source_kind,
             (array_agg(source_type ORDER BY bucket_unix DESC))[1] AS source_type,
             (array_agg(target_type ORDER BY bucket_unix DESC))[1] AS target_type, {_SUMS}
      FROM edge_rollups WHERE resolution = 60
      GROUP BY 1, source, target, source_kind) AS e
LEFT JOIN ({_histograms("edge_rollups", "source, target, source_kind")}) AS h
    USING (bucket, source, target, source_kind)
LEFT JOIN (
    SELECT bucket, source, target, source_kind, jsonb_object_agg(reason, n) AS plaintext_reasons
    FROM (SELECT bucket_unix / 600 * 600 AS bucket, source, target, source_kind,
                 r.key AS reason, sum(r.value::bigint) AS n
          FROM edge_rollups, jsonb_each_text(plaintext_reasons) AS r
          WHERE resolution = 60
          GROUP BY 1, source, target, source_kind, r.key) AS per_reason
    GROUP BY bucket, source, target, source_kind) AS r
    USING (bucket, source, target, source_kind)
ON CONFLICT (resolution, bucket_unix, source, target, source_kind) DO NOTHING
"""

_SATURATION = """
INSERT INTO saturation_rollups (resolution, bucket_unix, service, value)
SELECT 600, bucket_unix / 600 * 600, service, max(value)
FROM saturation_rollups WHERE resolution = 60
GROUP BY 2, service
ON CONFLICT (resolution, bucket_unix, service) DO NOTHING
"""


def upgrade() -> None:
    for statement in (_SERVICES, _EDGES, _SATURATION):
        op.execute(statement)
    for name, table, column in _INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} ({column}, resolution, bucket_unix)")


def downgrade() -> None:
    op.execute("DROP INDEX " + ", ".join(name for name, _, _ in _INDEXES))
    for table in ("service_rollups", "edge_rollups", "saturation_rollups"):
        op.execute(f"DELETE FROM {table} WHERE resolution = 600")
