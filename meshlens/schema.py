"""The database schema, as SQLAlchemy Core tables: the one description queries and tests share.

Alembic migrations create it (`alembic/versions`); raw spans and points live in tables
partitioned by day on their OTLP time (`*_unix_nano`), so retention drops whole partitions and
indexes stay small as data grows. Partitions are managed by `meshlens.partitions`.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("id", BigInteger, primary_key=True, comment="fingerprint of the sorted attributes"),
    Column("service", Text, nullable=False, comment="service.name, or unknown_service"),
    Column("attributes", JSONB, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

senders = Table(
    "senders",
    metadata,
    Column("id", BigInteger, primary_key=True, comment="fingerprint of the identity"),
    Column(
        "identity",
        Text,
        nullable=False,
        comment="client certificate (mTLS): SPIFFE ID, else RFC 4514 subject",
    ),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

spans = Table(
    "spans",
    metadata,
    Column("trace_id", LargeBinary, nullable=False),
    Column("span_id", LargeBinary, nullable=False),
    Column("parent_span_id", LargeBinary),
    Column("resource_id", BigInteger, nullable=False),
    Column("service", Text, nullable=False),
    Column("scope_name", Text, nullable=False),
    Column("scope_version", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", SmallInteger, nullable=False, comment="OTLP SpanKind: 1 internal .. 5 consumer"),
    Column("start_unix_nano", BigInteger, nullable=False),
    Column("end_unix_nano", BigInteger, nullable=False),
    Column("status_code", SmallInteger, nullable=False, comment="0 unset, 1 ok, 2 error"),
    Column("status_message", Text, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("links", JSONB, comment="[{trace_id, span_id, attributes}] with hex ids"),
    Column("sender_id", BigInteger, comment="senders.id over mTLS, else NULL"),
    Column("trace_state", Text, comment="W3C tracestate (ot=th: the sampling threshold)"),
    postgresql_partition_by="RANGE (start_unix_nano)",
)
Index(
    "spans_identity",
    spans.c.trace_id,
    spans.c.span_id,
    spans.c.start_unix_nano,
    unique=True,
)

metric_series = Table(
    "metric_series",
    metadata,
    Column("id", BigInteger, primary_key=True, comment="fingerprint of the series identity"),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column(
        "type", Text, nullable=False, comment="gauge|sum|histogram|exponential_histogram|summary"
    ),
    Column("temporality", SmallInteger, nullable=False, comment="1 delta, 2 cumulative"),
    Column("is_monotonic", Boolean),
    Column("resource_id", BigInteger, nullable=False),
    Column("service", Text, nullable=False),
    Column("scope_name", Text, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("metric_series_name", metric_series.c.name)

metric_points = Table(
    "metric_points",
    metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("start_unix_nano", BigInteger, nullable=False),
    Column("time_unix_nano", BigInteger, nullable=False),
    Column("as_double", Double),
    Column("as_int", BigInteger),
    Column("count", BigInteger),
    Column("sum", Double),
    Column("min", Double),
    Column("max", Double),
    Column("bucket_counts", ARRAY(BigInteger)),
    Column("explicit_bounds", ARRAY(Double)),
    Column("scale", Integer),
    Column("zero_count", BigInteger),
    Column("positive_offset", Integer),
    Column("positive_bucket_counts", ARRAY(BigInteger)),
    Column("negative_offset", Integer),
    Column("negative_bucket_counts", ARRAY(BigInteger)),
    Column("quantiles", JSONB, comment="summary points: [{quantile, value}]"),
    Column("flags", BigInteger, nullable=False),
    Column(
        "overflow_key",
        BigInteger,
        nullable=False,
        server_default=text("0"),
        comment="folded into an overflow series: its own series' fingerprint, else 0",
    ),
    Column("sender_id", BigInteger, comment="senders.id over mTLS, else NULL"),
    postgresql_partition_by="RANGE (time_unix_nano)",
)
Index(
    "metric_points_identity",
    metric_points.c.series_id,
    metric_points.c.time_unix_nano,
    metric_points.c.overflow_key,
    unique=True,
)


def _half_columns() -> list[Column[object]]:
    return [
        Column("trace_id", LargeBinary, nullable=False),
        Column("span_id", LargeBinary, nullable=False, comment="the span id the half waits on"),
        Column(
            "side",
            SmallInteger,
            nullable=False,
            comment="1 client, 2 server, 3 proxy entry, 4 proxy client (collector.derive.pairing)",
        ),
        Column("service", Text, nullable=False),
        Column("start_unix_nano", BigInteger, nullable=False),
        Column("duration_ns", BigInteger, nullable=False),
        Column("error", Boolean, nullable=False, comment="by this side's own rules"),
        Column("mtls", SmallInteger, nullable=False, comment="0 unknown 1 plain 2 tls 3 mutual"),
        Column("peer", Text, nullable=False, comment="client halves: node if never paired"),
        Column("peer_type", Text, nullable=False),
        Column("operation", Text, nullable=False, server_default="", comment="entry halves"),
        Column("version", Text, nullable=False, server_default="", comment="entry halves"),
        Column("via_span_id", LargeBinary, comment="a proxy's span: its parent, or its own id"),
        Column(
            "counted",
            Boolean,
            nullable=False,
            server_default=false(),
            comment="already counted on the edge to `peer`: a late other half moves it",
        ),
        Column(
            "weight",
            Integer,
            nullable=False,
            server_default=text("1"),
            comment="requests the span stands for: its adjusted count when sampled",
        ),
        Column(
            "unknown_rate",
            Boolean,
            nullable=False,
            server_default=false(),
            comment="a proxy's span sampled at a rate nobody declared",
        ),
    ]


REQUEST_COLUMNS = ("requests", "errors")
"""Requests, and those that failed."""
LATENCY_COLUMNS = ("latency_keys", "latency_counts")
"""A latency histogram: its bucket keys (`meshlens.signals.histogram`), sorted, and their counts."""
MTLS_COLUMNS = ("mtls_mutual", "mtls_tls", "mtls_plaintext", "mtls_unknown")
"""Requests by mTLS state."""
SAMPLING_COLUMNS = ("unknown_rate",)
"""Of the requests, those counted from spans sampled at a rate nobody declared (a proxy's,
without `MESHLENS_SPAN_SAMPLING_PERCENT`): their rate is a lower bound."""
SIGNAL_COLUMNS = (*REQUEST_COLUMNS, *LATENCY_COLUMNS, *MTLS_COLUMNS, *SAMPLING_COLUMNS)
"""The signal columns of `rollup_inbox` and the rollup tables, in their order: what the deriver
writes and the read layer sums. Spell them from here, not as strings of their own."""


def _signal_columns() -> list[Column[object]]:
    keys, counts = LATENCY_COLUMNS
    return [
        *map(_count_column, REQUEST_COLUMNS),
        Column(keys, ARRAY(SmallInteger), nullable=False),
        Column(counts, ARRAY(BigInteger), nullable=False),
        *map(_count_column, MTLS_COLUMNS),
        *map(_counted_from_zero, SAMPLING_COLUMNS),
    ]


def _count_column(name: str) -> Column[object]:
    return Column(name, BigInteger, nullable=False)


def _counted_from_zero(name: str) -> Column[object]:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


edge_halves_inbox = Table(
    "edge_halves_inbox",
    metadata,
    *_half_columns(),
    # when the writer's transaction began: a half waits for its other half from then (0010)
    Column("arrived_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

edge_halves = Table(
    "edge_halves",
    metadata,
    *_half_columns(),
    Column("arrived_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("trace_id", "span_id", "side"),
)
Index("edge_halves_arrived", edge_halves.c.arrived_at)
Index(
    "edge_halves_uncounted",
    edge_halves.c.arrived_at,
    postgresql_where=text("side = 1 AND NOT counted AND peer_type <> 'proxy'"),
)

rollup_inbox = Table(
    "rollup_inbox",
    metadata,
    Column("kind", Text, nullable=False, comment="service or edge"),
    Column("minute_unix", BigInteger, nullable=False),
    Column("a", Text, nullable=False, comment="service | source"),
    Column("b", Text, nullable=False, comment="operation | source type"),
    Column("c", Text, nullable=False, comment="version | target"),
    Column("d", Text, nullable=False, comment="'' | target type"),
    Column("source_kind", Text, nullable=False),
    *_signal_columns(),
)

service_rollups = Table(
    "service_rollups",
    metadata,
    Column("resolution", Integer, primary_key=True, comment="seconds: 60, 600 or 3600"),
    Column("bucket_unix", BigInteger, primary_key=True),
    Column("service", Text, primary_key=True),
    Column("operation", Text, primary_key=True, comment="'' in service and version rows"),
    Column("version", Text, primary_key=True, comment="'' in service and operation rows"),
    *_signal_columns(),
)
Index(
    "service_rollups_by_service",
    service_rollups.c.service,
    service_rollups.c.resolution,
    service_rollups.c.bucket_unix,
)

edge_rollups = Table(
    "edge_rollups",
    metadata,
    Column("resolution", Integer, primary_key=True, comment="seconds: 60, 600 or 3600"),
    Column("bucket_unix", BigInteger, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("source_type", Text, primary_key=True, comment="a node is its name and its type"),
    Column("target", Text, primary_key=True),
    Column("target_type", Text, primary_key=True),
    Column("source_kind", Text, primary_key=True, comment="traces or mesh-metrics"),
    *_signal_columns(),
    Column(
        "plaintext_reasons",
        JSONB,
        nullable=False,
        server_default=text("'{}'"),
        comment="{reason: plaintext requests}, reasons the mesh gave (Linkerd no_tls_reason)",
    ),
)
Index(
    "edge_rollups_by_source",
    edge_rollups.c.source,
    edge_rollups.c.resolution,
    edge_rollups.c.bucket_unix,
)
Index(
    "edge_rollups_by_target",
    edge_rollups.c.target,
    edge_rollups.c.resolution,
    edge_rollups.c.bucket_unix,
)

metric_points_inbox = Table(
    "metric_points_inbox",
    metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("resource_id", BigInteger, nullable=False),
    Column("cumulative", Boolean, nullable=False),
    Column("start_unix_nano", BigInteger, nullable=False),
    Column("time_unix_nano", BigInteger, nullable=False),
    Column("value", Double, nullable=False, comment="counter value, or histogram count"),
    Column("bucket_counts", ARRAY(BigInteger)),
    Column("explicit_bounds", ARRAY(Double), comment="in nanoseconds"),
    Column("role", Text, nullable=False, comment="requests (counter) or latency (histogram)"),
    Column("source", Text, nullable=False),
    Column("source_type", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("target_type", Text, nullable=False),
    Column("error", Boolean, nullable=False),
    Column("mtls", SmallInteger, nullable=False, comment="0 unknown 1 plain 2 tls 3 mutual"),
    Column("plaintext_reason", Text, nullable=False),
)

series_cursors = Table(
    "series_cursors",
    metadata,
    Column("series_id", BigInteger, primary_key=True),
    Column("resource_id", BigInteger, nullable=False),
    Column("first_unix_nano", BigInteger, nullable=False, comment="time of the first point"),
    Column("start_unix_nano", BigInteger, nullable=False),
    Column("time_unix_nano", BigInteger, nullable=False),
    Column("value", Double, nullable=False),
    Column("bucket_counts", ARRAY(BigInteger)),
    Column("explicit_bounds", ARRAY(Double)),
    comment="newest point of each cumulative mesh series: what the next point is a delta from",
)
Index("series_cursors_resource", series_cursors.c.resource_id)
Index("series_cursors_time", series_cursors.c.time_unix_nano)

saturation_inbox = Table(
    "saturation_inbox",
    metadata,
    Column("minute_unix", BigInteger, nullable=False),
    Column("service", Text, nullable=False),
    Column("value", Double, nullable=False),
)

saturation_rollups = Table(
    "saturation_rollups",
    metadata,
    Column("resolution", Integer, primary_key=True, comment="seconds: 60, 600 or 3600"),
    Column("bucket_unix", BigInteger, primary_key=True),
    Column("service", Text, primary_key=True),
    Column("value", Double, nullable=False, comment="highest utilization in [0, 1]"),
)
Index(
    "saturation_rollups_by_service",
    saturation_rollups.c.service,
    saturation_rollups.c.resolution,
    saturation_rollups.c.bucket_unix,
)

# --- cardinality budget (migration 0007) ---------------------------------------------------------

cardinality_known = Table(
    "cardinality_known",
    metadata,
    Column("seq", BigInteger, nullable=False, autoincrement=True, comment="grows in commit order"),
    Column("kind", Text, primary_key=True, comment="service, operation or edge"),
    Column("a", Text, primary_key=True, comment="service | service | source"),
    Column("b", Text, primary_key=True, comment="'' | operation | target"),
    comment="services, operations and edges the deriver admitted within their caps",
)
Index("cardinality_known_seq", cardinality_known.c.seq)

cardinality_usage = Table(
    "cardinality_usage",
    metadata,
    Column("kind", Text, primary_key=True, comment="series"),
    Column("used", BigInteger, nullable=False, comment="admitted values (overflow rows not)"),
)

PARTITIONED_TABLES = {"spans": "start_unix_nano", "metric_points": "time_unix_nano"}

# --- alerting (migration 0005) -----------------------------------------------------------------

_now = func.now()
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("name", Text, primary_key=True),
    Column("definition", JSONB, nullable=False, comment="the rule as the API received it"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_now),
)
alert_receivers = Table(
    "alert_receivers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("url", Text, nullable=False, comment="a secret: masked in every answer"),
    Column("hmac_secret", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_now),
)
alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("matchers", JSONB, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_now),
)
alert_states = Table(
    "alert_states",
    metadata,
    Column("rule", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("annotations", JSONB, nullable=False),
    Column("state", Text, nullable=False, comment="pending|firing"),
    Column("value", Double),
    Column("active_at", DateTime(timezone=True), nullable=False),
    Column("fired_at", DateTime(timezone=True)),
    Column("last_true_at", DateTime(timezone=True), nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Column("generator_url", Text, nullable=False),
    PrimaryKeyConstraint("rule", "fingerprint"),
)
alert_history = Table(
    "alert_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("rule", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("state", Text, nullable=False, comment="pending|firing|resolved|inactive"),
    Column("value", Double),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("alert_history_at", alert_history.c.at)
alert_groups = Table(
    "alert_groups",
    metadata,
    Column("receiver", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("group_labels", JSONB, nullable=False),
    Column("rule", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("notified_at", DateTime(timezone=True)),
    Column("notified_hash", Text, nullable=False, server_default=""),
    Column("resolved", JSONB, nullable=False, server_default="[]"),
    Column("sequence", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("receiver", "group_key"),
)
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("idempotency_key", Text, nullable=False),
    Column("receiver", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("status", Text, nullable=False, comment="firing|resolved"),
    Column("notification", JSONB, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
)
Index(
    "notification_outbox_idempotency_key_key",
    notification_outbox.c.idempotency_key,
    unique=True,
)
Index(
    "notification_outbox_due",
    notification_outbox.c.next_attempt_at,
    postgresql_where=text("state = 'pending'"),
)
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text, nullable=False, comment="delivered|retry|failed"),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Double, nullable=False),
)
Index("delivery_attempts_outbox", delivery_attempts.c.outbox_id)
