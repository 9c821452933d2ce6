"""Senders: the client certificate identity (mTLS) that sent each span and metric point.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

With MESHLENS_TLS_CLIENT_CA_FILE set, the OTLP receivers know who sent a request: the SPIFFE ID
of its client certificate, else the certificate's subject. Each identity is stored once in
`senders`, keyed by its fingerprint like `resources`, and spans and points carry that id in
`sender_id` (NULL without mTLS). A nullable column without a default is added to the
partitioned tables without rewriting them.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE senders (
            id bigint PRIMARY KEY,
            identity text NOT NULL,
            first_seen_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE spans ADD COLUMN sender_id bigint;
        ALTER TABLE metric_points ADD COLUMN sender_id bigint;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE metric_points DROP COLUMN sender_id;
        ALTER TABLE spans DROP COLUMN sender_id;
        DROP TABLE senders;
        """
    )
