"""One evaluation round: every rule's instances read, their alerts stepped, groups updated
and due notifications put in the outbox, all on one transaction.

A crash before the commit changes nothing (the next round does it again); after it, the
state changes and the notifications they cause are stored together, for the delivery loop.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlencode

from sqlalchemy.ext.asyncio import AsyncConnection

from alerting import grouping
from alerting.lifecycle import FIRING, RESOLVED, AlertState, Observation, quiet, step
from alerting.model import Alert, Notification, Rule, Scope, Signal, Silence, fingerprint
from alerting.readings import Instance, Readings
from alerting.store import groups as group_store
from alerting.store import outbox as outbox_store
from alerting.store import silences as silence_store
from alerting.store import states as state_store
from alerting.templates import TemplateError, render_template

log = logging.getLogger("meshlens.alerting")


@dataclass
class RoundResult:
    """What a round did (for logs, metrics and the benchmark)."""

    rules: int = 0
    instances: int = 0
    transitions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notifications: int = 0


async def evaluate(
    conn: AsyncConnection,
    rules: Sequence[Rule],
    now: dt.datetime,
    external_url: str,
) -> RoundResult:
    """Run one round at `now` on `conn` (inside its transaction)."""
    result = RoundResult(rules=len(rules))
    readings = Readings(conn, now.timestamp())
    previous = await state_store.load_states(conn)
    kept: list[AlertState] = []
    events: list[tuple[AlertState, str]] = []
    for rule in rules:
        instances = await readings.instances(rule)
        result.instances += len(instances)
        for seen in (_observe(rule, one, external_url) for one in instances):
            old = previous.pop((rule.name, seen.fingerprint), None)
            state, event = step(rule, old, seen, now)
            _record(state, event, kept, events, previous_state=old)
        for key in [key for key in previous if key[0] == rule.name]:
            old = previous.pop(key)
            state, event = quiet(rule, old, now)
            _record(state, event, kept, events, previous_state=old)
    by_name = {rule.name: rule for rule in rules}
    for key, old in list(previous.items()):  # rules that are gone: their alerts resolve
        if key[0] not in by_name:
            events.append((old, RESOLVED))
            previous.pop(key)
    dropped = {(state.rule, state.fingerprint) for state, event in events} - {
        (state.rule, state.fingerprint) for state in kept
    }
    await state_store.save_states(conn, kept, dropped)
    await state_store.add_history(conn, events, now)
    for _, event in events:
        result.transitions[event] += 1
    result.notifications = await dispatch(conn, by_name, kept, events, now, external_url)
    return result


def _record(
    state: AlertState | None,
    event: str | None,
    kept: list[AlertState],
    events: list[tuple[AlertState, str]],
    previous_state: AlertState | None,
) -> None:
    if state is not None:
        kept.append(state)
    if event is not None:
        shown = state if state is not None else previous_state
        if shown is not None:
            events.append((shown, event))


def _observe(rule: Rule, instance: Instance, external_url: str) -> Observation:
    labels = {"alertname": rule.name, "severity": rule.severity, **rule.labels}
    labels.update(instance.labels)
    quiet_for_traffic = instance.requests is not None and instance.requests < rule.min_requests
    holds = instance.value is not None and not quiet_for_traffic and rule.holds(instance.value)
    if not holds:  # a quiet instance keeps nothing of this round but its value
        return Observation(fingerprint(labels), labels, {}, instance.value, False, "")
    return Observation(
        fingerprint=fingerprint(labels),
        labels=labels,
        annotations=_annotations(rule, labels, instance.value),
        value=instance.value,
        holds=True,
        generator_url=page_url(rule, instance.labels, external_url),
    )


def _annotations(rule: Rule, labels: Mapping[str, str], value: float | None) -> dict[str, str]:
    """The rule's annotations rendered for this alert, and `threshold` (the condition), which
    the chat messages show beside the value."""
    rendered = {"threshold": f"{rule.comparison} {rule.threshold:g}"}
    for name, template in rule.annotations.items():
        try:
            rendered[name] = render_template(template, labels, value)
        except TemplateError as exc:  # checked at load; kept readable if one slips through
            rendered[name] = f"{template} (template error: {exc})"
    return rendered


def page_url(rule: Rule, labels: Mapping[str, str], external_url: str) -> str:
    """The meshlens page that shows what the alert is about, over the rule's window."""
    base = external_url.rstrip("/")
    window = urlencode({"window": f"{max(1, rule.window // 60)}m"})
    if rule.signal in (Signal.MTLS_COVERAGE, Signal.PLAINTEXT_EDGES) and rule.scope is Scope.MESH:
        return f"{base}/mtls?{window}"
    if "service" in labels:
        return f"{base}/services/{quote(labels['service'], safe='')}?{window}"
    if "source" in labels:
        return f"{base}/map?{window}&{urlencode({'focus': labels['source'], 'hops': 1})}"
    return f"{base}/?{window}"


