"""What the alerting API answers (`api.alerting_api`), and the reads behind it, shared with the
alerts page (`dashboards.alerts_view`): rules with their alert counts, receivers, silences,
alerts, their history, and the outbox with every delivery attempt.

Webhook URLs are secrets: a receiver's `url` is only ever shown through `mask_url`, its
`hmac_secret` never (`signed` says whether it has one), and delivery errors are scrubbed of
every receiver URL before they are shown (delivery masks them already; this is the backstop).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from alerting import store
from alerting.grouping import group_key
from alerting.model import Alert, Matcher, Notification, Receiver, Rule, Silence
from alerting.notify.destinations import mask_url
from alerting.rules import (
    RulesFileError,
    receiver_from_mapping,
    rule_from_mapping,
    rule_to_mapping,
)
from alerting.service import AlertingService
from meshlens.durations import DurationError, parse_duration

UtcTime = Annotated[dt.datetime, AfterValidator(lambda moment: moment.astimezone(dt.UTC))]
"""Times are answered in UTC (`Z`), whatever the database session's time zone."""
FILE = "file"
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_.:/\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.ASCII)
_MATCHER_KEYS = {"name", "op", "value"}
_SILENCE_KEYS = ("matchers", "starts_at", "ends_at", "duration", "created_by", "comment")
FROM_FILE = "defined in MESHLENS_RULES_FILE; edit the file"
_SECRET_PATH = 6
"""URL paths this long are scrubbed on their own too (shorter ones would mangle messages)."""


# --- answers -----------------------------------------------------------------------------------


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


# --- rules and receivers -----------------------------------------------------------------------


async def all_rules(service: AlertingService | None, conn: AsyncConnection) -> list[Rule]:
    """File rules in file order, then API rules by name (a name in the file wins)."""
    if service is not None:
        rules = await service.rules(conn)
    else:  # an app without the alerting service (tests of the API alone): API rules only
        rows = await conn.execute(text("SELECT name, definition FROM alert_rules"))
        rules = []
        for _, definition in rows:
            try:
                rules.append(rule_from_mapping(definition))
            except RulesFileError:
                continue
    from_file = [rule for rule in rules if rule.origin == FILE]
    return from_file + sorted((r for r in rules if r.origin != FILE), key=lambda r: r.name)


async def all_receivers(
    service: AlertingService | None, conn: AsyncConnection
) -> dict[str, Receiver]:
    if service is not None:
        return await service.receivers(conn)
    rows = await conn.execute(text("SELECT name, type, url, hmac_secret FROM alert_receivers"))
    found = {}
    for name, kind, url, secret in rows:
        data = {"name": name, "type": kind, "url": url}
        found[name] = receiver_from_mapping({**data, "hmac_secret": secret} if secret else data)
    return found


async def alert_counts(conn: AsyncConnection) -> dict[str, AlertCounts]:
    rows = await conn.execute(
        text("SELECT rule, state, count(*) FROM alert_states GROUP BY rule, state")
    )
    counts: dict[str, AlertCounts] = {}
    for rule, state, count in rows:
        found = counts.setdefault(rule, AlertCounts(pending=0, firing=0))
        if state in ("pending", "firing"):
            setattr(found, state, int(count))
    return counts


def rule_model(rule: Rule, counts: Mapping[str, AlertCounts]) -> RuleModel:
    shown = counts.get(rule.name) or AlertCounts(pending=0, firing=0)
    extra = {"origin": rule.origin, "read_only": rule.origin == FILE, "alerts": shown}
    return RuleModel.model_validate({**rule_to_mapping(rule), **extra})


async def rule_models(service: AlertingService | None, conn: AsyncConnection) -> list[RuleModel]:
    counts = await alert_counts(conn)
    return [rule_model(rule, counts) for rule in await all_rules(service, conn)]


def receiver_model(receiver: Receiver, rules: Iterable[Rule]) -> ReceiverModel:
    return ReceiverModel(
        name=receiver.name,
        type=receiver.type.value,
        url=mask_url(receiver.url),
        signed=bool(receiver.hmac_secret),
        origin="file" if receiver.origin == FILE else "api",
        read_only=receiver.origin == FILE,
        used_by=[rule.name for rule in rules if receiver.name in rule.receivers],
    )


async def receiver_models(
    service: AlertingService | None, conn: AsyncConnection
) -> list[ReceiverModel]:
    rules = await all_rules(service, conn)
    receivers = (await all_receivers(service, conn)).values()
    ordered = [r for r in receivers if r.origin == FILE]
    ordered += sorted((r for r in receivers if r.origin != FILE), key=lambda r: r.name)
    return [receiver_model(receiver, rules) for receiver in ordered]


