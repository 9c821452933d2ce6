"""OTLP metrics (every data point type) as series rows and point rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from collector.decode.attributes import AttributeEncoder, clean_text, fingerprint
from collector.decode.window import TimeWindow
from collector.derive.mesh_metrics import EdgeSeries, edge_series, is_mesh_metric
from collector.derive.saturation import GaugeReadings, saturation_service
from collector.rows import DecodedBatch, PointRow, ResourceRow, SeriesRow

PointBuilder = Callable[[int, Any, int | None], PointRow | str]
_EDGE_CACHE_LIMIT = 50_000
INT64_MAX = 2**63 - 1  # counts are uint64 on the wire, bigint in PostgreSQL
MAX_TEMPORALITY = 2  # AggregationTemporality CUMULATIVE


def _number(series_id: int, point: Any, sender_id: int | None) -> PointRow | str:
    kind = point.WhichOneof("value")
    as_double = point.as_double if kind == "as_double" else None
    as_int = point.as_int if kind == "as_int" else None
    if kind is None:
        return "number data point has no value"
    return _row(series_id, point, sender_id, as_double=as_double, as_int=as_int)


def _histogram(series_id: int, point: Any, sender_id: int | None) -> PointRow | str:
    counts, bounds = list(point.bucket_counts), list(point.explicit_bounds)
    if counts and len(counts) != len(bounds) + 1:
        return "histogram bucket_counts must have one more entry than explicit_bounds"
    return _row(
        series_id,
        point,
        sender_id,
        count=point.count,
        sum=point.sum if point.HasField("sum") else None,
        min=point.min if point.HasField("min") else None,
        max=point.max if point.HasField("max") else None,
        bucket_counts=counts,
        explicit_bounds=bounds,
    )


def _exponential(series_id: int, point: Any, sender_id: int | None) -> PointRow | str:
    return _row(
        series_id,
        point,
        sender_id,
        count=point.count,
        sum=point.sum if point.HasField("sum") else None,
        min=point.min if point.HasField("min") else None,
        max=point.max if point.HasField("max") else None,
        scale=point.scale,
        zero_count=point.zero_count,
        positive_offset=point.positive.offset,
        positive_bucket_counts=list(point.positive.bucket_counts),
        negative_offset=point.negative.offset,
        negative_bucket_counts=list(point.negative.bucket_counts),
    )


def _summary(series_id: int, point: Any, sender_id: int | None) -> PointRow | str:
    quantiles = [{"quantile": q.quantile, "value": q.value} for q in point.quantile_values]
    return _row(
        series_id,
        point,
        sender_id,
        count=point.count,
        sum=point.sum,
        quantiles=orjson.dumps(quantiles).decode(),
    )


def _count_problem(kind: str, point: Any) -> str | None:
    """Why a histogram's or summary's counts cannot be stored (a bigint holds them), or None."""
    counts = [point.count]
    if kind == "histogram":
        counts.extend(point.bucket_counts)
    elif kind == "exponential_histogram":
        counts.append(point.zero_count)
        counts.extend(point.positive.bucket_counts)
        counts.extend(point.negative.bucket_counts)
    if max(counts) > INT64_MAX:
        return f"{kind} counts must be at most {INT64_MAX}, not {max(counts)}"
    return None


def _number_value(row: PointRow) -> float:
    """A number point's value (as_double, else as_int)."""
    return row[3] if row[3] is not None else float(row[4] or 0)


def _row(series_id: int, point: Any, sender_id: int | None, **values: Any) -> PointRow:
    get = values.get
    return (
        series_id,
        point.start_time_unix_nano,
        point.time_unix_nano,
        get("as_double"),
        get("as_int"),
        get("count"),
        get("sum"),
        get("min"),
        get("max"),
        get("bucket_counts"),
        get("explicit_bounds"),
        get("scale"),
        get("zero_count"),
        get("positive_offset"),
        get("positive_bucket_counts"),
        get("negative_offset"),
        get("negative_bucket_counts"),
        get("quantiles"),
        point.flags,
        sender_id,
    )


# data oneof name -> (series type, point builder)
_TYPES: dict[str, tuple[str, PointBuilder]] = {
    "gauge": ("gauge", _number),
    "sum": ("sum", _number),
    "histogram": ("histogram", _histogram),
    "exponential_histogram": ("exponential_histogram", _exponential),
    "summary": ("summary", _summary),
}


