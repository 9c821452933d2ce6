"""Pages as HTML responses: templates with autoescaping, sent with a strict
Content-Security-Policy (no inline script, nothing from other origins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from dashboards import formatting
from dashboards.health import coverage_health, saturation_health

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # plotly.js sets style attributes and adds <style> elements while drawing
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("dashboards", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        ms=formatting.ms,
        percent=formatting.percent,
        rate=formatting.rate,
        count=formatting.count,
        sort_value=formatting.sort_value,
        service_path=formatting.service_path,
        figure=figure_json,
        saturation_health=saturation_health,
        coverage_health=coverage_health,
    )
    environment.globals["SAMPLED"] = formatting.SAMPLED
    return environment


def figure_json(figure: Mapping[str, Any]) -> str:
    """A plotly figure as JSON text, for a `data-figure` attribute (autoescaping quotes it)."""
    return orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY).decode()


_ENVIRONMENT = _environment()


def page(template: str, context: Mapping[str, Any], status_code: int = 200) -> HTMLResponse:
    """`template` rendered with `context`, with the security headers."""
    body = _ENVIRONMENT.get_template(template).render(context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def safe(text: str) -> Markup:
    """Markup the code itself wrote (never telemetry): left as it is by autoescaping."""
    return Markup(text)
