"""The alerting API's answers (request bodies are JSON objects read by `alerting.rules` and
`alerting.silences`). Times are answered in UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from alerting.listing import FILE
from alerting.model import Rule
from alerting.rules import rule_to_mapping
from alerting.store.states import AlertCounts as StoredCounts

UtcTime = Annotated[dt.datetime, AfterValidator(lambda moment: moment.astimezone(dt.UTC))]
"""Times are answered in UTC (`Z`), whatever the database session's time zone."""


class Problem(BaseModel):
    path: str = Field(
        description="Where in the body: `for`, `metric.aggregation`, `matchers[1].op`; empty "
        "for the body as a whole."
    )
    message: str = Field(description="What is wrong there.")


class ProblemsResponse(BaseModel):
    status: int = Field(description="400.")
    message: str = Field(description="How many problems, and each of them.")
    problems: list[Problem] = Field(description="Every problem found, not just the first.")


class AlertCounts(BaseModel):
    pending: int = Field(description="Alerts of the rule pending (condition true, `for` running).")
    firing: int = Field(description="Alerts of the rule firing.")


class MetricModel(BaseModel):
    name: str = Field(description="The metric's name.")
    matchers: list[str] = Field(description="Matchers on the points' attributes.")
    aggregation: str = Field(description="sum, avg, min, max, last or rate.")


class RuleModel(BaseModel):
    """A rule in the rules file's format (`rule_to_mapping`), with where it comes from and its
    alerts. Sending it back (PUT) makes the same rule: `origin`, `read_only` and `alerts` are
    ignored in bodies."""

    name: str = Field(description="The rule's name: its alerts' `alertname` label.")
    signal: str = Field(description="What it watches: request_rate, error_rate, latency_p95...")
    scope: str = Field(description="mesh, service, edge or version: one alert per instance.")
    matchers: list[str] = Field(description='Which instances, as `name="value"` strings.')
    condition: str = Field(description="Comparison and threshold, as `> 0.05`.")
    window: str = Field(description="The signal over this window.")
    for_: str = Field(alias="for", description="Pending this long before it fires.")
    keep_firing_for: str = Field(description="Firing this long after the condition clears.")
    min_requests: int | None = Field(
        None, description="Quiet below this many requests (absent for metric rules)."
    )
    metric: MetricModel | None = Field(None, description="Metric rules only: which points.")
    severity: str = Field(description="critical, warning or info.")
    labels: dict[str, str] = Field(description="Labels added to its alerts.")
    annotations: dict[str, str] = Field(description="Annotation templates.")
    receivers: list[str] = Field(description="Names of the receivers it notifies.")
    group_by: list[str] = Field(description="Labels whose values make a notification group.")
    group_wait: str = Field(description="A new group's first notification waits this long.")
    group_interval: str = Field(description="A changed group is notified after this long.")
    repeat_interval: str = Field(description="An unchanged firing group is repeated this often.")
    origin: Literal["file", "api"] = Field(
        description="`file`: from MESHLENS_RULES_FILE (read-only here); `api`: made here."
    )
    read_only: bool = Field(description="True for file rules: edit the file instead.")
    alerts: AlertCounts = Field(description="Its current alerts.")


class RulesResponse(BaseModel):
    rules: list[RuleModel] = Field(description="File rules in file order, then API rules by name.")


class ReceiverModel(BaseModel):
    name: str = Field(description="The name rules notify it by.")
    type: str = Field(description="slack, mattermost, discord, teams or webhook.")
    url: str = Field(description="Masked: the origin and a few characters of the path, then `…`.")
    signed: bool = Field(description="Whether requests are signed (an hmac_secret is set).")
    origin: Literal["file", "api"] = Field(description="`file` (MESHLENS_RULES_FILE) or `api`.")
    read_only: bool = Field(description="True for file receivers: edit the file instead.")
    used_by: list[str] = Field(description="Names of the rules that notify it.")


class ReceiversResponse(BaseModel):
    receivers: list[ReceiverModel] = Field(description="File receivers first, then by name.")


class MatcherModel(BaseModel):
    name: str = Field(description="Label name.")
    op: Literal["=", "!=", "=~", "!~"] = Field(description="`=~` and `!~` are anchored regexes.")
    value: str = Field(description="The label's value, or the regex.")