class MetricDecoder:
    """Decodes one OTLP Metric into series and points, rejecting bad points one by one.

    Points of the metrics meshlens derives from are also noted in the batch: the edge each
    Istio / Linkerd series describes (`collector.derive.mesh_metrics`, worked out once per series),
    and the utilization gauges' highest value per service and minute (`derive.saturation`).
    """

    def __init__(
        self, attributes: AttributeEncoder, saturation_metrics: frozenset[str] = frozenset()
    ) -> None:
        self._attributes = attributes
        self._saturation_metrics = saturation_metrics
        self._edges: dict[int, EdgeSeries | None] = {}

    def decode(
        self,
        batch: DecodedBatch,
        metric: Any,
        resource: ResourceRow,
        scope_name: str,
        window: TimeWindow,
        resource_attributes: Mapping[str, Any] | None = None,
        sender_id: int | None = None,
    ) -> None:
        """Append `metric`'s points (and any new series) to `batch`."""
        kind = metric.WhichOneof("data")
        if kind is None or kind not in _TYPES:
            return
        data = getattr(metric, kind)
        points: Iterable[Any] = data.data_points
        if not metric.name:
            for _ in points:
                batch.reject("metric has no name")
            return
        series_type, build = _TYPES[kind]
        counted = kind in ("histogram", "exponential_histogram", "summary")
        temporality = getattr(data, "aggregation_temporality", 0)
        if not 0 <= temporality <= MAX_TEMPORALITY:  # an open enum: any int32 arrives
            undefined = f"aggregation_temporality must be 0 to {MAX_TEMPORALITY}, not {temporality}"
            for _ in points:
                batch.reject(f"{metric.name}: {undefined}")
            return
        monotonic = data.is_monotonic if kind == "sum" else None
        mesh = temporality != 0 and is_mesh_metric(metric.name, series_type, monotonic)
        gauge = GaugeReadings() if self._is_saturation(metric.name, series_type) else None
        for point in points:
            problem = window.problem(point.time_unix_nano, "time_unix_nano")
            if problem is None and point.start_time_unix_nano > point.time_unix_nano:
                problem = "start_time_unix_nano is after time_unix_nano"
            if problem is None and counted:
                problem = _count_problem(kind, point)
            if problem is not None:
                batch.reject(f"{metric.name}: {problem}")
                continue
            attributes = self._attributes.as_dict(point.attributes)
            series = self._series(
                metric, series_type, temporality, monotonic, resource, scope_name, attributes
            )
            row = build(series.id, point, sender_id)
            if isinstance(row, str):
                batch.reject(f"{metric.name}: {row}")
                continue
            batch.series[series.id] = series
            batch.points.append(row)
            if mesh:
                self._note_edge(batch, series, attributes, resource_attributes or {})
            elif gauge is not None:
                gauge.add(point.time_unix_nano, attributes, _number_value(row))
        if gauge is not None:
            self._note_saturation(batch, gauge, resource, resource_attributes or {})

    def _is_saturation(self, name: str, series_type: str) -> bool:
        return series_type == "gauge" and name in self._saturation_metrics

    def _note_edge(
        self,
        batch: DecodedBatch,
        series: SeriesRow,
        attributes: Mapping[str, Any],
        resource: Mapping[str, Any],
    ) -> None:
        if series.id in self._edges:
            edge = self._edges[series.id]
        else:
            edge = edge_series(series.name, attributes, resource, series.service, series.unit)
            if len(self._edges) >= _EDGE_CACHE_LIMIT:
                self._edges.clear()
            self._edges[series.id] = edge
        if edge is not None:
            batch.edge_series[series.id] = edge

    @staticmethod
    def _note_saturation(
        batch: DecodedBatch,
        gauge: GaugeReadings,
        resource: ResourceRow,
        resource_attributes: Mapping[str, Any],
    ) -> None:
        service = saturation_service(resource.service, resource_attributes)
        if service:
            batch.ignored_utilizations += gauge.fold_into(batch.saturation, service)

    def _series(
        self,
        metric: Any,
        series_type: str,
        temporality: int,
        monotonic: bool | None,
        resource: ResourceRow,
        scope_name: str,
        attributes: dict[str, Any],
    ) -> SeriesRow:
        canonical = orjson.dumps(
            [
                metric.name,
                series_type,
                metric.unit,
                temporality,
                monotonic,
                resource.id,
                scope_name,
                attributes,
            ],
            option=orjson.OPT_SORT_KEYS,
        )
        return SeriesRow(
            id=fingerprint(canonical),
            name=clean_text(metric.name),
            description=clean_text(metric.description),
            unit=clean_text(metric.unit),
            type=series_type,
            temporality=temporality,
            is_monotonic=monotonic,
            resource_id=resource.id,
            service=resource.service,
            scope_name=clean_text(scope_name),
            attributes=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode(),
        )
