"""OtlpIngest: what both receivers call. Decode, admit, wait for the commit, answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from collector.decode import TimeWindow, metrics_response, trace_response
from collector.decode.attributes import fingerprint
from collector.decode.pool import DecodePool
from collector.errors import IngestError, MalformedRequest, RetryableError
from collector.metrics import IngestMetrics
from collector.pipeline import IngestPipeline
from collector.rows import DecodedBatch, SenderRow

Signal = Literal["spans", "points"]
Transport = Literal["grpc", "http"]


@dataclass(frozen=True, slots=True)
class RetentionWindow:
    """How far back and ahead item times are accepted (from Settings)."""

    span_retention_days: int
    point_retention_days: int
    future_skew_seconds: int


class OtlpIngest:
    """Turns a request body into a committed batch and the OTLP answer to send back."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        retention: RetentionWindow,
        metrics: IngestMetrics,
        decoders: DecodePool,
    ) -> None:
        self.pipeline = pipeline
        self._retention = retention
        self._metrics = metrics
        self._decoders = decoders

    async def export(
        self,
        signal: Signal,
        body: bytes,
        *,
        as_json: bool,
        transport: Transport,
        sender: str | None = None,
    ) -> bytes:
        """Store what `body` carries, with the `sender` identity (mTLS) when known; return the
        encoded Export*ServiceResponse."""
        known = None if sender is None else SenderRow(fingerprint(sender.encode()), sender)
        try:
            batch = await self._decode(signal, body, as_json, known)
        except MalformedRequest:
            self.refused(signal, transport, "malformed")
            raise
        try:
            await self.pipeline.submit(batch)
        except RetryableError as exc:
            reason = type(exc).__name__.lower()
            self.refused(signal, transport, reason, batch.items)
            raise
        except IngestError:
            self.refused(signal, transport, "malformed", batch.items)
            raise
        self._metrics.accepted.labels(signal, transport).inc(batch.items)
        if batch.rejected:
            self._metrics.rejected.labels(signal, transport).inc(batch.rejected)
        if batch.ignored_utilizations:
            self._metrics.ignored_utilizations.inc(batch.ignored_utilizations)
        respond = trace_response if signal == "spans" else metrics_response
        return respond(batch.rejected, batch.error_message, as_json=as_json)

    def refused(self, signal: Signal, transport: Transport, reason: str, items: int = 0) -> None:
        """Count a request refused as a whole (and its items, when known)."""
        self._metrics.refused_requests.labels(signal, transport, reason).inc()
        if items:
            self._metrics.refused_items.labels(signal, transport, reason).inc(items)

    async def _decode(
        self, signal: Signal, body: bytes, as_json: bool, sender: SenderRow | None
    ) -> DecodedBatch:
        r = self._retention
        days = r.span_retention_days if signal == "spans" else r.point_retention_days
        window = TimeWindow.around(time.time_ns(), days, r.future_skew_seconds)
        sender_id = None if sender is None else sender.id
        batch = await self._decoders.decode(
            signal, body, window, as_json=as_json, sender_id=sender_id
        )
        batch.sender = sender
        return batch
