"""The types alerting shares: rules, receivers, silences, alerts and notifications.

Pure data: no I/O, no clock. Durations are whole seconds; times are aware UTC datetimes.
Names follow Prometheus and Alertmanager where users know them (`for`, `keep_firing_for`,
`group_by`, `group_wait`, `group_interval`, `repeat_interval`, matchers `=`, `!=`, `=~`, `!~`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import orjson


class Signal(StrEnum):
    """What a rule watches."""

    REQUEST_RATE = "request_rate"
    ERROR_RATE = "error_rate"
    LATENCY_P50 = "latency_p50"
    LATENCY_P95 = "latency_p95"
    LATENCY_P99 = "latency_p99"
    SATURATION = "saturation"
    MTLS_COVERAGE = "mtls_coverage"
    PLAINTEXT_EDGES = "plaintext_edges"
    METRIC = "metric"


class Scope(StrEnum):
    """What one alert is about: the whole mesh, one service, one edge, one version."""

    MESH = "mesh"
    SERVICE = "service"
    EDGE = "edge"
    VERSION = "version"


SCOPE_LABELS: Mapping[Scope, tuple[str, ...]] = {
    Scope.MESH: (),
    Scope.SERVICE: ("service",),
    Scope.EDGE: ("source", "target"),
    Scope.VERSION: ("service", "version"),
}
"""The labels that name one instance of each scope (matchers may use only these)."""


class ReceiverType(StrEnum):
    SLACK = "slack"
    MATTERMOST = "mattermost"
    DISCORD = "discord"
    TEAMS = "teams"
    WEBHOOK = "webhook"


COMPARISONS = (">", ">=", "<", "<=", "==", "!=")
AGGREGATIONS = ("sum", "avg", "min", "max", "last", "rate")
"""How a `metric` rule reduces the matching points in its window (`rate`: per second)."""
SEVERITIES = ("critical", "warning", "info")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)
"""A label name, as Prometheus allows it (and a name of an annotation)."""

GROUP_WAIT = 30
GROUP_INTERVAL = 300
REPEAT_INTERVAL = 4 * 3600
"""Alertmanager's defaults."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """`name op value`, as Alertmanager writes it (`=~` and `!~` are anchored regexes)."""

    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{orjson.dumps(self.value).decode()}"


def all_match(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """A raw metric: points named `name` whose attributes meet `matchers`, reduced by
    `aggregation` over the window."""

    name: str
    matchers: tuple[Matcher, ...] = ()
    aggregation: str = "avg"


@dataclass(frozen=True, slots=True)
class Grouping:
    """How a rule's alerts are batched into notifications (Alertmanager's route settings)."""

    group_by: tuple[str, ...] = ("alertname",)
    group_wait: int = GROUP_WAIT
    group_interval: int = GROUP_INTERVAL
    repeat_interval: int = REPEAT_INTERVAL


@dataclass(frozen=True, slots=True)
class Rule:
    """One alerting rule; it yields one alert per matching scope instance."""

    name: str
    signal: Signal
    scope: Scope
    comparison: str
    threshold: float
    window: int = 300
    for_: int = 0
    keep_firing_for: int = 0
    min_requests: int = 0
    """Below this many requests in the window, an instance stays quiet (not evaluated)."""
    severity: str = "warning"
    matchers: tuple[Matcher, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Templates (`summary`, `description`, ...) over `{{ $labels.x }}` and `{{ $value }}`."""
    receivers: tuple[str, ...] = ()
    metric: MetricQuery | None = None
    grouping: Grouping = field(default_factory=Grouping)
    origin: str = "api"
    """`file` (from MESHLENS_RULES_FILE: read-only through the API) or `api`."""

    def holds(self, value: float) -> bool:
        """Whether `value` meets the rule's condition."""
        return _COMPARE[self.comparison](value, self.threshold)


_COMPARE: Mapping[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where notifications go. `url` is a secret: never shown whole (see `masked_url`)."""

    name: str
    type: ReceiverType
    url: str
    hmac_secret: str | None = None
    """`webhook` only: sign `timestamp.body` with HMAC-SHA256."""
    origin: str = "api"


SilenceState = Literal["active", "pending", "expired"]


@dataclass(frozen=True, slots=True)
class Silence:
    """Alerts whose labels meet every matcher are not notified between `starts_at` and
    `ends_at`."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str = ""
    comment: str = ""

    def silences(self, labels: Mapping[str, str], at: dt.datetime) -> bool:
        return self.starts_at <= at < self.ends_at and all_match(self.matchers, labels)

    def state_at(self, now: dt.datetime) -> SilenceState:
        """`active` now, `pending` (starts later) or `expired`."""
        if self.ends_at <= now:
            return "expired"
        return "active" if self.starts_at <= now else "pending"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as a notification carries it (Alertmanager's alert object)."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: str
    """`firing` or `resolved`."""
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    value: float | None
    generator_url: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit identity of a label set (as Alertmanager's fingerprints look)."""
    canonical = orjson.dumps(dict(sorted(labels.items())))
    return hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Notification:
    """What one receiver is sent about one group of alerts."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    status: str
    """`firing` when any alert fires, else `resolved`."""
    alerts: tuple[Alert, ...]
    external_url: str
    idempotency_key: str

    @property
    def common_labels(self) -> dict[str, str]:
        return _common([alert.labels for alert in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common([alert.annotations for alert in self.alerts])


def _common(sets: list[Mapping[str, str]]) -> dict[str, str]:
    if not sets:
        return {}
    first = sets[0]
    return {k: v for k, v in first.items() if all(other.get(k) == v for other in sets[1:])}
