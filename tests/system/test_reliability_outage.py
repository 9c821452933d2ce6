"""Database outage: PostgreSQL stopped for 30 s under OpenTelemetry SDK load.

While it is down, meshlens refuses at once (503 + Retry-After over HTTP, UNAVAILABLE with
RetryInfo over gRPC), queues nothing for it and its memory stays under the documented bound;
the SDK exporters wait as asked and retry. When PostgreSQL is back, meshlens reconnects by
itself and the SDK's own retries deliver every span the application emitted: each is stored
exactly once, none is lost.

The exporters get a 90 s timeout and meshlens a 10 s Retry-After: the Python SDK makes at most
6 attempts, waiting what the server asks between them, so 5 waits of 10 s outlast 30 s of
outage plus the restart (the README's advice to operators).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from harness.waiting import wait_until
from meshlens.embedded_pg import EmbeddedPostgres
from tests.otlp_payloads import trace_request
from tests.reliability_support import (
    RSS_LIMIT_MIB,
    PairMaker,
    RssSampler,
    SdkLoad,
    assert_stored_once,
    exporters,
    stored_counts,
)
from tests.support import (
    RunningServer,
    metric_total,
    reachable_temp_dir,
    running_server,
    unique_names,
)

OUTAGE_SECONDS = 30
RETRY_AFTER_SECONDS = 10
EXPORT_TIMEOUT_SECONDS = 90
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.mark.slow
def test_database_outage_under_sdk_load_loses_nothing(tmp_path: Path) -> None:
    with reachable_temp_dir() as folder:
        postgres = EmbeddedPostgres(folder)
        url = postgres.start()
        try:
            log = tmp_path / "meshlens.log"
            retry_after = str(RETRY_AFTER_SECONDS)
            with running_server(url, log, MESHLENS_RETRY_AFTER_SECONDS=retry_after) as server:
                outage_under_load(server, postgres)
        finally:
            postgres.stop()


def outage_under_load(server: RunningServer, postgres: EmbeddedPostgres) -> None:
    name = unique_names()
    services = [name("frontend"), name("backend")]
    load = SdkLoad(
        exporters(server, 4, timeout=EXPORT_TIMEOUT_SECONDS),
        lambda: PairMaker(*services),
        pairs_per_batch=50,
        pause=0.02,
    )
    with RssSampler(lambda: server.process.pid) as rss, load:
        load.ledger.wait_acknowledged(4_000)
        before_mib = rss.peak_mib
        postgres.stop()
        outage_started = len(rss.samples)
        queued = refuse_while_down(server, OUTAGE_SECONDS)
        outage_mib = max(rss.samples[outage_started:]) / 2**20
        postgres.start()
        recovered = len(load.ledger.acknowledged)
        load.ledger.wait_acknowledged(recovered + 4_000, timeout=EXPORT_TIMEOUT_SECONDS)
        load.stop(timeout=EXPORT_TIMEOUT_SECONDS)
    ledger = load.ledger
    assert queued == 0, f"{queued} items were queued for a database that is down"
    given_up = len(ledger.failed)
    assert given_up == 0, f"the SDK gave up {given_up} spans"
    stored = stored_counts(server, services)
    assert_stored_once(stored, ledger.acknowledged)
    assert set(stored) == ledger.emitted  # everything the application emitted, nothing else
    assert rss.peak_mib < RSS_LIMIT_MIB
    refused = metric_total(
        server, "meshlens_ingest_refused_requests_total", reason="storeunavailable"
    )
    assert refused > 0  # the SDKs were refused, and their retries delivered
    print(
        f"\noutage: {OUTAGE_SECONDS} s; {len(ledger.emitted)} spans emitted, "
        f"{len(ledger.acknowledged)} acknowledged, {len(stored)} stored once each, "
        f"{given_up} given up; {refused:.0f} requests refused with 503/UNAVAILABLE; "
        f"peak RSS {before_mib:.0f} MiB before, {outage_mib:.0f} MiB during, "
        f"{rss.peak_mib:.0f} MiB overall"
    )


def refuse_while_down(server: RunningServer, seconds: float) -> float:
    """Probe meshlens for `seconds` while PostgreSQL is down: every request is refused at once
    with a retry delay over HTTP and gRPC, /readyz says not ready. Returns the most items the
    ingest queue held once the writers had noticed the outage."""
    end = time.monotonic() + seconds
    wait_until(
        lambda: metric_total(server, "meshlens_ingest_healthy_writers") == 0,
        timeout=30,
        what="meshlens to notice the outage",
        every=0.1,
    )
    most_queued = 0.0
    while time.monotonic() < end:
        check_http_refusal(server)
        check_grpc_refusal(server)
        assert httpx.get(f"{server.web}/readyz", timeout=10).status_code == 503
        most_queued = max(most_queued, metric_total(server, "meshlens_ingest_queue_items"))
        time.sleep(1)
    return most_queued


def check_http_refusal(server: RunningServer) -> None:
    answer = httpx.post(
        f"{server.otlp_http}/v1/traces",
        content=trace_request("probe", spans=2).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
        timeout=30,
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert Status.FromString(answer.content).code == grpc.StatusCode.UNAVAILABLE.value[0]


def check_grpc_refusal(server: RunningServer) -> None:
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export: Callable[..., bytes] = channel.unary_unary(
            TRACE_EXPORT, request_serializer=bytes, response_deserializer=bytes
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(trace_request("probe", spans=2).SerializeToString(), timeout=30)
    error = refused.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(error.trailing_metadata() or ())
    status = Status.FromString(trailers["grpc-status-details-bin"])
    (detail,) = status.details
    retry_info = RetryInfo()
    assert detail.Unpack(retry_info)
    assert retry_info.retry_delay.seconds == RETRY_AFTER_SECONDS
    # the same delay where the OpenTelemetry Python SDK looks for it
    retry_info = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert retry_info.retry_delay.seconds == RETRY_AFTER_SECONDS