class SilenceModel(BaseModel):
    id: str = Field(description="UUID.")
    matchers: list[MatcherModel] = Field(description="Alerts meeting all of them are silenced.")
    starts_at: UtcTime = Field(description="From when (RFC 3339 UTC).")
    ends_at: UtcTime = Field(description="Until when (excluded); expiring sets it to then.")
    created_by: str = Field(description="Who made it.")
    comment: str = Field(description="Why.")
    created_at: UtcTime | None = Field(description="When it was made.")
    state: Literal["active", "pending", "expired"] = Field(
        description="active now, pending (starts later) or expired."
    )


class SilencesResponse(BaseModel):
    silences: list[SilenceModel] = Field(description="Newest first, active and expired.")


class AlertModel(BaseModel):
    rule: str = Field(description="The rule's name (the `alertname` label).")
    fingerprint: str = Field(description="Identity of the label set.")
    labels: dict[str, str] = Field(description="alertname, severity, the instance's labels...")
    annotations: dict[str, str] = Field(description="Rendered annotations (summary, ...).")
    state: str = Field(description="pending or firing.")
    value: float | None = Field(description="The signal's value at the last round.")
    active_at: UtcTime = Field(description="When the condition first held.")
    fired_at: UtcTime | None = Field(description="When it started firing.")
    generator_url: str = Field(description="The meshlens page showing what it is about.")
    silenced: bool = Field(description="An active silence matches it: it is not notified.")
    silenced_by: list[str] = Field(description="Ids of the matching active silences.")


class AlertsResponse(BaseModel):
    alerts: list[AlertModel] = Field(description="Firing first, then pending; newest first.")


class HistoryModel(BaseModel):
    id: int = Field(description="Increasing with each transition.")
    rule: str = Field(description="The rule's name.")
    fingerprint: str = Field(description="Identity of the alert's label set.")
    labels: dict[str, str] = Field(description="The alert's labels.")
    state: str = Field(description="The new state: pending, firing, resolved or inactive.")
    value: float | None = Field(description="The signal's value at the transition.")
    at: UtcTime = Field(description="When (the evaluation round's time).")


class HistoryResponse(BaseModel):
    history: list[HistoryModel] = Field(description="Transitions, newest first.")


class AttemptModel(BaseModel):
    at: UtcTime = Field(description="When the attempt was made.")
    outcome: str = Field(description="delivered, retry or failed.")
    status_code: int | None = Field(description="The destination's HTTP status, if it answered.")
    error: str | None = Field(description="Why it did not deliver (URLs masked).")
    duration_ms: float = Field(description="How long it took.")


class NotificationModel(BaseModel):
    id: int = Field(description="The outbox row.")
    receiver: str = Field(description="The receiver's name.")
    status: str = Field(description="firing or resolved.")
    state: str = Field(description="pending (to be attempted), delivered or failed (for good).")
    attempts: int = Field(description="Attempts so far.")
    next_attempt_at: UtcTime | None = Field(description="Pending only: when it is retried.")
    last_error: str | None = Field(description="The last attempt's error (URLs masked).")
    created_at: UtcTime = Field(description="When the evaluation round made it.")
    delivered_at: UtcTime | None = Field(description="When a destination accepted it.")
    group_key: str = Field(description="Which group of alerts (rule and group_by values).")
    alert_count: int = Field(description="Alerts the notification carries.")
    delivery_attempts: list[AttemptModel] = Field(description="Every attempt, oldest first.")


class NotificationsResponse(BaseModel):
    notifications: list[NotificationModel] = Field(description="Newest first.")


class TestResult(BaseModel):
    delivered: bool = Field(description="The destination accepted it (2xx to the POST).")
    outcome: str = Field(
        description="delivered; retry (5xx, 408, 429, timeout, unreachable: the outbox would "
        "retry); failed (4xx, refused by the SSRF guard, ...)."
    )
    status_code: int | None = Field(description="The destination's HTTP status, if any.")
    error: str | None = Field(description="Why not (URLs masked).")
    duration_ms: float = Field(description="How long the attempt took.")


def rule_model(rule: Rule, counts: Mapping[str, StoredCounts]) -> RuleModel:
    """`rule` in the rules file's format, with where it comes from and its alerts."""
    shown = counts.get(rule.name) or StoredCounts(pending=0, firing=0)
    extra = {"origin": rule.origin, "read_only": rule.origin == FILE, "alerts": shown}
    return RuleModel.model_validate({**rule_to_mapping(rule), **extra}, from_attributes=True)
