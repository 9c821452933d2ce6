"""Alerting's own tables in PostgreSQL: every statement alerting runs on them is here.

- `states`: alert states (`alert_states`) and their transitions (`alert_history`);
- `groups`: notification groups (`alert_groups`);
- `silences`: `alert_silences`;
- `outbox`: notifications to deliver (`notification_outbox`) and their `delivery_attempts`;
- `definitions`: rules and receivers made through the API (`alert_rules`, `alert_receivers`);
- `leader`: the evaluator's advisory lock and a round's session settings;
- `codec`: alerts and notifications as the groups and the outbox store them (JSON);
- `rows`: what the modules share (JSON parameters, deleting by key pairs).

Writes run on the caller's transaction (an evaluation round's, or an API change's).
"""
