"""`meshlens serve`: every listener in one process, sharing one event loop.

OTLP/gRPC, OTLP/HTTP and the web port run side by side; the ingest pipeline commits what the
receivers accept; a maintenance task keeps daily partitions ahead and drops expired ones. The
deriver runs beside them on a thread and event loop of its own (`own_loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Generator
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from alerting.service import AlertingConfig, AlertingService
from api.app import create_app
from collector.cardinality_budget import CardinalityBudget
from collector.decode.pool import DecodePool
from collector.derive.cardinality import Caps
from collector.derive.loop import derive_loop
from collector.derive.own_loop import OwnLoopTask
from collector.derive.retention import maintain_partitions, maintenance_loop
from collector.ingest import OtlpIngest, RetentionWindow
from collector.metrics import IngestMetrics
from collector.pipeline import IngestPipeline, PipelineLimits
from collector.receivers.auth import IngestTokens
from collector.receivers.bodies import BodyBudget
from collector.receivers.grpc_receiver import OtlpGrpcReceiver
from collector.receivers.http_receiver import OtlpHttpReceiver
from collector.writer import KnownRows, PostgresWriter
from dashboards.routes import Ports, include_dashboards
from meshlens.allowlist import Allowlist
from meshlens.asgi_tls import ClientCertificateProtocol
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from meshlens.settings import Settings
from meshlens.tls import CertificateFiles, ServerTls, TlsError, TlsFiles
from meshlens.web_access import AccessControl, AccessError, AccessTokens

log = logging.getLogger("meshlens")
GC_YOUNG_THRESHOLD = 20_000


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `serve` (several share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(settings: Settings, database: Database) -> None:
    """Run meshlens until SIGINT or SIGTERM."""
    refuse_open_doors(settings)
    if warning := clear_text_warning(settings):
        log.warning("%s", warning)
    tls = server_tls(settings)
    await asyncio.to_thread(_migrate, database)
    known = KnownRows()
    await maintain_partitions(database, settings, known)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    budget = CardinalityBudget(cardinality_caps(settings), registry)
    await budget.load(database.url)
    known.series_budget = budget.series
    pipeline = IngestPipeline(
        lambda: PostgresWriter.connect(database.url, known), _limits(settings), metrics
    )
    decoders = DecodePool(
        settings.decode_processes,
        frozenset(settings.saturation_metrics),
        settings.span_sampling_percent,
    )
    ingest = OtlpIngest(pipeline, _retention(settings), metrics, decoders)
    engine = database.async_engine()
    api = create_app(engine, registry, ingest_healthy=lambda: pipeline.healthy)
    ports = Ports(settings.otlp_grpc_port, settings.otlp_http_port)
    if tls is not None:
        ports = Ports(ports.otlp_grpc, ports.otlp_http, tls=True, client_certificates=tls.mutual)
    include_dashboards(api, ports)
    api.state.access_tokens = _access_tokens(settings)
    api.add_middleware(AccessControl, tokens=api.state.access_tokens)
    alerting = AlertingService(engine, _alerting_config(settings), registry)
    api.state.alerting = alerting
    tokens = IngestTokens(
        (token.get_secret_value() for token in settings.ingest_tokens),
        settings.ingest_tokens_file,
    )
    bodies = BodyBudget(settings.body_budget_bytes, settings.retry_after_seconds)
    otlp_http = OtlpHttpReceiver(ingest, settings.max_body_bytes, tokens, bodies).app()
    grpc_server = OtlpGrpcReceiver(ingest, settings.grpc_max_message_bytes, tokens).server(
        f"{settings.host}:{settings.otlp_grpc_port}",
        tls.grpc_credentials() if tls is not None else None,
    )
    web = [
        _web(otlp_http, settings, settings.otlp_http_port, tls, client_certificates=True),
        _web(api, settings, settings.http_port, tls),
    ]
    await pipeline.start()
    await grpc_server.start()
    await alerting.start()
    tasks = [asyncio.create_task(server.serve()) for server in web]
    maintenance = asyncio.create_task(maintenance_loop(database, settings, known))
    deriving = OwnLoopTask(
        lambda: derive_loop(database, settings, metrics, budget), name="meshlens-deriver"
    )
    deriving.start()
    try:
        await _wait_started(web, tasks)
        _settle_garbage_collector()
        _announce(settings, tls)
        await _wait_for_stop_signal(tasks)
    finally:
        log.info("meshlens is stopping")
        maintenance.cancel()
        await deriving.stop()
        await alerting.stop()
        for server in web:
            server.should_exit = True
        await grpc_server.stop(grace=5)
        await asyncio.gather(*tasks, return_exceptions=True)
        await pipeline.stop()
        decoders.close()
        await engine.dispose()


def _settle_garbage_collector() -> None:
    """Keep collector pauses out of answer times once everything long-lived exists.

    Start-up leaves ~10^5 long-lived objects (modules, schemas, caches); `gc.freeze` moves them
    out of the collector's sight, so full collections no longer walk them. A higher first
    threshold makes young collections rarer: ingest allocates many short-lived objects per
    batch, and each collection of them is cheap but interrupts the event loop.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _migrate(database: Database) -> None:
    engine = database.sync_engine()
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()