# --- silences, alerts, history, notifications --------------------------------------------------


_SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at"


def silence_state(silence: Silence, now: dt.datetime) -> Literal["active", "pending", "expired"]:
    if silence.ends_at <= now:
        return "expired"
    return "active" if silence.starts_at <= now else "pending"


def silence_model(row: Row[Any], now: dt.datetime) -> SilenceModel:
    silence = store.silence_from_row(row)
    fields = {**row._mapping, "id": silence.id, "state": silence_state(silence, now)}
    return SilenceModel.model_validate(fields)


async def silence_models(
    conn: AsyncConnection, now: dt.datetime, *, current_only: bool = False, limit: int = 1000
) -> list[SilenceModel]:
    """Newest first; `current_only`: the active and pending ones."""
    where = "WHERE ends_at > :now" if current_only else ""
    rows = await conn.execute(
        text(
            f"SELECT {_SILENCE_COLUMNS} FROM alert_silences {where}"
            " ORDER BY created_at DESC, starts_at DESC, id LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [silence_model(row, now) for row in rows]


async def one_silence(
    conn: AsyncConnection, silence_id: str, now: dt.datetime
) -> SilenceModel | None:
    query = text(f"SELECT {_SILENCE_COLUMNS} FROM alert_silences WHERE id = CAST(:id AS uuid)")
    row = (await conn.execute(query, {"id": silence_id})).first()
    return None if row is None else silence_model(row, now)


async def alert_models(conn: AsyncConnection, now: dt.datetime) -> list[AlertModel]:
    silences = await store.active_silences(conn, now)
    rows = await conn.execute(
        text(
            "SELECT rule, fingerprint, labels, annotations, state, value, active_at, fired_at,"
            " generator_url FROM alert_states ORDER BY state = 'firing' DESC,"
            " coalesce(fired_at, active_at) DESC, rule, fingerprint"
        )
    )
    alerts = []
    for row in rows:
        by = [silence.id for silence in silences if silence.silences(row.labels, now)]
        fields = {**row._mapping, "silenced": bool(by), "silenced_by": by}
        alerts.append(AlertModel.model_validate(fields))
    return alerts


async def history_models(conn: AsyncConnection, limit: int) -> list[HistoryModel]:
    rows = await conn.execute(
        text(
            "SELECT id, rule, fingerprint, labels, state, value, at FROM alert_history"
            " ORDER BY at DESC, id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [HistoryModel.model_validate(row._mapping) for row in rows]


async def notification_models(
    conn: AsyncConnection, limit: int, receivers: Iterable[Receiver]
) -> list[NotificationModel]:
    """The outbox, newest first, each with its attempts; errors scrubbed of receiver URLs."""
    secrets = [receiver.url for receiver in receivers]
    rows = await conn.execute(
        text(
            "SELECT id, receiver, status, state, attempts, CASE WHEN state = 'pending'"
            " THEN next_attempt_at END AS next_attempt_at, last_error, created_at,"
            " delivered_at, group_key,"
            " coalesce(jsonb_array_length(notification -> 'alerts'), 0) AS alert_count"
            " FROM notification_outbox ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    found = {row.id: {**row._mapping, "delivery_attempts": []} for row in rows}
    attempts = await conn.execute(
        text(
            "SELECT outbox_id, at, outcome, status_code, error, duration_ms"
            " FROM delivery_attempts WHERE outbox_id = ANY(:ids) ORDER BY at, id"
        ),
        {"ids": list(found)},
    )
    for attempt in attempts:
        fields = {**attempt._mapping, "error": scrub(attempt.error, secrets)}
        found[attempt.outbox_id]["delivery_attempts"].append(AttemptModel.model_validate(fields))
    for fields in found.values():
        fields["last_error"] = scrub(fields["last_error"], secrets)
    return [NotificationModel.model_validate(fields) for fields in found.values()]


def scrub(message: str | None, urls: Iterable[str]) -> str | None:
    """`message` with every receiver URL (and URL path) replaced by its masked form."""
    if not message:
        return message
    for url in urls:
        try:
            path = urlsplit(url).path
        except ValueError:
            path = ""
        secrets = {url, path} if len(path) >= _SECRET_PATH else {url}
        for secret in sorted(secrets, key=len, reverse=True):
            message = message.replace(secret, mask_url(url))
    return message


# --- what is sent and made ---------------------------------------------------------------------


def test_notification(receiver: str, external_url: str, now: dt.datetime) -> Notification:
    """What `POST /receivers/{name}/test` sends: a firing `MeshlensTest` alert, alone."""
    labels = {"alertname": "MeshlensTest", "severity": "info"}
    base = external_url.rstrip("/")
    summary = "Test notification from meshlens"
    alert = Alert(
        labels=labels,
        annotations={"summary": summary, "description": f"Receiver {receiver} works."},
        status="firing",
        starts_at=now,
        ends_at=None,
        value=None,
        generator_url=f"{base}/alerts",
    )
    return Notification(
        receiver=receiver,
        group_key=group_key("MeshlensTest", {"alertname": "MeshlensTest"}),
        group_labels={"alertname": "MeshlensTest"},
        status="firing",
        alerts=(alert,),
        external_url=base,
        idempotency_key=f"meshlens-test-{uuid.uuid4().hex}",
    )


def silence_from_body(body: Mapping[str, Any], now: dt.datetime) -> Silence | list[Problem]:
    """A new silence from a POST body, or every problem it has."""
    problems: list[Problem] = []

    def problem(path: str, message: str) -> None:
        problems.append(Problem(path=path, message=message))

    for key in body:
        if key not in _SILENCE_KEYS:
            problem(key, f"unknown key {key!r} (known: {', '.join(_SILENCE_KEYS)})")
    matchers = _matchers(body.get("matchers"), problem)
    given_start = body.get("starts_at")
    starts = _moment(now if given_start is None else given_start, "starts_at", problem)
    ends: dt.datetime | None = None
    if ("ends_at" in body) == ("duration" in body):
        problem("", "give either ends_at or duration (such as 2h)")
    elif "ends_at" in body:
        ends = _moment(body["ends_at"], "ends_at", problem)
    elif starts is not None:
        try:
            ends = starts + dt.timedelta(seconds=parse_duration(str(body["duration"])))
        except (DurationError, OverflowError) as exc:
            problem("duration", f"duration: {exc}")
    if starts is not None and ends is not None and ends <= max(starts, now):
        problem("ends_at", "the silence must end after it starts, and in the future")
    by, comment = body.get("created_by"), body.get("comment")
    for key, value in (("created_by", by), ("comment", comment)):
        if not isinstance(value, str) or not value.strip():
            problem(key, f"{key} is required: a non-empty text")
    if problems or starts is None or ends is None:
        return problems
    return Silence(str(uuid.uuid4()), matchers, starts, ends, str(by).strip(), str(comment).strip())


def _matchers(given: object, problem: Callable[[str, str], None]) -> tuple[Matcher, ...]:
    if not isinstance(given, list) or not given:
        problem("matchers", 'matchers must be a non-empty list (such as ["service=checkout"])')
        return ()
    found: list[Matcher] = []
    for index, item in enumerate(given):
        path = f"matchers[{index}]"
        if isinstance(item, dict):
            item = _matcher_text(item)
        match = _MATCHER.fullmatch(item) if isinstance(item, str) else None
        value = _unquote(match.group(3)) if match else None
        if match is None or value is None:
            shown = f"{item[:60]!r} is not" if isinstance(item, str) else "give"
            problem(path, f"{shown} name=value, name!=value, name=~regex, name!~regex, or an "
                    "object {name, op, value}")  # fmt: skip
            continue
        matcher = Matcher(match.group(1), match.group(2), value)
        if matcher.op in ("=~", "!~"):
            try:
                re.compile(matcher.value)
            except re.error as exc:
                problem(path, f"bad regex {matcher.value[:60]!r}: {exc}")
                continue
        found.append(matcher)
    if len(found) == len(given) and all(matcher.matches({}) for matcher in found):
        problem("matchers", "at least one matcher must not match an empty label (or every alert "
                "is silenced)")  # fmt: skip
    return tuple(found)


def _matcher_text(item: Mapping[str, object]) -> str | None:
    """`{name, op, value}` written as a string (`name op "value"`); None when it is not one."""
    if set(item) - _MATCHER_KEYS or not isinstance(item.get("value"), str):
        return None
    return f"{item.get('name')}{item.get('op', '=')}{orjson.dumps(item['value']).decode()}"


def _unquote(value: str) -> str | None:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            loaded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return loaded if isinstance(loaded, str) else None
    return None if value[:1] in ("'", '"') or value[-1:] in ("'", '"') else value


def _moment(value: object, name: str, problem: Callable[[str, str], None]) -> dt.datetime | None:
    """A time from RFC 3339 (with an offset) or unix seconds."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,11}(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and 0 <= value < 253402300800:
            return dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().upper())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(dt.UTC)
    problem(name, f"{name} must be RFC 3339 with an offset (2026-11-26T12:00:00Z) or unix seconds")
    return None
