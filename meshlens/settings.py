"""Every setting meshlens reads, with its environment variable, default and help.

Settings come from `MESHLENS_*` environment variables and from `meshlens serve` flags (the flags
are generated from this table, so `meshlens serve --help` documents every setting). Nothing here
is built at import time: entry points call `Settings()` and pass the object down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from meshlens.allowlist import Allowlist

MIB = 1024 * 1024
DEFAULT_SATURATION_METRICS = (
    # OpenTelemetry semantic conventions (k8s metrics), then the kubeletstats receiver's names
    "k8s.container.cpu.limit.utilization",
    "k8s.container.memory.limit.utilization",
    "k8s.pod.cpu.limit.utilization",
    "k8s.pod.memory.limit.utilization",
    "k8s.container.cpu_limit_utilization",
    "k8s.container.memory_limit_utilization",
    "k8s.pod.cpu_limit_utilization",
    "k8s.pod.memory_limit_utilization",
    "process.cpu.utilization",
    "jvm.cpu.recent_utilization",
)
"""Not `container.cpu.utilization` / `k8s.pod.cpu.utilization`: the kubeletstats receiver's
metrics of those names are CPU usage in cores, not ratios (deprecated for `*.cpu.usage`); not
`system.cpu.utilization`: a host's, not a service's."""


class Settings(BaseSettings):
    """meshlens configuration. Field descriptions are the user-facing documentation."""

    model_config = SettingsConfigDict(env_prefix="MESHLENS_", extra="ignore")

    host: str = Field(
        "127.0.0.1",
        description="Address every listener binds to (OTLP/gRPC, OTLP/HTTP and the web port).",
    )
    otlp_grpc_port: int = Field(4317, ge=0, le=65535, description="OTLP/gRPC port.")
    otlp_http_port: int = Field(4318, ge=0, le=65535, description="OTLP/HTTP port.")
    http_port: int = Field(
        8080, ge=0, le=65535, description="Web port: JSON API, dashboards, /metrics, /healthz."
    )
    ingest_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description=(
            "Comma-separated bearer tokens OTLP senders must present (Authorization: Bearer "
            "<token>, over HTTP and gRPC); unset with no token file: no token is asked."
        ),
    )
    ingest_tokens_file: Path | None = Field(
        None,
        description=(
            "File of ingest tokens, one a line (# comments), read again when it changes; "
            "adds to MESHLENS_INGEST_TOKENS."
        ),
    )
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description=(
            "Comma-separated tokens of the web port, each role:token with role read (pages, "
            "API reads, /metrics) or admin (also rules, receivers, silences); unset with no "
            "token file: the web port is open."
        ),
    )
    api_tokens_file: Path | None = Field(
        None,
        description="File of web-port tokens, one role:token a line (# comments).",
    )
    insecure: bool = Field(
        False,
        description=(
            "Listen on an address other than loopback without ingest and web-port tokens "
            "(refused otherwise: anyone who reaches the ports could send and read telemetry)."
        ),
    )
    tls_cert_file: Path | None = Field(
        None,
        description=(
            "PEM server certificate (leaf first, then intermediates) for every listener: "
            "OTLP/gRPC, OTLP/HTTP and the web port then speak TLS only. Needs "
            "MESHLENS_TLS_KEY_FILE; both are read again when they change."
        ),
    )
    tls_key_file: Path | None = Field(
        None, description="PEM private key (unencrypted) of MESHLENS_TLS_CERT_FILE."
    )
    tls_client_ca_file: Path | None = Field(
        None,
        description=(
            "PEM CA certificate(s): the OTLP receivers then require a client certificate "
            "signed by one of them (mTLS) and record its identity with what it sent; the web "
            "port keeps its tokens. Read again when it changes."
        ),
    )
    database_url: SecretStr | None = Field(
        None,
        description=(
            "PostgreSQL URL (postgresql://user:pass@host:5432/db). Unset: meshlens runs its own "
            "embedded PostgreSQL in the data folder."
        ),
    )
    data_dir: Path = Field(
        Path(".meshlens"), description="Folder of the embedded PostgreSQL and other local state."
    )
    span_retention_days: int = Field(
        7, ge=1, description="Days of raw spans kept; older daily partitions are dropped."
    )
    point_retention_days: int = Field(
        7, ge=1, description="Days of raw metric points kept; older daily partitions are dropped."
    )
    rollup_retention_days: int = Field(
        90, ge=1, description="Days of derived signals (minute, 10-minute and hour rows) kept."
    )
    pairing_window_seconds: float = Field(
        300,
        gt=0,
        description=(
            "How long a half of a request waits for the other: a server half arriving within "
            "it moves a call already counted on a virtual node to the edge of its server."
        ),
    )
    span_sampling_percent: float | None = Field(
        None,
        gt=0,
        le=100,
        description=(
            "The percentage of traces your mesh samples (Istio: the Telemetry resource's "
            "randomSamplingPercentage; Linkerd: the sampling of whatever starts the traces), "
            "for spans that record no probability of their own: Envoy and linkerd2-proxy never "
            "do, and apps under a sampling proxy follow its decision. Each such span then counts "
            "100/percent requests. Spans carrying an OpenTelemetry sampling threshold "
            "(tracestate ot=th) always count their own adjusted count. Unset: spans without a "
            "threshold count one request, and the signals from proxies' spans are marked as "
            "sampled at an unknown rate where mesh metrics do not give the true rate."
        ),
    )
    unpaired_count_after_seconds: float = Field(
        8,
        gt=0,
        description=(
            "How long a client span waits, from its acknowledgement, for its server half "
            "before it counts on the edge to its virtual node (a database, a broker, an "
            "external API, the mesh service a failed call was meant for). The default covers "
            "the 5 s an OpenTelemetry SDK's batch span processor and Envoy's tracer hold a "
            "span before they export it, with room for a Collector's batching. Longer: fewer "
            "calls counted there and moved when their server half comes; shorter: such calls "
            "show sooner."
        ),
    )
    derive_interval_seconds: float = Field(
        2, gt=0, description="How often halves are paired and signals folded into rollups."
    )
    saturation_metrics: Annotated[list[str], NoDecode] = Field(
        list(DEFAULT_SATURATION_METRICS),
        description=(
            "Comma-separated names of utilization gauges (values in [0, 1]); a service's "
            "saturation per minute is the highest of them (above 1 counts as 1; NaN and "
            "negative values are ignored)."
        ),
    )
    max_services: int = Field(
        2000,
        ge=0,
        description=(
            "Cardinality budget: most distinct graph nodes (services, databases, brokers, "
            "external hosts) in the derived signals; later ones count as meshlens.overflow. "
            "0: no cap."
        ),
    )
    max_operations_per_service: int = Field(
        500,
        ge=0,
        description=(
            "Most distinct operations per service (unnormalised URL paths explode); later ones "
            "count as the operation meshlens.overflow. 0: no cap."
        ),
    )
    max_edges: int = Field(
        20_000,
        ge=0,
        description=(
            "Most distinct edges source -> target; a later edge counts as "
            "meshlens.overflow -> target. 0: no cap."
        ),
    )
    max_metric_series: int = Field(
        200_000,
        ge=0,
        description=(
            "Most distinct metric series stored; points of later series are stored under "
            "their metric's overflow series (service meshlens.overflow). 0: no cap."
        ),
    )
    max_future_skew_seconds: int = Field(
        86400,
        ge=0,
        description="Spans and points timed further than this in the future are rejected.",
    )
    max_body_bytes: int = Field(
        20 * MIB, ge=1024, description="OTLP/HTTP body limit, after decompression (413 above)."
    )
    body_budget_bytes: int = Field(
        32 * MIB,
        ge=MIB,
        description=(
            "OTLP/HTTP request bodies held at once, over every connection (being received or "
            "decoded). Above it requests are refused with 429 and Retry-After instead of "
            "memory growing with the number of senders; a request alone always gets in."
        ),
    )
    grpc_max_message_bytes: int = Field(
        4 * MIB, ge=1024, description="OTLP/gRPC message limit (RESOURCE_EXHAUSTED above)."
    )
    ingest_queue_items: int = Field(
        100_000,
        ge=1000,
        description=(
            "Spans and points accepted but not yet committed, at most. Above it requests are "
            "refused with 429 / UNAVAILABLE and Retry-After instead of growing memory."
        ),
    )
    batch_max_items: int = Field(
        20_000, ge=100, description="Most spans and points one group commit writes."
    )
    decode_processes: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "Worker processes decoding OTLP requests, so ingest uses more than one core; "
            "0 decodes in the server process."
        ),
    )
    writer_connections: int = Field(
        2, ge=1, le=32, description="Database connections writing ingest batches in parallel."
    )
    ingest_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for its commit before it is answered 503.",
    )
    retry_after_seconds: int = Field(
        2, ge=1, description="Retry-After given to clients when meshlens refuses for a while."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    rules_file: Path | None = Field(
        None,
        description=(
            "YAML file of alert rules and receivers (format: README, Alert rules file), "
            "reloaded when it changes; `meshlens rules check FILE` validates one. Unset: rules "
            "come from the API only."
        ),
    )
    eval_interval: float = Field(
        30,
        gt=0,
        description="How often alert rules are evaluated: seconds, or a duration (30s, 1m).",
    )
    webhook_allowlist: Annotated[list[str], NoDecode] = Field(
        [],
        description=(
            "Comma-separated host names or IP addresses/CIDRs (alertmanager.monitoring.svc, "
            "10.0.0.0/8) that notifications may reach although they are private, loopback or "
            "link-local, which are refused otherwise."
        ),
    )
    external_url: str | None = Field(
        None,
        description=(
            "meshlens's base URL as its users reach it (https://meshlens.example.com), for "
            "links in notifications. Unset: http://HOST:HTTP_PORT (https:// with TLS)."
        ),
    )

    @field_validator("saturation_metrics", mode="before")
    @classmethod
    def _metric_names(cls, value: object) -> object:
        if isinstance(value, str):  # the environment variable or the flag: comma-separated
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("api_tokens", "ingest_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> object:
        if isinstance(value, str):  # the environment variable or the flag: comma-separated
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("eval_interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() and value.strip()[-1].isalpha():
            from meshlens.durations import parse_duration  # light: `re` only

            return parse_duration(value)  # DurationError is a ValueError: a settings error
        return value

    @field_validator("webhook_allowlist", mode="before")
    @classmethod
    def _allowlist(cls, value: object) -> object:
        if isinstance(value, str):  # the environment variable or the flag: comma-separated
            value = [entry.strip() for entry in value.split(",") if entry.strip()]
        if isinstance(value, list) and value:
            Allowlist.parse(str(entry) for entry in value)  # AllowlistError names a bad entry
        return value

    @field_validator("external_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
            raise ValueError("external_url must be an http:// or https:// URL with a host")
        return url

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be one of debug, info, warning, error")
        return level

    def external_base_url(self) -> str:
        """Where users reach meshlens (links in notifications): `external_url`, else the web
        port on `host` (with `localhost` for a wildcard address)."""
        if self.external_url is not None:
            return self.external_url
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "http" if self.tls_cert_file is None else "https"
        return f"{scheme}://{host}:{self.http_port}"

    def env_name(self, field: str) -> str:
        """The environment variable that sets `field`."""
        return f"MESHLENS_{field.upper()}"
