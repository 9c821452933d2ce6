"""One rule: its signal, scope and matchers, its condition (thresholds checked against the
signal's unit), durations, labels, annotation templates, receivers, grouping and, for
`signal: metric`, which points it reads."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from alerting.model import (
    AGGREGATIONS,
    COMPARISONS,
    LABEL_NAME,
    SCOPE_LABELS,
    SEVERITIES,
    Grouping,
    Matcher,
    MetricQuery,
    Rule,
    Scope,
    Signal,
)
from alerting.rules.positions import Entry, Node
from alerting.rules.validate.fields import FieldChecker, kind_of, named, number_text
from alerting.templates import TemplateError, parse_template
from meshlens.read.windows import MAX_WINDOW_SECONDS

RATIO_SIGNALS = frozenset({Signal.ERROR_RATE, Signal.SATURATION, Signal.MTLS_COVERAGE})
LATENCY_SIGNALS = frozenset({Signal.LATENCY_P50, Signal.LATENCY_P95, Signal.LATENCY_P99})
RESERVED_LABELS = ("alertname", "severity")
"""Set from the rule's `name` and `severity`, not through `labels`."""

RULE_KEYS = (
    "name", "signal", "scope", "matchers", "condition", "comparison", "threshold", "window",
    "for", "keep_firing_for", "min_requests", "severity", "labels", "annotations",
    "receivers", "group_by", "group_wait", "group_interval", "repeat_interval", "metric",
)  # fmt: skip
METRIC_KEYS = ("name", "matchers", "aggregation")
_ATTRIBUTE_NAME = r"[a-zA-Z_][a-zA-Z0-9_.:/\-]*"
_MATCHER = re.compile(rf"\s*({_ATTRIBUTE_NAME})\s*(=~|!~|!=|=)\s*(.*?)\s*", re.ASCII)
_CONDITION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(.*?)\s*", re.ASCII)
_THRESHOLD = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(%|ms|s)?", re.ASCII)


