"""Alerting: rules and receivers made through the API, silences, alert states and history,
notification groups, and the outbox of notifications with their delivery attempts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Rules and receivers from MESHLENS_RULES_FILE are not stored (the file is their source); those
made through the API are, as the JSON they were made from. One evaluation round is one
transaction: state changes, history, groups and the notifications they cause commit together,
so a crash loses none and sends none twice from the rounds' side; the outbox is delivered
at least once, each notification with its own idempotency key.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE alert_rules (
    name text PRIMARY KEY,
    definition jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE alert_receivers (
    name text PRIMARY KEY,
    type text NOT NULL,
    url text NOT NULL,
    hmac_secret text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE alert_silences (
    id uuid PRIMARY KEY,
    matchers jsonb NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    created_by text NOT NULL,
    comment text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE alert_states (
    rule text NOT NULL,
    fingerprint text NOT NULL,
    labels jsonb NOT NULL,
    annotations jsonb NOT NULL,
    state text NOT NULL,
    value double precision,
    active_at timestamptz NOT NULL,
    fired_at timestamptz,
    last_true_at timestamptz NOT NULL,
    evaluated_at timestamptz NOT NULL,
    generator_url text NOT NULL,
    PRIMARY KEY (rule, fingerprint)
);
CREATE TABLE alert_history (
    id bigserial PRIMARY KEY,
    rule text NOT NULL,
    fingerprint text NOT NULL,
    labels jsonb NOT NULL,
    state text NOT NULL,
    value double precision,
    at timestamptz NOT NULL
);
CREATE INDEX alert_history_at ON alert_history (at);
CREATE TABLE alert_groups (
    receiver text NOT NULL,
    group_key text NOT NULL,
    group_labels jsonb NOT NULL,
    rule text NOT NULL,
    created_at timestamptz NOT NULL,
    notified_at timestamptz,
    notified_hash text NOT NULL DEFAULT '',
    resolved jsonb NOT NULL DEFAULT '[]',
    sequence integer NOT NULL DEFAULT 0,
    PRIMARY KEY (receiver, group_key)
);
CREATE TABLE notification_outbox (
    id bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    receiver text NOT NULL,
    group_key text NOT NULL,
    status text NOT NULL,
    notification jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE state = 'pending';
CREATE TABLE delivery_attempts (
    id bigserial PRIMARY KEY,
    outbox_id bigint NOT NULL REFERENCES notification_outbox (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    error text,
    duration_ms double precision NOT NULL
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id);
"""


def upgrade() -> None:
    op.execute(_TABLES)


def downgrade() -> None:
    op.execute(
        "DROP TABLE delivery_attempts, notification_outbox, alert_groups, alert_history, "
        "alert_states, alert_silences, alert_receivers, alert_rules"
    )
