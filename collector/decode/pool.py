"""DecodePool: OTLP decoding in worker processes, so ingest uses more than one core.

Decoding and classifying spans is the heaviest Python work of ingest. With `processes` > 0 it
runs in that many worker processes (each with its own decoder caches) and the event loop only
unpickles the rows; with 0 it runs inline. Workers are started with `spawn`, never `fork`: the
server process has gRPC and asyncio threads that must not be copied.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Literal

from collector.copy_text import span_copy_text
from collector.decode import OtlpDecoder, TimeWindow
from collector.derive.at_ingest import derive_ahead
from collector.errors import StoreUnavailable
from collector.rows import DecodedBatch, PreparedSpans
from meshlens.timeunits import NANOS_PER_DAY

Signal = Literal["spans", "points"]

_worker_decoder: OtlpDecoder | None = None


def _start_worker(saturation_metrics: frozenset[str], sampling_percent: float | None) -> None:
    global _worker_decoder
    _worker_decoder = OtlpDecoder(saturation_metrics, sampling_percent)


def _decode_in_worker(
    signal: Signal, body: bytes, window: TimeWindow, as_json: bool, sender_id: int | None
) -> DecodedBatch:
    decoder = _worker_decoder or OtlpDecoder()
    batch = decode(decoder, signal, body, window, as_json, sender_id)
    if batch.spans:
        prepare_spans(batch)
    return batch


def prepare_spans(batch: DecodedBatch) -> None:
    """Replace the batch's span rows by their COPY text, and derive from its facts ahead.

    Sending one bytes object and a few aggregates back costs far less than pickling rows.
    """
    batch.prepared = PreparedSpans(
        copy_text=span_copy_text(batch.spans),
        count=len(batch.spans),
        days=frozenset(row[9] // NANOS_PER_DAY for row in batch.spans),
        derivation=derive_ahead(batch.facts),
        facts=batch.facts,
    )
    batch.spans, batch.facts = [], []


def decode(
    decoder: OtlpDecoder,
    signal: Signal,
    body: bytes,
    window: TimeWindow,
    as_json: bool,
    sender_id: int | None = None,
) -> DecodedBatch:
    """Decode one request body of `signal` with `decoder`; rows carry `sender_id`."""
    if signal == "spans":
        return decoder.traces(body, window, as_json=as_json, sender_id=sender_id)
    return decoder.metrics(body, window, as_json=as_json, sender_id=sender_id)


class DecodePool:
    """Decodes request bodies inline (processes=0) or in worker processes."""

    def __init__(
        self,
        processes: int,
        saturation_metrics: frozenset[str] = frozenset(),
        sampling_percent: float | None = None,
    ) -> None:
        self._decoder = OtlpDecoder(saturation_metrics, sampling_percent)
        self._worker_args = (saturation_metrics, sampling_percent)
        self._processes = processes
        self._pool = self._new_pool()
        self._slots = asyncio.Semaphore(max(2 * processes, 1))  # bounded queue of bodies

    def _new_pool(self) -> ProcessPoolExecutor | None:
        if self._processes <= 0:
            return None
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._worker_args,
        )

    async def decode(
        self,
        signal: Signal,
        body: bytes,
        window: TimeWindow,
        *,
        as_json: bool,
        sender_id: int | None = None,
    ) -> DecodedBatch:
        """The decoded batch; decoding errors (MalformedRequest) are raised here."""
        pool = self._pool
        if pool is None:
            return decode(self._decoder, signal, body, window, as_json, sender_id)
        loop = asyncio.get_running_loop()
        async with self._slots:
            try:
                return await loop.run_in_executor(
                    pool, _decode_in_worker, signal, body, window, as_json, sender_id
                )
            except BrokenProcessPool as exc:  # a worker died (killed, out of memory)
                if self._pool is pool:
                    self._pool = self._new_pool()
                raise StoreUnavailable("a decoder process died; retry", 1) from exc

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