# --- groups and notifications ------------------------------------------------------------------


async def dispatch(
    conn: AsyncConnection,
    rules: Mapping[str, Rule],
    kept: Sequence[AlertState],
    events: Sequence[tuple[AlertState, str]],
    now: dt.datetime,
    external_url: str,
) -> int:
    """Update the groups with this round's firing and resolved alerts; enqueue the due ones
    (Alertmanager's dispatch). Answers how many notifications were enqueued."""
    groups = await group_store.load_groups(conn)
    silences = await silence_store.active_silences(conn, now)
    firing: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    present: set[tuple[str, str]] = set()
    """Groups with a firing alert, silenced or not: kept, so that resolutions still go out."""
    for state in kept:
        rule = rules.get(state.rule)
        if rule is None or state.state != FIRING:
            continue
        silenced = _silenced(silences, state.labels, now)
        for receiver in rule.receivers:
            key = _key(rule, receiver, state.labels)
            present.add(key)
            if silenced:
                continue
            firing[key].append(_alert(state, FIRING, None))
            if key not in groups:
                groups[key] = _new_group(rule, receiver, key[1], state.labels, now)
    for state, event in events:
        rule = rules.get(state.rule)
        if event != RESOLVED or rule is None or state.fired_at is None:
            continue
        for receiver in rule.receivers:
            key = _key(rule, receiver, state.labels)
            group = groups.get(key)
            if group is not None and group.notified_at is not None:
                resolved = (*group.resolved, _alert(state, RESOLVED, now))
                groups[key] = replace(group, resolved=resolved)
    sent, kept_groups, dropped = 0, [], []
    for key, group in groups.items():
        rule = rules.get(group.rule)
        alerts = firing.get(key, [])
        if rule is None:  # a deleted rule: what its groups told is resolved, at once
            gone = _resolved_with_rule(group, events, now)
            if group.notified_at is not None and gone:
                await _send(conn, group, [], now, external_url, extra=gone)
                sent += 1
            dropped.append(key)
            continue
        if not alerts and not group.resolved and key not in present:
            dropped.append(key)
            continue
        if grouping.due(group, alerts, rule.grouping, now):
            group = await _send(conn, group, alerts, now, external_url)
            sent += 1
        kept_groups.append(group)
    await group_store.save_groups(conn, kept_groups, dropped)
    return sent


def _resolved_with_rule(
    group: grouping.GroupState, events: Sequence[tuple[AlertState, str]], now: dt.datetime
) -> list[Alert]:
    """The group's alerts that resolved because their rule was deleted this round."""
    return [
        _alert(state, RESOLVED, now)
        for state, event in events
        if event == RESOLVED
        and state.rule == group.rule
        and state.fired_at is not None
        and all(state.labels.get(name) == value for name, value in group.group_labels.items())
    ]


async def _send(
    conn: AsyncConnection,
    group: grouping.GroupState,
    firing: Sequence[Alert],
    now: dt.datetime,
    external_url: str,
    extra: Sequence[Alert] = (),
) -> grouping.GroupState:
    alerts = (*firing, *group.resolved, *extra)
    notification = Notification(
        receiver=group.receiver,
        group_key=group.group_key,
        group_labels=group.group_labels,
        status=FIRING if firing else RESOLVED,
        alerts=alerts,
        external_url=external_url,
        idempotency_key=grouping.idempotency_key(group),
    )
    await outbox_store.enqueue(conn, notification, now)
    return replace(
        group,
        notified_at=now,
        notified_hash=grouping.content_hash(firing),
        resolved=(),
        sequence=group.sequence + 1,
    )


def _key(rule: Rule, receiver: str, labels: Mapping[str, str]) -> tuple[str, str]:
    chosen = grouping.group_labels(labels, rule.grouping.group_by)
    return receiver, grouping.group_key(rule.name, chosen)


def _new_group(
    rule: Rule, receiver: str, key: str, labels: Mapping[str, str], now: dt.datetime
) -> grouping.GroupState:
    return grouping.GroupState(
        receiver=receiver,
        group_key=key,
        group_labels=grouping.group_labels(labels, rule.grouping.group_by),
        rule=rule.name,
        created_at=now,
        notified_at=None,
        notified_hash="",
        resolved=(),
        sequence=0,
    )


def _alert(state: AlertState, status: str, ended: dt.datetime | None) -> Alert:
    return Alert(
        labels=state.labels,
        annotations=state.annotations,
        status=status,
        starts_at=state.fired_at or state.active_at,
        ends_at=ended,
        value=state.value,
        generator_url=state.generator_url,
    )


def _silenced(silences: Sequence[Silence], labels: Mapping[str, str], now: dt.datetime) -> bool:
    return any(silence.silences(labels, now) for silence in silences)
