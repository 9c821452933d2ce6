"""Halves of proxy hops, calls counted before their other half arrived, and sampled spans.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

`edge_halves` and `edge_halves_inbox` gain what `collector.derive.pairing` needs to make a
sidecar and its app one hop, and to count a call without a server half within seconds:
- `operation`, `version`: an entry half's service signal key, so the deriver can take back the
  request a sidecar counted when its app's own span turns out to be the same request;
- `via_span_id`: for a proxy's span, its parent (the app span it continues) or, on side 4, its
  own id;
- `counted`: the call was already counted on the edge to `peer`; a server half arriving later
  moves it to the right edge. Rows already waiting were not counted: false.
- `weight`: the requests the span stands for (its adjusted count when sampled), and
  `unknown_rate`: a proxy's span sampled at a rate nobody declared.
Sides 3 (a proxy's entry span, keyed by its own id) and 4 (a proxy's client span, keyed by its
parent) are new values of `side`. `spans.trace_state` keeps the W3C tracestate (its `ot=th`
sampling threshold); `unknown_rate` in the rollups (and their inbox) counts the requests from
spans sampled at an unknown rate. Adding columns with constant defaults rewrites nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COLUMNS = """
    ADD COLUMN operation text NOT NULL DEFAULT '',
    ADD COLUMN version text NOT NULL DEFAULT '',
    ADD COLUMN via_span_id bytea,
    ADD COLUMN counted boolean NOT NULL DEFAULT false,
    ADD COLUMN weight integer NOT NULL DEFAULT 1,
    ADD COLUMN unknown_rate boolean NOT NULL DEFAULT false
"""


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE edge_halves_inbox {_COLUMNS};
        ALTER TABLE edge_halves {_COLUMNS};
        ALTER TABLE spans ADD COLUMN trace_state text;
        ALTER TABLE rollup_inbox ADD COLUMN unknown_rate bigint NOT NULL DEFAULT 0;
        ALTER TABLE service_rollups ADD COLUMN unknown_rate bigint NOT NULL DEFAULT 0;
        ALTER TABLE edge_rollups ADD COLUMN unknown_rate bigint NOT NULL DEFAULT 0;
        COMMENT ON COLUMN spans.trace_state IS 'W3C tracestate (ot=th: the sampling threshold)';
        CREATE INDEX edge_halves_uncounted ON edge_halves (arrived_at)
            WHERE side = 1 AND NOT counted AND peer_type <> 'proxy';
        """
    )


def downgrade() -> None:
    drop = ", ".join(
        f"DROP COLUMN {column}"
        for column in ("operation", "version", "via_span_id", "counted", "weight", "unknown_rate")
    )
    op.execute(
        f"""
        DROP INDEX edge_halves_uncounted;
        DELETE FROM edge_halves_inbox WHERE side > 2;
        DELETE FROM edge_halves WHERE side > 2 OR counted;
        ALTER TABLE edge_halves_inbox {drop};
        ALTER TABLE edge_halves {drop};
        ALTER TABLE spans DROP COLUMN trace_state;
        ALTER TABLE rollup_inbox DROP COLUMN unknown_rate;
        ALTER TABLE service_rollups DROP COLUMN unknown_rate;
        ALTER TABLE edge_rollups DROP COLUMN unknown_rate;
        """
    )
