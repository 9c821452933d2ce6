"""A queued request half keeps when ingest committed it, not when the deriver took it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

`edge_halves.arrived_at` was set when a derivation pass moved a half out of
`edge_halves_inbox`: a call without a server half waited `unpaired_count_after_seconds` from
that pass, up to a whole pass cycle after its acknowledgement, before it counted. The inbox
now stamps each half in the writer's transaction (`now()`, the transaction's start) and the
pass carries the stamp over. `now()` is stable, so adding the column rewrites nothing; halves
already queued get the time of the upgrade.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE edge_halves_inbox ADD COLUMN arrived_at timestamptz NOT NULL DEFAULT now()"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE edge_halves_inbox DROP COLUMN arrived_at")
