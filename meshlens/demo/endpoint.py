"""Where meshlens is: the OTLP/HTTP endpoint the demo sends to, its dashboards, and whether it
answers before the demo starts."""

from __future__ import annotations

from urllib.parse import urlsplit

from meshlens.demo.options import DemoOptions
from meshlens.settings import Settings

CHECK_TIMEOUT_SECONDS = 5.0


def _connect_host(host: str) -> str:
    """A host to connect to for a listener bound to `host` (wildcards mean this machine)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def otlp_endpoint(options: DemoOptions, settings: Settings) -> str:
    """The OTLP/HTTP base URL: --endpoint, else MESHLENS_HOST and MESHLENS_OTLP_HTTP_PORT."""
    if options.endpoint:
        return options.endpoint
    return f"http://{_connect_host(settings.host)}:{settings.otlp_http_port}"


def dashboard_url(endpoint: str, settings: Settings) -> str:
    """The dashboards: the endpoint's host, meshlens's web port."""
    host = urlsplit(endpoint).hostname or "127.0.0.1"
    return f"http://{_connect_host(host)}:{settings.http_port}/"


def check_endpoint(endpoint: str) -> str | None:
    """None when an empty OTLP export to `endpoint` is accepted; else what went wrong."""
    import httpx

    url = f"{endpoint}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    try:
        answer = httpx.post(url, content=b"", headers=headers, timeout=CHECK_TIMEOUT_SECONDS)
    except httpx.ConnectError:
        return f"nothing answers at {endpoint} (connection refused or host unreachable)"
    except httpx.TimeoutException:
        return f"{endpoint} did not answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"cannot reach {endpoint}: {exc}"
    if answer.status_code == 200:
        return None
    if answer.status_code in (429, 503):
        return (
            f"{url} answered HTTP {answer.status_code}: meshlens is up but cannot store data "
            "right now (is its database up?)"
        )
    return (
        f"{url} answered HTTP {answer.status_code}: is this the OTLP/HTTP port of meshlens "
        "(MESHLENS_OTLP_HTTP_PORT, 4318 by default)?"
    )
