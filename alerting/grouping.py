"""Which alerts go out together, and when (Alertmanager's aggregation groups).

A group is one receiver and one set of `group_by` label values of one rule. Its first
notification waits `group_wait` after the group appeared (so alerts arriving together go out
together); a change (an alert firing or resolving) goes out `group_interval` after the
previous notification; an unchanged firing group is repeated every `repeat_interval`. Pure:
the time is an argument.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from alerting.model import Alert, Grouping


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group as stored between rounds."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    rule: str
    created_at: dt.datetime
    notified_at: dt.datetime | None
    notified_hash: str
    resolved: tuple[Alert, ...]
    """Alerts that resolved since the last notification (sent with the next one)."""
    sequence: int


def group_labels(labels: Mapping[str, str], group_by: Sequence[str]) -> dict[str, str]:
    """The alert's values of the `group_by` labels (`...` groups by every label)."""
    if "..." in group_by:
        return dict(labels)
    return {name: labels.get(name, "") for name in group_by}


def group_key(rule: str, labels: Mapping[str, str]) -> str:
    """`{}/<rule>:{name="value",...}`, in the spirit of Alertmanager's group keys."""
    pairs = ",".join(f"{name}={orjson.dumps(labels[name]).decode()}" for name in sorted(labels))
    return f"{{}}/{rule}:{{{pairs}}}"


def content_hash(alerts: Iterable[Alert]) -> str:
    """What a notification said: its alerts' fingerprints and statuses."""
    items = sorted(f"{alert.fingerprint}:{alert.status}" for alert in alerts)
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def due(group: GroupState, firing: Sequence[Alert], grouping: Grouping, now: dt.datetime) -> bool:
    """Whether the group's notification should go out now."""
    if group.notified_at is None:
        return bool(firing) and now >= group.created_at + _seconds(grouping.group_wait)
    if not firing and not group.resolved:
        return False
    changed = content_hash([*firing, *group.resolved]) != group.notified_hash
    if changed:
        return now >= group.notified_at + _seconds(grouping.group_interval)
    return now >= group.notified_at + _seconds(grouping.repeat_interval)


def idempotency_key(group: GroupState) -> str:
    """One key per notification of a group: receivers may drop a repeated delivery by it."""
    seed = f"{group.receiver}\n{group.group_key}\n{group.created_at.isoformat()}\n{group.sequence}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _seconds(seconds: int) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)
