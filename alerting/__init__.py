"""Alerting: rules on the derived signals, evaluated on a schedule, notified to chat and webhooks.

- `model`: the shared types (rules, receivers, alerts, notifications), pure.
- `rules_file`: rules and receivers from YAML, validated with line numbers.
- `formats`: each receiver type's native message (Slack, Mattermost, Discord, Teams,
  Alertmanager webhook v4), pure.
- `destinations` and `delivery`: where a webhook may go (SSRF guard) and how it is sent
  (retries with backoff, idempotency keys).
"""
