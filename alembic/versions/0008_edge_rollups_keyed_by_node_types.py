"""Edge rollups keyed by both ends' types: a service and a virtual node of one name stay apart.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

`edge_rollups`' primary key was (resolution, bucket_unix, source, target, source_kind): a call
to the service `redis` (an instrumented proxy) and one to the database `redis` (a client span
with `db.system=redis`, `server.address=redis`) were summed into one row, typed by whichever
the deriver wrote last. The key now takes `source_type` after `source` and `target_type` after
`target`, so every (source, source type, target, target type, kind) is its own row. Rows keep
their values: an old row holds one key whatever it summed (it cannot be split). Rebuilding the
key locks the table while its index is built (once, on start). The indexes by source and by
target, which lead with the name, stay as they are: a node's edges are a name's rows with at
most a few types.

Downgrade merges the rows that only differ by their types into one (counts and histograms
summed, plaintext reasons summed, the types of the row with the most requests) before the
narrower key comes back.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NARROW = "resolution, bucket_unix, source, target, source_kind"
_WIDE = "resolution, bucket_unix, source, source_type, target, target_type, source_kind"

_MERGED = f"""
CREATE TEMPORARY TABLE edge_rollups_merged AS
WITH shared AS (
    SELECT {_NARROW} FROM edge_rollups GROUP BY {_NARROW} HAVING count(*) > 1
),
rows AS (
    SELECT e.* FROM edge_rollups e JOIN shared USING ({_NARROW})
),
sums AS (
    SELECT {_NARROW},
           (array_agg(source_type ORDER BY requests DESC, source_type, target_type))[1]
               AS source_type,
           (array_agg(target_type ORDER BY requests DESC, source_type, target_type))[1]
               AS target_type,
           sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
           sum(mtls_mutual)::bigint AS mtls_mutual, sum(mtls_tls)::bigint AS mtls_tls,
           sum(mtls_plaintext)::bigint AS mtls_plaintext,
           sum(mtls_unknown)::bigint AS mtls_unknown
    FROM rows GROUP BY {_NARROW}
),
histograms AS (
    SELECT {_NARROW}, array_agg(k ORDER BY k) AS latency_keys,
           array_agg(c ORDER BY k) AS latency_counts
    FROM (SELECT {_NARROW}, u.k, sum(u.c)::bigint AS c
          FROM rows, unnest(latency_keys, latency_counts) AS u(k, c)
          GROUP BY {_NARROW}, u.k) AS per_key
    GROUP BY {_NARROW}
),
reasons AS (
    SELECT {_NARROW}, jsonb_object_agg(reason, n) AS plaintext_reasons
    FROM (SELECT {_NARROW}, r.key AS reason, sum(r.value::bigint) AS n
          FROM rows, jsonb_each_text(plaintext_reasons) AS r
          GROUP BY {_NARROW}, r.key) AS per_reason
    GROUP BY {_NARROW}
)
SELECT s.resolution, s.bucket_unix, s.source, s.source_type, s.target, s.target_type,
       s.source_kind, s.requests, s.errors,
       coalesce(h.latency_keys, '{{}}') AS latency_keys,
       coalesce(h.latency_counts, '{{}}') AS latency_counts,
       s.mtls_mutual, s.mtls_tls, s.mtls_plaintext, s.mtls_unknown,
       coalesce(r.plaintext_reasons, '{{}}') AS plaintext_reasons
FROM sums s
LEFT JOIN histograms h USING ({_NARROW})
LEFT JOIN reasons r USING ({_NARROW})
"""

_COLUMNS = (
    "resolution, bucket_unix, source, source_type, target, target_type, source_kind, requests,"
    " errors, latency_keys, latency_counts, mtls_mutual, mtls_tls, mtls_plaintext, mtls_unknown,"
    " plaintext_reasons"
)


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE edge_rollups DROP CONSTRAINT edge_rollups_pkey, ADD PRIMARY KEY ({_WIDE})"
    )


def downgrade() -> None:
    op.execute(_MERGED)
    op.execute(
        f"""
        DELETE FROM edge_rollups e USING edge_rollups_merged m
        WHERE (e.resolution, e.bucket_unix, e.source, e.target, e.source_kind)
            = (m.resolution, m.bucket_unix, m.source, m.target, m.source_kind);
        INSERT INTO edge_rollups ({_COLUMNS}) SELECT {_COLUMNS} FROM edge_rollups_merged;
        DROP TABLE edge_rollups_merged;
        ALTER TABLE edge_rollups DROP CONSTRAINT edge_rollups_pkey, ADD PRIMARY KEY ({_NARROW});
        """
    )
