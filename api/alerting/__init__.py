"""Alerting through the JSON API (`/api/v1`, tag `alerting`): rules and receivers made here,
silences, current alerts, their history, and notifications with every delivery attempt.

Rules and receivers from MESHLENS_RULES_FILE are listed too, read-only (409 on a change).
Bodies are JSON objects in the rules file's format, validated by `alerting.rules`: a
400 lists every problem (`{"status", "message", "problems": [{"path", "message"}]}`). Changes
to rules and receivers take a transaction-level advisory lock, so a rule cannot start naming a
receiver being deleted.

One module per resource: `rules`, `receivers`, `silences`, `alerts` (with history and
notifications); `models` holds the answers, `requests` what the endpoints share. Endpoints call
alerting (`alerting.listing`, `alerting.store`, the `AlertingService`), never SQL.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.alerting import alerts, receivers, rules, silences
from api.alerting.requests import InvalidBody, problems_answer


def include_alerting_api(app: FastAPI) -> None:
    """Serve the endpoints on `app`: its state holds `engine` and, in `meshlens serve`,
    `alerting` (the `AlertingService`; without it there are no file rules and no test sends)."""
    for module in (rules, receivers, silences, alerts):
        app.include_router(module.router)
    app.add_exception_handler(InvalidBody, problems_answer)  # type: ignore[arg-type]
