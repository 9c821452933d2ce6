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
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("id", BigInteger, primary_key=True, comment="fingerprint of the sorted attributes"),
    Column("service", Text, nullable=False, comment="service.name, or unknown_service"),
    Column("attributes", JSONB, nullable=False),
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
    postgresql_partition_by="RANGE (time_unix_nano)",
)
Index(
    "metric_points_identity",
    metric_points.c.series_id,
    metric_points.c.time_unix_nano,
    unique=True,
)

PARTITIONED_TABLES = {"spans": "start_unix_nano", "metric_points": "time_unix_nano"}
