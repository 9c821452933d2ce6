"""Alerting: rules on the derived signals, evaluated on a schedule, notified to chat and webhooks.
Split as Prometheus Alertmanager splits its code; signals are read only through `meshlens.read`.

- `model`: the shared types (rules, receivers, silences, alerts, notifications), pure.
- `rules/`: rules and receivers from YAML (`MESHLENS_RULES_FILE`) or JSON objects (the API):
  `load` (and reload, the service keeping the last valid rules), `positions` (the YAML tree
  that keeps line numbers), `validate/` (every problem, each with where it is), `mappings`.
- `templates/`: the annotation templates (a safe subset of Go templates), pure.
- `readings`: what a rule's signal is for each scope instance, from `meshlens.read`.
- `lifecycle`, `grouping`, `evaluation`: one round steps each alert (pending, firing,
  resolved), updates the notification groups and dispatches the due notifications.
- `silences`: a silence made through the API, read from its body, pure.
- `notify/`: the outbox loop, delivery (retries with backoff, idempotency keys), the
  destination guard (SSRF) and `formats/`, one module per receiver format (Slack, Mattermost,
  Discord, Teams, Alertmanager webhook v4), pure.
- `store/`: alerting's own tables (states, history, groups, silences, outbox, rules and
  receivers made through the API): every statement alerting runs on them.
- `listing`: what the API and the alerts page show, read the same way.
- `service`: the `AlertingService` that `meshlens serve` runs (evaluation rounds, delivery).
"""
