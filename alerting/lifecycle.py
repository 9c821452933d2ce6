"""How one alert moves: inactive -> pending -> firing -> resolved, as Prometheus moves it.

Pure: the round's time is an argument. `for` keeps a true condition pending before it fires
(0: fires at once); `keep_firing_for` keeps a firing alert firing that long after its condition
last held. A pending alert whose condition stops holding goes back to inactive, unnotified.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

from alerting.model import Rule

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"
INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class AlertState:
    """A pending or firing alert as stored between rounds."""

    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str
    value: float | None
    active_at: dt.datetime
    fired_at: dt.datetime | None
    last_true_at: dt.datetime
    evaluated_at: dt.datetime
    generator_url: str


@dataclass(frozen=True, slots=True)
class Observation:
    """What this round saw of one instance: whether the condition holds, and with what."""

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None
    holds: bool
    generator_url: str


def step(
    rule: Rule, previous: AlertState | None, seen: Observation, now: dt.datetime
) -> tuple[AlertState | None, str | None]:
    """The state to keep (None: none) and the transition this round made (None: none)."""
    if seen.holds:
        if previous is None:
            started = AlertState(
                rule=rule.name,
                fingerprint=seen.fingerprint,
                labels=seen.labels,
                annotations=seen.annotations,
                state=PENDING,
                value=seen.value,
                active_at=now,
                fired_at=None,
                last_true_at=now,
                evaluated_at=now,
                generator_url=seen.generator_url,
            )
            if rule.for_ <= 0:
                return replace(started, state=FIRING, fired_at=now), FIRING
            return started, PENDING
        kept = replace(
            previous,
            annotations=seen.annotations,
            value=seen.value,
            last_true_at=now,
            evaluated_at=now,
            generator_url=seen.generator_url,
        )
        if previous.state == PENDING and now - previous.active_at >= _seconds(rule.for_):
            return replace(kept, state=FIRING, fired_at=now), FIRING
        return kept, None
    return quiet(rule, previous, now, seen.value)


def quiet(
    rule: Rule, previous: AlertState | None, now: dt.datetime, value: float | None = None
) -> tuple[AlertState | None, str | None]:
    """The step of an instance whose condition does not hold (or that was not seen)."""
    if previous is None:
        return None, None
    if previous.state == PENDING:
        return None, INACTIVE
    if now - previous.last_true_at >= _seconds(rule.keep_firing_for):
        return None, RESOLVED
    return replace(previous, evaluated_at=now, value=value), None


def _seconds(seconds: int) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)