def _limits(settings: Settings) -> PipelineLimits:
    return PipelineLimits(
        queue_items=settings.ingest_queue_items,
        batch_max_items=settings.batch_max_items,
        writers=settings.writer_connections,
        timeout_seconds=settings.ingest_timeout_seconds,
        retry_after_seconds=settings.retry_after_seconds,
    )


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def refuse_open_doors(settings: Settings) -> None:
    """Listening beyond loopback needs ingest and web-port tokens, or `--insecure`."""
    if settings.insecure or _loopback(settings.host):
        return
    missing = []
    senders_known = settings.ingest_tokens or settings.ingest_tokens_file is not None
    if not senders_known and settings.tls_client_ca_file is None:  # mTLS: certificates say who
        missing.append(
            "MESHLENS_INGEST_TOKENS (or MESHLENS_INGEST_TOKENS_FILE, or client certificates: "
            "MESHLENS_TLS_CLIENT_CA_FILE)"
        )
    if not settings.api_tokens and settings.api_tokens_file is None:
        missing.append("MESHLENS_API_TOKENS (or MESHLENS_API_TOKENS_FILE)")
    if missing:
        raise SystemExit(
            f"meshlens: refusing to listen on {settings.host} without "
            f"{' and '.join(missing)}: anyone who reaches the ports could send and read "
            "telemetry. Set them, listen on 127.0.0.1, or pass --insecure "
            "(MESHLENS_INSECURE=true) to accept that."
        )


def clear_text_warning(settings: Settings) -> str | None:
    """What to tell the operator when tokens and telemetry would cross the network unencrypted."""
    if _loopback(settings.host) or settings.tls_cert_file is not None:
        return None
    return (
        f"listening on {settings.host} without TLS: tokens, telemetry and pages cross the "
        "network in clear text; set MESHLENS_TLS_CERT_FILE and MESHLENS_TLS_KEY_FILE (and "
        "MESHLENS_TLS_CLIENT_CA_FILE for mTLS from the sidecars)"
    )


def _loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def server_tls(settings: Settings) -> ServerTls | None:
    """TLS for the listeners from the settings' files, or None; SystemExit saying what is
    wrong with them (a missing half, an unreadable file, a key of another certificate)."""
    try:
        files = TlsFiles.from_settings(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        )
        return None if files is None else ServerTls(CertificateFiles(files))
    except TlsError as exc:
        raise SystemExit(f"meshlens: TLS: {exc}") from exc


def _access_tokens(settings: Settings) -> AccessTokens:
    entries = [token.get_secret_value() for token in settings.api_tokens]
    try:
        return AccessTokens.load(entries, settings.api_tokens_file)
    except (AccessError, OSError) as exc:
        raise SystemExit(f"meshlens: MESHLENS_API_TOKENS: {exc}") from exc


def _alerting_config(settings: Settings) -> AlertingConfig:
    return AlertingConfig(
        rules_file=settings.rules_file,
        eval_interval=settings.eval_interval,
        allowlist=Allowlist.parse(settings.webhook_allowlist),
        external_url=settings.external_base_url(),
    )


def cardinality_caps(settings: Settings) -> Caps:
    return Caps(
        services=settings.max_services,
        operations_per_service=settings.max_operations_per_service,
        edges=settings.max_edges,
        series=settings.max_metric_series,
    )


def _retention(settings: Settings) -> RetentionWindow:
    return RetentionWindow(
        span_retention_days=settings.span_retention_days,
        point_retention_days=settings.point_retention_days,
        future_skew_seconds=settings.max_future_skew_seconds,
    )


def _web(
    app: ASGIApp,
    settings: Settings,
    port: int,
    tls: ServerTls | None = None,
    *,
    client_certificates: bool = False,
) -> _QuietServer:
    """A uvicorn server for `app`; over TLS when `tls` is given, asking for client
    certificates (and putting them in each request's scope) when `client_certificates` and the
    settings name a client CA."""
    secure: dict[str, Any] = {}
    if tls is not None:
        mutual = client_certificates and tls.mutual
        context = tls.ssl_context(client_certificates=mutual)
        secure["ssl_context_factory"] = lambda _config, _default: context
        if mutual:
            secure["http"] = ClientCertificateProtocol
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        lifespan="off",
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
        **secure,
    )
    return _QuietServer(config)


async def _wait_started(web: list[_QuietServer], tasks: list[asyncio.Task[None]]) -> None:
    """Wait until every web listener is bound; fail at once when one could not bind."""
    while not all(server.started for server in web):
        for task in tasks:
            if task.done():
                raise SystemExit("a web listener failed to start (is the port in use?)")
        await asyncio.sleep(0.05)


async def _wait_for_stop_signal(tasks: list[asyncio.Task[None]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()


def _announce(settings: Settings, tls: ServerTls | None) -> None:
    host = settings.host
    scheme = "http" if tls is None else "https"
    grpc_security = "" if tls is None else "  (TLS)"
    if tls is not None and tls.mutual:
        grpc_security = "  (mTLS: the OTLP ports require client certificates)"
    print(
        f"meshlens is running\n"
        f"  dashboards:   {scheme}://{host}:{settings.http_port}/  (API under /api/v1, docs at "
        f"/docs)\n"
        f"  OTLP/gRPC:    {host}:{settings.otlp_grpc_port}{grpc_security}\n"
        f"  OTLP/HTTP:    {scheme}://{host}:{settings.otlp_http_port}/v1/traces and /v1/metrics\n"
        f"Point an OpenTelemetry SDK at it: "
        f"OTEL_EXPORTER_OTLP_ENDPOINT={scheme}://{host}:{settings.otlp_http_port}\n"
        f"Just looking? Run `meshlens demo` in another terminal: a simulated mesh fills the "
        f"dashboards within a minute.",
        flush=True,
    )
