"""Domain rows produced by decoding and consumed by the writer, in COPY column order.

These are plain tuples and small dataclasses: the wire types (`opentelemetry.proto`) stay in
`collector.decode`, and the writer knows nothing of protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.derive.batch import BatchDerivation
    from collector.derive.mesh_metrics import EdgeSeries
    from collector.derive.span_facts import SpanFacts

# Column order of `spans` rows as written by COPY; must match meshlens.schema.spans.
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "resource_id",
    "service",
    "scope_name",
    "scope_version",
    "name",
    "kind",
    "start_unix_nano",
    "end_unix_nano",
    "status_code",
    "status_message",
    "attributes",
    "links",
    "sender_id",
    "trace_state",
)
SpanRow = tuple[
    bytes,
    bytes,
    bytes | None,
    int,
    str,
    str,
    str,
    str,
    int,
    int,
    int,
    int,
    str,
    str,
    str | None,
    int | None,
    str | None,
]

# Column order of `metric_points` rows; must match meshlens.schema.metric_points.
POINT_COLUMNS = (
    "series_id",
    "start_unix_nano",
    "time_unix_nano",
    "as_double",
    "as_int",
    "count",
    "sum",
    "min",
    "max",
    "bucket_counts",
    "explicit_bounds",
    "scale",
    "zero_count",
    "positive_offset",
    "positive_bucket_counts",
    "negative_offset",
    "negative_bucket_counts",
    "quantiles",
    "flags",
    "sender_id",
)
PointRow = tuple[
    int,
    int,
    int,
    float | None,
    int | None,
    int | None,
    float | None,
    float | None,
    float | None,
    list[int] | None,
    list[float] | None,
    int | None,
    int | None,
    int | None,
    list[int] | None,
    int | None,
    list[int] | None,
    str | None,
    int,
    int | None,
]


@dataclass(frozen=True, slots=True)
class ResourceRow:
    """One distinct resource (the emitting process), keyed by a fingerprint of its attributes."""

    id: int
    service: str
    attributes: str  # JSON object


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """One metric series: name, type and identifying attributes, keyed by a fingerprint."""

    id: int
    name: str
    description: str
    unit: str
    type: str  # gauge | sum | histogram | exponential_histogram | summary
    temporality: int  # 0 unspecified, 1 delta, 2 cumulative
    is_monotonic: bool | None
    resource_id: int
    service: str
    scope_name: str
    attributes: str  # JSON object


@dataclass(frozen=True, slots=True)
class SenderRow:
    """The client certificate identity (mTLS) a request came with, keyed by its fingerprint;
    spans and points carry the id as `sender_id`."""

    id: int
    identity: str


@dataclass(slots=True)
class PreparedSpans:
    """Spans made ready in a decode worker: their COPY text and what they derive.

    `facts` are kept so that, in the rare batch where some spans are resends, the new ones
    alone can be derived again (`collector.derive.at_ingest.span_inbox`).
    """

    copy_text: bytes
    count: int
    days: frozenset[int]
    derivation: BatchDerivation
    facts: list[SpanFacts]


@dataclass(slots=True)
class DecodedBatch:
    """What one OTLP request carried, ready to write, and what was rejected from it."""

    resources: dict[int, ResourceRow] = field(default_factory=dict)
    spans: list[SpanRow] = field(default_factory=list)
    facts: list[SpanFacts] = field(default_factory=list)
    series: dict[int, SeriesRow] = field(default_factory=dict)
    points: list[PointRow] = field(default_factory=list)
    edge_series: dict[int, EdgeSeries] = field(default_factory=dict)  # mesh series among them
    saturation: dict[tuple[int, str], float] = field(default_factory=dict)  # (minute, service)
    ignored_utilizations: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    prepared: PreparedSpans | None = None  # set instead of spans/facts by a decode worker
    sender: SenderRow | None = None

    @property
    def items(self) -> int:
        """Spans plus points to store."""
        spans = self.prepared.count if self.prepared is not None else len(self.spans)
        return spans + len(self.points)

    def reject(self, reason: str) -> None:
        """Count one rejected item, keeping the first few distinct reasons."""
        self.rejected += 1
        if len(self.errors) < 5 and reason not in self.errors:
            self.errors.append(reason)

    @property
    def error_message(self) -> str:
        """The partial-success message: the first distinct reasons."""
        if not self.rejected:
            return ""
        return f"{self.rejected} rejected: " + "; ".join(self.errors)
