"""The pages' pure parts: number formatting, the time range in the URL, rows and charts."""

from __future__ import annotations

import orjson
import pytest

from dashboards import charts, formatting, rows
from dashboards.health import health
from dashboards.onboarding import Endpoints, snippets
from dashboards.rendering import _ENVIRONMENT
from dashboards.service_map.hover import edge_hover, node_hover
from dashboards.time_range import time_range
from meshlens.read.results import Edge, Mtls, Node, Signals
from meshlens.read.windows import WindowError

NOW = 1_790_000_000.0


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "—"), (0.123, "0.12 ms"), (12.34, "12.3 ms"), (1250.0, "1,250 ms"), (12500, "12.5 s")],
)
def test_milliseconds(value: float | None, shown: str) -> None:
    assert formatting.ms(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (0.0, "0 %"),
        (0.0004, "< 0.1 %"),
        (0.012, "1.20 %"),
        (0.5, "50.0 %"),
        (1, "100 %"),
    ],
)
def test_percent(value: float | None, shown: str) -> None:
    assert formatting.percent(value) == shown


def test_rate_and_paths() -> None:
    assert [formatting.rate(v) for v in (0, 0.05, 3.21, 1234.5)] == [
        "0/s",
        "0.05/s",
        "3.2/s",
        "1,234/s",
    ]
    assert formatting.service_path("a/b c<") == "/services/a%2Fb%20c%3C"


def test_time_range_defaults_to_the_last_15_minutes() -> None:
    when = time_range({}, NOW)
    assert when.window.end_unix - when.window.start_unix == 900
    assert not when.custom
    assert when.label == "the last 15 minutes"
    assert when.query() == "?window=15m"


def test_time_range_keeps_end_and_refresh_in_the_query() -> None:
    when = time_range({"window": "2h", "end": "1789990000", "refresh": "30s"}, NOW)
    assert when.custom
    assert when.refresh_seconds == 30
    assert when.query(focus="checkout") == "?window=2h&end=1789990000&refresh=30s&focus=checkout"
    assert when.label.startswith("2h until ")


def test_time_range_reads_the_scriptless_custom_form() -> None:
    assert time_range({"window": "custom", "custom_window": "90m"}, NOW).window_text == "90m"


@pytest.mark.parametrize("params", [{"window": "banana"}, {"refresh": "5s"}, {"end": "yesterday"}])
def test_bad_ranges_say_what_is_wrong(params: dict[str, str]) -> None:
    with pytest.raises(WindowError):
        time_range(params, NOW)


def test_health_thresholds() -> None:
    assert [health(v) for v in (None, 0.0, 0.01, 0.049, 0.05)] == [
        "idle",
        "ok",
        "warn",
        "warn",
        "bad",
    ]


@pytest.mark.parametrize(
    ("mtls", "state"),
    [
        (Mtls(), "unknown"),
        (Mtls(mutual=3, unknown=2), "mutual"),
        (Mtls(tls=1), "tls"),
        (Mtls(plaintext=1), "plaintext"),
        (Mtls(mutual=5, plaintext=1), "mixed"),
    ],
)
def test_mtls_state(mtls: Mtls, state: str) -> None:
    assert rows.mtls_state(mtls) == state


def test_services_are_listed_worst_first() -> None:
    def node(name: str, requests: int, errors: int, kind: str = "service") -> Node:
        return Node(
            name, kind, Signals(seconds=60, requests=requests, errors=errors), "entry-spans"
        )

    listed = rows.service_rows(
        [
            node("fine", 100, 0),
            node("broken", 100, 20),
            node("idle", 0, 0),
            node("db", 5, 5, "database"),
        ]
    )
    assert [row.name for row in listed] == ["broken", "fine", "idle"]


def test_chart_names_from_telemetry_are_escaped() -> None:
    figure = charts.line_chart(
        "Coverage", ["2026-11-26T12:00:00Z"], [charts.Line("<b>x</b>", [0.5])]
    )
    text = orjson.dumps(figure).decode()
    assert "<b>x</b>" not in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text


def test_snippets_use_the_given_endpoints() -> None:
    found = snippets(Endpoints(host="10.0.0.7", grpc_port=14317, http_port=14318, web_port=8080))
    assert [snippet.key for snippet in found] == ["sdk", "collector", "istio", "linkerd"]
    assert "http://10.0.0.7:14318" in found[0].text
    assert "10.0.0.7:14317" in found[1].text
    assert "port: 14317" in found[2].text


def test_snippets_over_tls_name_the_certificates_instead_of_insecure() -> None:
    plain = snippets(Endpoints(host="10.0.0.7", grpc_port=4317, http_port=4318, web_port=8080))
    assert "insecure: true" in plain[1].text
    assert "CERTIFICATE" not in plain[0].text
    at = Endpoints(
        host="meshlens.observability",
        grpc_port=4317,
        http_port=4318,
        web_port=8080,
        tls=True,
        client_certificates=True,
    )
    sdk, collector, _, linkerd = snippets(at)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=https://meshlens.observability:4318" in sdk.text
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE=" in sdk.text
    assert "OTEL_EXPORTER_OTLP_CLIENT_KEY=" in sdk.text
    for snippet in (collector, linkerd):
        assert "insecure" not in snippet.text
        assert "ca_file:" in snippet.text
        assert "cert_file:" in snippet.text


def _sampled(requests: int, unknown_rate: int, metered: int = 0) -> Signals:
    return Signals(seconds=60, requests=requests, unknown_rate=unknown_rate, metered=metered)


def test_rows_carry_whether_their_rate_is_a_lower_bound() -> None:
    row = rows.signal_row("shop", _sampled(120, 30))
    assert (row.lower_bound, row.unknown_share, row.source) == (True, 0.25, "traces")
    metered = rows.signal_row("shop", _sampled(120, 0, metered=120))
    assert (metered.lower_bound, metered.source) == (False, "mesh-metrics")


def test_the_marker_stands_next_to_a_sampled_rate_only() -> None:
    template = _ENVIRONMENT.from_string(
        '{% from "_macros.html" import signal_cells %}{{ signal_cells(row) }}'
    )
    marked = template.render(row=rows.signal_row("shop", _sampled(120, 30)))
    assert "≥ 2.0/s" in marked
    assert f">{formatting.SAMPLED}</span>" in marked
    assert "25.0 % of these requests" in marked
    plain = template.render(row=rows.signal_row("shop", _sampled(120, 0, metered=120)))
    assert "≥" not in plain
    assert formatting.SAMPLED not in plain


def test_hover_text_says_a_rate_is_a_lower_bound_or_from_mesh_metrics() -> None:
    sampled = node_hover(Node("shop", "service", _sampled(120, 120), "entry-spans"))
    assert f"≥ 2.0/s · 120 requests<br><b>⚠ {formatting.SAMPLED}</b>: 100 % of them" in sampled
    metered = node_hover(Node("shop", "service", _sampled(120, 0, 120), "entry-spans"))
    assert formatting.SAMPLED not in metered
    assert "2.0/s · 120 requests<br>counted from mesh metrics" in metered
    edge = Edge("web", "service", "shop", "service", ("traces",), _sampled(60, 6))
    assert f"<b>⚠ {formatting.SAMPLED}</b>: 10.0 % of them" in edge_hover(edge)
