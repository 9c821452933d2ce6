"""Acknowledged means committed: resends stored once, group commit, and a database outage."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import CollectorRegistry

from collector.decode import OtlpDecoder, TimeWindow
from collector.metrics import IngestMetrics
from collector.pipeline import IngestPipeline, PipelineLimits
from collector.writer import KnownRows, PostgresWriter, WriteBatch
from harness.waiting import wait_until
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from tests.otlp_payloads import trace_request
from tests.support import RunningServer, reachable_temp_dir, running_server

PROTOBUF = {"content-type": "application/x-protobuf"}


def _count(server: RunningServer, service: str) -> int:
    return int(server.query("SELECT count(*) FROM spans WHERE service = %s", (service,))[0][0])


def test_resent_batch_is_stored_once(server: RunningServer) -> None:
    service = f"resend-{uuid.uuid4().hex[:8]}"
    body = trace_request(service, spans=5).SerializeToString()
    for _ in range(3):
        answer = httpx.post(f"{server.otlp_http}/v1/traces", content=body, headers=PROTOBUF)
        assert answer.status_code == 200
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        ExportTraceServiceResponse.FromString(export(body, timeout=10))
    assert _count(server, service) == 5


def test_duplicates_inside_one_request_are_stored_once(server: RunningServer) -> None:
    service = f"dup-{uuid.uuid4().hex[:8]}"
    request = trace_request(service, spans=4)
    scope_spans = request.resource_spans[0].scope_spans[0]
    scope_spans.spans.extend(list(scope_spans.spans))  # every span twice
    body = request.SerializeToString()
    answer = httpx.post(f"{server.otlp_http}/v1/traces", content=body, headers=PROTOBUF)
    assert answer.status_code == 200
    assert _count(server, service) == 4


def test_nul_characters_are_stored_not_refused(server: RunningServer) -> None:
    service = f"nul-{uuid.uuid4().hex[:8]}"
    request = trace_request(service, spans=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.name = "GET /a\x00b"
    span.attributes[0].value.string_value = "x\x00y"
    answer = httpx.post(
        f"{server.otlp_http}/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
    )
    assert answer.status_code == 200
    rows = server.query("SELECT name, attributes FROM spans WHERE service = %s", (service,))
    assert rows == [("GET /a\ufffdb", {"http.route": "x\ufffdy"})]


def test_concurrent_requests_share_one_commit(database_url: str) -> None:
    """Twenty requests submitted together are written by one COPY and one commit."""
    engine = Database(database_url).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    registry = CollectorRegistry()

    async def scenario() -> None:
        known = KnownRows()
        limits = PipelineLimits(
            100_000, 20_000, writers=1, timeout_seconds=30, retry_after_seconds=1
        )
        pipeline = IngestPipeline(
            lambda: PostgresWriter.connect(database_url, known), limits, IngestMetrics(registry)
        )
        await pipeline.start()
        while not pipeline.healthy:  # noqa: ASYNC110 - the writers connect in the background
            await asyncio.sleep(0.01)
        decoder = OtlpDecoder()
        window = TimeWindow.around(time.time_ns(), 7, 60)
        batches = [
            decoder.traces(trace_request(f"group-{n}").SerializeToString(), window)
            for n in range(20)
        ]
        await asyncio.gather(*(pipeline.submit(batch) for batch in batches))
        await pipeline.stop()

    asyncio.run(scenario())
    assert registry.get_sample_value("meshlens_ingest_batch_requests_count") == 1
    assert registry.get_sample_value("meshlens_ingest_batch_requests_sum") == 20
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (60,)


@pytest.mark.slow
def test_database_outage_answers_503_then_recovers(tmp_path: Path) -> None:
    """PostgreSQL stopped under meshlens: 503 + Retry-After, /readyz 503, then 200 by itself."""
    from meshlens.embedded_pg import EmbeddedPostgres

    with reachable_temp_dir() as folder:
        postgres = EmbeddedPostgres(folder)
        url = postgres.start()
        try:
            log = tmp_path / "serve.log"
            with running_server(url, log, MESHLENS_INGEST_TIMEOUT_SECONDS="3") as server:
                _outage_scenario(server, postgres)
        finally:
            postgres.stop()


def _post(server: RunningServer, service: str) -> httpx.Response:
    body = trace_request(service, spans=2).SerializeToString()
    return httpx.post(f"{server.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=15)


def _outage_scenario(server: RunningServer, postgres: object) -> None:
    from meshlens.embedded_pg import EmbeddedPostgres

    assert isinstance(postgres, EmbeddedPostgres)
    assert _post(server, "before").status_code == 200
    postgres.stop()
    refused = _post(server, "during")
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert httpx.get(f"{server.web}/readyz", timeout=10).status_code == 503
    assert _post(server, "during").status_code == 503  # fails fast while down, no hang
    assert httpx.get(f"{server.web}/healthz").status_code == 200
    postgres.start()

    def accepted_again() -> int | None:
        status = _post(server, "after").status_code
        return status if status == 200 else None

    status = wait_until(
        accepted_again,
        timeout=30,
        what=lambda: f"a span accepted again after the outage; the log:\n{server.log()}",
        every=0.5,
    )
    assert status == 200, server.log()
    assert httpx.get(f"{server.web}/readyz", timeout=10).status_code == 200
    counts = dict(server.query("SELECT service, count(*) FROM spans GROUP BY service"))
    assert counts.get("before") == 2
    assert counts.get("after", 0) >= 2
    assert "during" not in counts


def test_a_span_sent_twice_in_one_group_commit_counts_once(database_url: str) -> None:
    """The resend fallback path must not derive the same span twice."""
    engine = Database(database_url).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    request = trace_request("twice", spans=3)

    async def scenario() -> None:
        known = KnownRows()
        decoder = OtlpDecoder()
        window = TimeWindow.around(time.time_ns(), 7, 60)
        body = request.SerializeToString()
        first, second = decoder.traces(body, window), decoder.traces(body, window)
        writer = await PostgresWriter.connect(database_url, known)
        try:
            merged = WriteBatch(
                {**first.resources, **second.resources},
                {},
                first.spans + second.spans,
                first.facts + second.facts,
                [],
            )
            await writer.write(merged)
        finally:
            await writer.close()

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (3,)
        rows = conn.execute(
            "SELECT sum(requests) FROM rollup_inbox WHERE kind = 'service' AND b = '' AND c = ''"
        ).fetchone()
        assert rows == (3,)


def test_spans_prepared_by_a_decode_worker_store_and_derive_like_inline_ones(
    database_url: str,
) -> None:
    """COPY text from a worker equals write_row's rows; a resent prepared request counts once."""
    from collector.decode.pool import prepare_spans

    engine = Database(database_url).sync_engine()
    upgrade_to_head(engine)
    engine.dispose()
    request = trace_request("prepared\\tab\tname", spans=3)
    request.resource_spans[0].scope_spans[0].spans[0].name = "back\\slash\nnew\rline\ttab"
    body = request.SerializeToString()

    async def write_twice() -> None:
        known = KnownRows()
        window = TimeWindow.around(time.time_ns(), 7, 60)
        writer = await PostgresWriter.connect(database_url, known)
        try:
            for _ in range(2):  # the second time, every span is a resend
                batch = OtlpDecoder().traces(body, window)
                prepare_spans(batch)
                merged = WriteBatch(
                    batch.resources, {}, [], [], [batch.prepared] if batch.prepared else []
                )
                await writer.write(merged)
        finally:
            await writer.close()

    asyncio.run(write_twice())
    with psycopg.connect(database_url) as conn:
        names = conn.execute("SELECT service, name FROM spans ORDER BY start_unix_nano").fetchall()
        assert names[0] == ("prepared\\tab\tname", "back\\slash\nnew\rline\ttab")
        assert len(names) == 3
        ids = conn.execute("SELECT trace_id, span_id FROM spans").fetchall()
        sent = {(s.trace_id, s.span_id) for s in request.resource_spans[0].scope_spans[0].spans}
        assert set(ids) == sent
        totals = conn.execute(
            "SELECT sum(requests) FROM rollup_inbox WHERE kind = 'service' AND b = '' AND c = ''"
        ).fetchone()
        assert totals == (3,)
