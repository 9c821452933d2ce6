"""Rules and receivers given as JSON objects (the API's bodies and its `alert_rules` and
`alert_receivers` tables), in the rules file's format, and rules written back in it."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from alerting.model import Receiver, Rule
from alerting.rules.positions import plain_node
from alerting.rules.validate import Checker
from alerting.rules.validate.fields import number_text
from meshlens.durations import format_duration


def rule_from_mapping(
    data: Mapping[str, object],
    *,
    known_receivers: Collection[str] | None = None,
    origin: str = "api",
) -> Rule:
    """One rule given as a JSON object, in the rules file's format (keys, values, defaults).

    `known_receivers`: the receiver names the rule may use (None: not checked). Problems carry
    `line=0` and a path such as `metric.aggregation`.
    """
    checker = Checker()
    node = plain_node(data, "", checker.problems)
    receivers = None if known_receivers is None else {name: node for name in known_receivers}
    rule = checker.rule(node, receivers, origin)
    checker.raise_if_any("")
    assert rule is not None
    return rule


def receiver_from_mapping(data: Mapping[str, object], *, origin: str = "api") -> Receiver:
    """One receiver given as a JSON object (`name`, `type`, `url`, `hmac_secret`)."""
    checker = Checker()
    receiver = checker.receiver(plain_node(data, "", checker.problems), origin)
    checker.raise_if_any("")
    assert receiver is not None
    return receiver


def rule_to_mapping(rule: Rule) -> dict[str, object]:
    """`rule` in the rules file's format: `rule_from_mapping` reads it back as the same rule."""
    data: dict[str, object] = {
        "name": rule.name,
        "signal": rule.signal.value,
        "scope": rule.scope.value,
        "matchers": [str(matcher) for matcher in rule.matchers],
        "condition": f"{rule.comparison} {number_text(rule.threshold)}",
        "window": format_duration(rule.window),
        "for": format_duration(rule.for_),
        "keep_firing_for": format_duration(rule.keep_firing_for),
        "severity": rule.severity,
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
        "receivers": list(rule.receivers),
        "group_by": list(rule.grouping.group_by),
        "group_wait": format_duration(rule.grouping.group_wait),
        "group_interval": format_duration(rule.grouping.group_interval),
        "repeat_interval": format_duration(rule.grouping.repeat_interval),
    }
    if rule.metric is None:
        data["min_requests"] = rule.min_requests
    else:
        data["metric"] = {
            "name": rule.metric.name,
            "matchers": [str(matcher) for matcher in rule.metric.matchers],
            "aggregation": rule.metric.aggregation,
        }
    return data