class RuleChecker(FieldChecker):
    """The checks of one rule."""

    def rule(
        self, node: Node, known_receivers: Mapping[str, Node] | None, origin: str
    ) -> Rule | None:
        entries = self.mapping(node, "a rule")
        if entries is None:
            return None
        before = len(self.problems)
        self.unknown_keys(entries, RULE_KEYS, "a rule")
        name = self.required_text(node, entries, "name", "a rule")
        who = named("rule", name)
        signal_text = self.required_choice(node, entries, "signal", [s.value for s in Signal], name)
        scope_text = self.required_choice(node, entries, "scope", [s.value for s in Scope], name)
        signal = Signal(signal_text) if signal_text is not None else None
        scope = Scope(scope_text) if scope_text is not None else None
        matchers: tuple[Matcher, ...] = ()
        if "matchers" in entries and scope is not None:
            matchers = self.matchers(entries["matchers"].value, "matchers", SCOPE_LABELS[scope])
        condition = self.condition(node, entries, signal, who)
        window = self.duration(entries, "window", 300, lowest=60)
        if window is not None and window % 60:
            self.error(entries["window"].value, "window must be whole minutes (1m, 90m, 2h)")
        if window is not None and window > MAX_WINDOW_SECONDS:
            self.error(entries["window"].value, "window is longer than the rollups are kept (90d)")
        for_ = self.duration(entries, "for", 0)
        keep_firing_for = self.duration(entries, "keep_firing_for", 0)
        min_requests = self.min_requests(entries, signal)
        severity = self.choice(entries, "severity", SEVERITIES, "warning")
        labels = self.labels(entries.get("labels"), scope)
        annotations = self.annotations(entries.get("annotations"))
        receivers = self.rule_receivers(entries.get("receivers"), known_receivers)
        grouping = self.grouping(entries)
        metric = self.metric(entries, signal, node, who)
        if (
            len(self.problems) > before
            or name is None
            or signal is None
            or scope is None
            or condition is None
            or window is None
            or for_ is None
            or keep_firing_for is None
            or severity is None
            or grouping is None
        ):
            return None
        comparison, threshold = condition
        return Rule(
            name=name,
            signal=signal,
            scope=scope,
            comparison=comparison,
            threshold=threshold,
            window=window,
            for_=for_,
            keep_firing_for=keep_firing_for,
            min_requests=min_requests,
            severity=severity,
            matchers=matchers,
            labels=labels,
            annotations=annotations,
            receivers=receivers,
            metric=metric,
            grouping=grouping,
            origin=origin,
        )

    def condition(
        self, node: Node, entries: dict[str, Entry], signal: Signal | None, who: str
    ) -> tuple[str, float] | None:
        condition = entries.get("condition")
        comparison = entries.get("comparison")
        threshold = entries.get("threshold")
        if condition is not None:
            if comparison is not None or threshold is not None:
                extra = comparison or threshold
                assert extra is not None
                self.error(extra.key, "give either condition or comparison and threshold")
                return None
            text = self.text(condition.value)
            if text is None:
                return None
            match = _CONDITION.fullmatch(text)
            if match is None:
                self.error(
                    condition.value,
                    f"condition {text[:40]!r} must be a comparison ({' '.join(COMPARISONS)}) "
                    'and a number, as in "> 0.05"',
                )
                return None
            value = self.threshold(condition.value, match.group(2), signal, "condition")
            return None if value is None else (match.group(1), value)
        if comparison is None and threshold is None:
            self.error(node, f'{who} has no condition (such as "> 0.05")')
            return None
        if comparison is None or threshold is None:
            given, missing = (
                ("threshold", "comparison") if comparison is None else ("comparison", "threshold")
            )
            present = threshold if comparison is None else comparison
            assert present is not None
            self.error(present.key, f"{who} has a {given} but no {missing}")
            return None
        operator = self.text(comparison.value)
        if operator is not None and operator.strip() not in COMPARISONS:
            self.error(
                comparison.value,
                f"comparison {operator!r} is not one of {' '.join(COMPARISONS)}",
            )
            operator = None
        raw = threshold.value.value
        if isinstance(raw, bool) or raw is None or isinstance(raw, list | dict):
            self.error(
                threshold.value, f"threshold must be a number, got {kind_of(threshold.value)}"
            )
            return None
        value = self.threshold(threshold.value, str(raw), signal, "threshold")
        if operator is None or value is None:
            return None
        return operator.strip(), value

    def threshold(self, node: Node, text: str, signal: Signal | None, what: str) -> float | None:
        match = _THRESHOLD.fullmatch(text.strip())
        if match is None:
            self.error(node, f"{what}: {text[:40]!r} is not a number")
            return None
        value = float(match.group(1))
        unit = match.group(2)
        if not math.isfinite(value):
            self.error(node, f"{what}: the threshold must be a finite number")
            return None
        if unit == "%":
            value /= 100
        elif unit is not None:
            if signal is not None and signal not in LATENCY_SIGNALS:
                self.error(node, f"{what}: {unit} is for latency signals only")
                return None
            value *= 1000 if unit == "s" else 1
        if signal in RATIO_SIGNALS and not 0 <= value <= 1:
            hint = f"; did you mean {number_text(value)}% ({number_text(value / 100)})?"
            self.error(
                node,
                f"{what}: {signal} is a ratio in [0, 1]"
                + (hint if 1 < value <= 100 else f", got {number_text(value)}"),
            )
            return None
        if signal is not None and signal is not Signal.METRIC and value < 0:
            self.error(node, f"{what}: {signal} is never negative")
            return None
        return value

    def min_requests(self, entries: dict[str, Entry], signal: Signal | None) -> int:
        entry = entries.get("min_requests")
        if entry is None:
            return 0
        value = entry.value.value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.error(entry.value, "min_requests must be a whole number, 0 or more")
            return 0
        if signal is Signal.METRIC:
            self.error(entry.key, "min_requests does not apply to metric rules (no requests)")
        return value

    def metric(
        self, entries: dict[str, Entry], signal: Signal | None, node: Node, who: str
    ) -> MetricQuery | None:
        entry = entries.get("metric")
        if signal is not Signal.METRIC:
            if entry is not None and signal is not None:
                self.error(entry.key, f"metric is for signal: metric only, not {signal}")
            return None
        if entry is None:
            self.error(entries["signal"].value, f"{who} watches signal: metric but has no metric")
            return None
        metric = self.mapping(entry.value, "metric")
        if metric is None:
            return None
        self.unknown_keys(metric, METRIC_KEYS, "metric")
        name = self.required_text(entry.value, metric, "name", "metric")
        matchers: tuple[Matcher, ...] = ()
        if "matchers" in metric:
            matchers = self.matchers(metric["matchers"].value, "metric.matchers", None)
        aggregation = self.choice(metric, "aggregation", AGGREGATIONS, "avg")
        if name is None or aggregation is None:
            return None
        return MetricQuery(name, matchers, aggregation)

    def matchers(
        self, node: Node, what: str, allowed: tuple[str, ...] | None
    ) -> tuple[Matcher, ...]:
        found: list[tuple[Node, Matcher]] = []
        if node.value is None:
            return ()
        if isinstance(node.value, dict):
            for name, entry in node.value.items():
                value = self.text(entry.value)
                if value is not None:
                    found.append((entry.key, Matcher(name, "=", value)))
        elif isinstance(node.value, list):
            for item in node.value:
                text = self.text(item)
                if text is None:
                    continue
                match = _MATCHER.fullmatch(text)
                if match is None:
                    self.error(
                        item,
                        f"{what}: {text[:60]!r} is not name=value, name!=value, "
                        "name=~regex or name!~regex",
                    )
                    continue
                value = _unquote(match.group(3))
                if value is None:
                    self.error(item, f"{what}: bad quoting in {text[:60]!r}")
                    continue
                found.append((item, Matcher(match.group(1), match.group(2), value)))
        else:
            self.error(node, f"{what} must be a mapping or a list of strings, got {kind_of(node)}")
            return ()
        matchers = []
        for where, matcher in found:
            if allowed is not None and matcher.name not in allowed:
                scope_name = next(s for s, labels in SCOPE_LABELS.items() if labels == allowed)
                has = (
                    f"only {' and '.join(allowed)}"
                    if allowed
                    else "no labels (remove the matchers)"
                )
                self.error(
                    where, f"{what}: scope {scope_name} cannot match {matcher.name!r}: it has {has}"
                )
                continue
            if matcher.op in ("=~", "!~"):
                try:
                    re.compile(matcher.value)
                except re.error as exc:
                    self.error(where, f"{what}: bad regex {matcher.value!r}: {exc}")
                    continue
            matchers.append(matcher)
        return tuple(matchers)

    def labels(self, entry: Entry | None, scope: Scope | None) -> dict[str, str]:
        if entry is None:
            return {}
        entries = self.mapping(entry.value, "labels")
        labels: dict[str, str] = {}
        for name, item in (entries or {}).items():
            if not LABEL_NAME.fullmatch(name):
                self.error(
                    item.key, f"labels: {name!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                )
                continue
            if name in RESERVED_LABELS:
                source = "name" if name == "alertname" else "severity"
                self.error(item.key, f"labels: {name} comes from the rule's {source}")
                continue
            if scope is not None and name in SCOPE_LABELS[scope]:
                self.error(item.key, f"labels: {name} is the {scope} scope's own label")
                continue
            value = self.text(item.value)
            if value is not None:
                labels[name] = value
        return labels

    def annotations(self, entry: Entry | None) -> dict[str, str]:
        if entry is None:
            return {}
        entries = self.mapping(entry.value, "annotations")
        annotations: dict[str, str] = {}
        for name, item in (entries or {}).items():
            if not LABEL_NAME.fullmatch(name):
                self.error(
                    item.key, f"annotations: {name!r} is not a name ([a-zA-Z_][a-zA-Z0-9_]*)"
                )
                continue
            template = self.text(item.value)
            if template is None:
                continue
            try:
                parse_template(template)
            except TemplateError as exc:
                self.error(item.value, f"annotations.{name}: {exc}")
                continue
            annotations[name] = template
        return annotations

    def rule_receivers(
        self, entry: Entry | None, known: Mapping[str, Node] | None
    ) -> tuple[str, ...]:
        names = self.name_list(entry, "receivers")
        if entry is None or known is None:
            return tuple(name for name, _ in names)
        for name, node in names:
            if name not in known:
                defined = f" (defined: {', '.join(known)})" if known else " (none are defined)"
                self.error(node, f"receivers: no receiver named {name!r}{defined}")
        return tuple(name for name, _ in names)

    def grouping(self, entries: dict[str, Entry]) -> Grouping | None:
        defaults = Grouping()
        group_by = defaults.group_by
        if "group_by" in entries:
            names = self.name_list(entries["group_by"], "group_by")
            for name, node in names:
                if not LABEL_NAME.fullmatch(name):
                    self.error(node, f"group_by: {name!r} is not a label name")
            group_by = tuple(name for name, _ in names)
        wait = self.duration(entries, "group_wait", defaults.group_wait)
        interval = self.duration(entries, "group_interval", defaults.group_interval, lowest=1)
        repeat = self.duration(entries, "repeat_interval", defaults.repeat_interval, lowest=1)
        if wait is None or interval is None or repeat is None:
            return None
        return Grouping(group_by, wait, interval, repeat)


def _unquote(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    if text[:1] in ("'", '"') or text[-1:] in ("'", '"'):
        return None
    return text
