"""Rules files: the format, every problem with its line, templates, matchers, durations,
rules given as JSON objects, reloading, and the alerting settings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerting.model import (
    Grouping,
    Matcher,
    MetricQuery,
    Receiver,
    ReceiverType,
    Rule,
    Scope,
    Signal,
)
from alerting.rules import (
    Problem,
    RulesFileError,
    RulesFileWatcher,
    load_rules_file,
    load_rules_text,
    receiver_from_mapping,
    rule_from_mapping,
    rule_to_mapping,
)
from alerting.templates import TemplateError, parse_template, render_template
from harness.repo import REPO
from meshlens.durations import DurationError, format_duration, parse_duration
from meshlens.settings import Settings

RULES = REPO / "tests" / "testdata" / "rules"


def problems(text: str) -> list[Problem]:
    with pytest.raises(RulesFileError) as caught:
        load_rules_text(text, "t.yaml")
    return list(caught.value.problems)


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def rule_text(*lines: str) -> str:
    """A file with one rule: `name: R`, then `lines` (each a `key: value` of the rule)."""
    body = "".join(f"    {line}\n" for line in lines)
    return f"rules:\n  - name: R\n{body}"


# --- the example file --------------------------------------------------------------------------


def test_the_example_file_reads_as_the_expected_rules() -> None:
    loaded = load_rules_file(RULES / "example.yaml")
    assert loaded.source == str(RULES / "example.yaml")
    assert len(loaded.digest) == 64
    assert [receiver.name for receiver in loaded.receivers] == [
        "oncall-slack",
        "platform-teams",
        "alertmanager",
    ]
    assert loaded.receivers[2] == Receiver(
        "alertmanager",
        ReceiverType.WEBHOOK,
        "https://alertmanager-receiver.example/hook",
        hmac_secret="s3cret",
        origin="file",
    )
    rules = {rule.name: rule for rule in loaded.rules}
    assert list(rules) == [
        "HighErrorRate",
        "SlowCalls",
        "CanaryErrors",
        "PlaintextEdges",
        "LowMtlsCoverage",
        "ServiceRunningHot",
        "HotPods",
    ]
    assert rules["HighErrorRate"] == Rule(
        name="HighErrorRate",
        signal=Signal.ERROR_RATE,
        scope=Scope.SERVICE,
        comparison=">",
        threshold=0.05,
        window=300,
        for_=120,
        keep_firing_for=300,
        min_requests=100,
        severity="critical",
        matchers=(Matcher("service", "=", "checkout"),),
        labels={"team": "shop"},
        annotations={
            "summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests",
            "description": "More than 5% of the requests to {{ $labels.service }} failed over "
            "the last 5 minutes.",
        },
        receivers=("oncall-slack", "alertmanager"),
        grouping=Grouping(("alertname", "service"), 30, 300, 14400),
        origin="file",
    )
    slow = rules["SlowCalls"]
    assert (slow.signal, slow.scope, slow.comparison, slow.threshold) == (
        Signal.LATENCY_P99,
        Scope.EDGE,
        ">",
        1500.0,
    )
    assert slow.matchers == (
        Matcher("source", "=", "frontend"),
        Matcher("target", "!~", "(redis|postgres).*"),
    )
    assert (slow.window, slow.for_, slow.severity, slow.grouping) == (
        600,
        300,
        "warning",
        Grouping(),
    )
    assert rules["CanaryErrors"].threshold == pytest.approx(0.02)
    assert rules["PlaintextEdges"].severity == "info"
    hot = rules["HotPods"]
    assert hot.metric == MetricQuery(
        "k8s.pod.cpu.utilization", (Matcher("k8s.namespace.name", "=", "shop"),), "max"
    )
    assert (hot.scope, hot.min_requests, hot.receivers) == (Scope.MESH, 0, ())
    assert all(rule.origin == "file" for rule in loaded.rules)


def test_the_example_annotations_render() -> None:
    rules = {rule.name: rule for rule in load_rules_file(RULES / "example.yaml").rules}
    labels = {"alertname": "HighErrorRate", "service": "checkout", "source": "frontend"}
    summary = rules["HighErrorRate"].annotations["summary"]
    assert render_template(summary, labels, 0.0734) == "checkout fails 7.34% of requests"
    labels["target"] = "cart"
    slow = rules["SlowCalls"].annotations["summary"]
    assert render_template(slow, labels, 1734.4) == "frontend -> cart p99 is 1734 ms"


def test_an_empty_file_has_no_rules() -> None:
    for text in ("", "# nothing yet\n", "rules:\nreceivers:\n", "rules: []\n"):
        loaded = load_rules_text(text, "t.yaml")
        assert (loaded.rules, loaded.receivers) == ((), ())


def test_defaults() -> None:
    loaded = load_rules_text(rule_text("signal: request_rate", "scope: mesh", 'condition: "< 1"'))
    (rule,) = loaded.rules
    assert rule == Rule(
        name="R",
        signal=Signal.REQUEST_RATE,
        scope=Scope.MESH,
        comparison="<",
        threshold=1.0,
        origin="file",
    )
    assert (rule.window, rule.for_, rule.keep_firing_for, rule.min_requests) == (300, 0, 0, 0)
    assert rule.severity == "warning"
    assert rule.grouping == Grouping(("alertname",), 30, 300, 4 * 3600)


# --- every problem, with its line --------------------------------------------------------------


def marked_lines(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    return [number for number, line in enumerate(lines, 1) if "# <-" in line]


def test_every_problem_of_a_file_is_reported_at_once_with_its_line() -> None:
    path = RULES / "bad.yaml"
    with pytest.raises(RulesFileError) as caught:
        load_rules_file(path)
    found = caught.value.problems
    assert [problem.line for problem in found] == marked_lines(path)
    assert all(problem.column >= 1 for problem in found)
    assert found == tuple(sorted(found, key=lambda problem: (problem.line, problem.column)))
    first = str(caught.value).splitlines()[0]
    assert first == f"{path}:4:11: type: 'slak' is not one of slack, mattermost, discord, teams, " \
        "webhook (did you mean 'slack'?)"  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "line", "column", "message"),
    [
        (["signal: error_rat", "scope: service", 'condition: "> 0.1"'], 3, 13,
         "signal: 'error_rat' is not one of request_rate, error_rate, latency_p50, latency_p95, "
         "latency_p99, saturation, mtls_coverage, plaintext_edges, metric (did you mean "
         "'error_rate'?)"),
        (["signal: error_rate", "scope: services", 'condition: "> 0.1"'], 4, 12,
         "scope: 'services' is not one of mesh, service, edge, version (did you mean 'service'?)"),
        (["signal: error_rate", 'condition: "> 0.1"'], 2, 5,
         "rule 'R' has no scope (one of mesh, service, edge, version)"),
        (["scope: mesh", 'condition: "> 0.1"'], 2, 5,
         "rule 'R' has no signal (one of request_rate, error_rate, latency_p50, latency_p95, "
         "latency_p99, saturation, mtls_coverage, plaintext_edges, metric)"),
        (["signal: error_rate", "scope: mesh"], 2, 5,
         "rule 'R' has no condition (such as \"> 0.05\")"),
        (["signal: error_rate", "scope: mesh", 'condition: "> 0.1"', "comparison: '>'"], 6, 5,
         "give either condition or comparison and threshold"),
        (["signal: error_rate", "scope: mesh", "comparison: '>'"], 5, 5,
         "rule 'R' has a comparison but no threshold"),
        (["signal: error_rate", "scope: mesh", "comparison: '=>'", "threshold: 0.1"], 5, 17,
         "comparison '=>' is not one of > >= < <= == !="),
        (["signal: error_rate", "scope: mesh", "comparison: '>'", "threshold: high"], 6, 16,
         "threshold: 'high' is not a number"),
        (["signal: error_rate", "scope: mesh", 'condition: "about 0.1"'], 5, 16,
         "condition 'about 0.1' must be a comparison (> >= < <= == !=) and a number, as in "
         '"> 0.05"'),
        (["signal: saturation", "scope: mesh", 'condition: "> 1.5"'], 5, 16,
         "condition: saturation is a ratio in [0, 1]; did you mean 1.5% (0.015)?"),
        (["signal: mtls_coverage", "scope: mesh", 'condition: "< -1"'], 5, 16,
         "condition: mtls_coverage is a ratio in [0, 1], got -1"),
        (["signal: request_rate", "scope: mesh", 'condition: "> 1s"'], 5, 16,
         "condition: s is for latency signals only"),
        (["signal: plaintext_edges", "scope: mesh", 'condition: "> -1"'], 5, 16,
         "condition: plaintext_edges is never negative"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "window: 90s"], 6, 13,
         "window must be whole minutes (1m, 90m, 2h)"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "window: 30s"], 6, 13,
         "window must be at least 1m"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "window: 91d"], 6, 13,
         "window is longer than the rollups are kept (90d)"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "for: 1.5m"], 6, 10,
         "for: '1.5m': durations are whole seconds (for example 30s, 5m, 1h30m, 2d)"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "keep_firing_for: 500ms"],
         6, 22, "keep_firing_for: '500ms': durations are whole seconds (for example 30s, 5m, "
         "1h30m, 2d)"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "group_interval: 0"], 6, 21,
         "group_interval must be at least 1s"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "min_requests: -3"], 6, 19,
         "min_requests must be a whole number, 0 or more"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "min_requests: many"], 6, 19,
         "min_requests must be a whole number, 0 or more"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "severity: page"], 6, 15,
         "severity: 'page' is not one of critical, warning, info"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "labels: {severity: x}"],
         6, 14, "labels: severity comes from the rule's severity"),
        (["signal: error_rate", "scope: edge", 'condition: "> .1"', "labels: {target: x}"],
         6, 14, "labels: target is the edge scope's own label"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "labels: {team-x: a}"],
         6, 14, "labels: 'team-x' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "labels: [team]"], 6, 13,
         "labels must be a mapping (key: value lines), got a list"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "group_by: [service, a.b]"],
         6, 25, "group_by: 'a.b' is not a label name"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "group_by: alertname"], 6, 15,
         "group_by must be a list such as [a, b], got text"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "group_by: [a, a]"], 6, 19,
         "group_by: 'a' is listed twice"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "receivers: [pager]"], 6, 17,
         "receivers: no receiver named 'pager' (none are defined)"),
        (["signal: metric", "scope: mesh", 'condition: "> .1"', "metric: {name: m, aggregation: "
          "median}"], 6, 36, "metric.aggregation: 'median' is not one of sum, avg, min, max, "
          "last, rate (did you mean 'min'?)"),
        (["signal: metric", "scope: mesh", 'condition: "> .1"', "metric: {aggregation: max}"],
         6, 13, "metric has no name"),
        (["signal: metric", "scope: mesh", 'condition: "> .1"', "metric: {name: m, labels: {}}"],
         6, 23, "unknown key 'labels' in metric (known: name, matchers, aggregation)"),
        (["signal: metric", "scope: mesh", 'condition: "> .1"', "metric: cpu"], 6, 13,
         "metric must be a mapping (key: value lines), got text"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "expr: rate(x[5m]) > 1"],
         6, 5, "unknown key 'expr' in a rule: meshlens rules name a `signal` and a `condition` "
         "instead of an expression"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "colour: red"], 6, 5,
         "unknown key 'colour' in a rule (known: name, signal, scope, matchers, condition, "
         "comparison, threshold, window, for, keep_firing_for, min_requests, severity, labels, "
         "annotations, receivers, group_by, group_wait, group_interval, repeat_interval, "
         "metric)"),
        (["signal: error_rate", "scope: mesh", 'condition: "> .1"', "for: 1m", "for: 2m"], 7, 5,
         "for given twice (first at line 6)"),
    ],
)  # fmt: skip
def test_each_problem_is_reported_at_its_line(
    lines: list[str], line: int, column: int, message: str
) -> None:
    found = only_problem(rule_text(*lines))
    assert (found.line, found.column, found.message) == (line, column, message)


def test_problems_carry_the_path_of_what_is_wrong() -> None:
    text = rule_text(
        "signal: metric",
        "scope: service",
        'condition: "> .1"',
        "matchers: {version: v1}",
        "metric: {name: m, aggregation: median}",
    )
    assert [problem.path for problem in problems(text)] == [
        "rules[0].matchers.version",
        "rules[0].metric.aggregation",
    ]


def test_a_rule_name_is_required_and_plain() -> None:
    assert only_problem("rules:\n  - signal: error_rate\n    scope: mesh\n    condition: '> 1'\n") \
        == Problem(2, 5, "a rule has no name", "rules[0]")  # fmt: skip
    found = only_problem("rules:\n  - name: ' R'\n    signal: error_rate\n    scope: mesh\n"
                         "    condition: '> 1'\n")  # fmt: skip
    assert (found.line, found.message) == (2, "name has leading or trailing spaces")


def test_duplicate_rules_and_receivers() -> None:
    rule = "  - name: R\n    signal: error_rate\n    scope: mesh\n    condition: '> 0.5'\n"
    receiver = "  - name: a\n    type: slack\n    url: https://h.example/x\n"
    text = f"receivers:\n{receiver}{receiver}rules:\n{rule}{rule}"
    assert [(p.line, p.message) for p in problems(text)] == [
        (5, "receiver 'a' is defined twice (first at line 2)"),
        (13, "rule 'R' is defined twice (first at line 9)"),
    ]


def test_receiver_problems_never_show_the_url() -> None:
    secret = "ftp://user:hunter2@hooks.example/T000/B000/XXXX"
    text = f"receivers:\n  - name: a\n    type: slack\n    url: {secret}\n"
    found = only_problem(text)
    assert (found.line, found.column) == (4, 10)
    assert "hunter2" not in found.message
    assert "XXXX" not in found.message
    for url, message in [
        ("https://", "url has no host"),
        ("https://h.example:99999/x", "url is not a valid URL"),
        ("hooks.slack.com/services/x", "url must start with https:// (or http://)"),
    ]:
        text = f"receivers:\n  - name: a\n    type: slack\n    url: '{url}'\n"
        assert only_problem(text).message == message


def test_receivers_need_name_type_and_url() -> None:
    found = problems("receivers:\n  - {}\n  - name: b\n    type: webhook\n    hmac_secret: ''\n")
    assert [(p.line, p.message) for p in found] == [
        (2, "a receiver has no name"),
        (2, "the receiver has no type (one of slack, mattermost, discord, teams, webhook)"),
        (2, "the receiver has no url"),
        (3, "receiver 'b' has no url"),
        (5, "hmac_secret is empty"),
    ]


def test_a_rule_may_name_a_receiver_that_is_invalid_without_a_second_problem() -> None:
    text = (
        "receivers:\n  - name: a\n    type: slack\n    url: ftp://x\n"
        "rules:\n  - name: R\n    signal: error_rate\n    scope: mesh\n    condition: '> .5'\n"
        "    receivers: [a]\n"
    )
    assert only_problem(text).line == 4


def test_the_file_itself() -> None:
    assert only_problem("- name: R\n") == Problem(
        1, 1, "a rules file is a mapping with `rules:` and `receivers:`", ""
    )
    found = only_problem("groups:\n  - name: shop\n")
    assert (found.line, found.column) == (1, 1)
    assert found.message == (
        "unknown key 'groups' in the file: list rules directly under `rules:` (there are no "
        "rule groups)"
    )
    assert only_problem("rule:\n  - name: R\n").message == (
        "unknown key 'rule' in the file (did you mean 'rules'?)"
    )
    assert only_problem("rules: {name: R}\n").message == (
        "rules must be a list (`- name: ...` items), got a mapping"
    )
    assert only_problem("rules:\n  - HighErrorRate\n").message == (
        "a rule must be a mapping (key: value lines), got text"
    )


# --- YAML ----------------------------------------------------------------------------------


def test_a_yaml_syntax_error_is_reported_with_its_line_and_a_hint() -> None:
    text = rule_text("signal: error_rate", "scope: mesh", "condition: > 0.05")
    assert only_problem(text) == Problem(
        5,
        18,
        "YAML: while scanning a block scalar: expected a comment or a line break, but found "
        "'0': quote the condition, as in condition: \"> 0.05\"",
    )
    found = only_problem("rules:\n  - name: R\n\t  signal: x\n")
    assert (found.line, found.column) == (3, 1)
    assert found.message == (
        "YAML: while scanning for the next token: found character '\\t' that cannot start any token"
    )
    found = only_problem("rules:\n  - name: [R\n")
    assert found.line == 3
    assert only_problem("a: 1\n---\nb: 2\n") == Problem(
        2, 1, "YAML: expected a single document in the stream: but found another document"
    )


def test_an_unquoted_bang_is_read_as_a_tag_and_explained() -> None:
    text = rule_text("signal: error_rate", "scope: mesh", "condition: != 0")
    assert only_problem(text) == Problem(
        5,
        16,
        "condition: '!=' is read as a YAML tag: quote the value: \"!= 0\"",
        "rules[0].condition",
    )


def test_yaml_scalars_keep_their_spelling_where_text_is_wanted() -> None:
    text = rule_text(
        "signal: error_rate",
        "scope: version",
        'condition: "> 0.1"',
        "matchers: {version: 1.10}",
        "labels: {canary: yes, build: 0042, day: 2024-01-02}",
    )
    (rule,) = load_rules_text(text).rules
    assert rule.matchers == (Matcher("version", "=", "1.10"),)
    assert rule.labels == {"canary": "yes", "build": "0042", "day": "2024-01-02"}


def test_merge_keys_and_anchors() -> None:
    text = (
        "rules:\n"
        "  - &base {name: A, signal: error_rate, scope: service, condition: '> 0.1', for: 5m}\n"
        "  - <<: *base\n"
        "    name: B\n"
        "    for: 1m\n"
    )
    first, second = load_rules_text(text).rules
    assert (second.name, second.for_, second.signal) == ("B", 60, Signal.ERROR_RATE)
    assert first.for_ == 300


def test_alias_bombs_and_recursion_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [{', '.join([f'*{previous}'] * 10)}]\n"
    found = only_problem(bomb)
    assert found.message == "YAML: too deeply nested, or aliases expand too far"
    assert only_problem("rules: &r [*r]\n").message == found.message


def test_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules:\n  - name: caf\xe9\n")
    with pytest.raises(RulesFileError) as caught:
        load_rules_file(path)
    assert caught.value.problems == (Problem(2, 14, "the file is not UTF-8 text"),)


# --- matchers ------------------------------------------------------------------------------


def matchers_of(scope: str, matchers: str) -> tuple[Matcher, ...]:
    text = rule_text("signal: error_rate", f"scope: {scope}", 'condition: "> .1"', matchers)
    return load_rules_text(text).rules[0].matchers


def test_matchers_in_mapping_and_string_form() -> None:
    assert matchers_of("edge", "matchers: {source: a, target: b}") == (
        Matcher("source", "=", "a"),
        Matcher("target", "=", "b"),
    )
    strings = """matchers: ['source=a', 'source != "b c"', "target=~'check.*'", 'target!~x|y']"""
    assert matchers_of("edge", strings) == (
        Matcher("source", "=", "a"),
        Matcher("source", "!=", "b c"),
        Matcher("target", "=~", "check.*"),
        Matcher("target", "!~", "x|y"),
    )
    assert matchers_of("version", r"""matchers: ['version="v\"2"']""") == (
        Matcher("version", "=", 'v"2'),
    )
    (regex,) = matchers_of("service", 'matchers: [service=~"check.*"]')
    assert regex.matches({"service": "checkout"})
    assert not regex.matches({"service": "precheckout"})  # anchored


def test_matcher_problems() -> None:
    text = rule_text(
        "signal: error_rate",
        "scope: mesh",
        'condition: "> .1"',
        "matchers: {service: a}",
    )
    assert only_problem(text).message == (
        "matchers: scope mesh cannot match 'service': it has no labels (remove the matchers)"
    )
    text = rule_text(
        "signal: error_rate",
        "scope: service",
        'condition: "> .1"',
        "matchers: ['service', 'service=\"a', 'service=~[', 42]",
    )
    assert [(p.column, p.message) for p in problems(text)] == [
        (16, "matchers: 'service' is not name=value, name!=value, name=~regex or name!~regex"),
        (27, "matchers: bad quoting in 'service=\"a'"),
        (41, "matchers: bad regex '[': unterminated character set at position 0"),
        (55, "matchers: '42' is not name=value, name!=value, name=~regex or name!~regex"),
    ]


def test_metric_matchers_use_any_attribute() -> None:
    text = rule_text(
        "signal: metric",
        "scope: service",
        'condition: "> 100"',
        "matchers: {service: cart}",
        "metric:",
        "  name: http.server.active_requests",
        "  matchers: ['k8s.namespace.name=shop', 'http.route=~/api/.*']",
        "  aggregation: rate",
    )
    (rule,) = load_rules_text(text).rules
    assert rule.matchers == (Matcher("service", "=", "cart"),)
    assert rule.metric == MetricQuery(
        "http.server.active_requests",
        (Matcher("k8s.namespace.name", "=", "shop"), Matcher("http.route", "=~", "/api/.*")),
        "rate",
    )


# --- conditions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "condition", "comparison", "threshold"),
    [
        ("error_rate", "> 0.05", ">", 0.05),
        ("error_rate", ">=5%", ">=", 0.05),
        ("mtls_coverage", "< 1", "<", 1.0),
        ("latency_p95", "> 300", ">", 300.0),
        ("latency_p95", "> 300ms", ">", 300.0),
        ("latency_p99", "> 1.5s", ">", 1500.0),
        ("request_rate", "== 0", "==", 0.0),
        ("plaintext_edges", "!= 0", "!=", 0.0),
        ("metric", "< -2.5e3", "<", -2500.0),
    ],
)
def test_conditions(signal: str, condition: str, comparison: str, threshold: float) -> None:
    metric = ["metric: {name: m}"] if signal == "metric" else []
    text = rule_text(f"signal: {signal}", "scope: mesh", f'condition: "{condition}"', *metric)
    (rule,) = load_rules_text(text).rules
    assert (rule.comparison, rule.threshold) == (comparison, pytest.approx(threshold))


def test_comparison_and_threshold_spelled_apart() -> None:
    text = rule_text("signal: error_rate", "scope: mesh", "comparison: '<='", "threshold: 0.5")
    (rule,) = load_rules_text(text).rules
    assert (rule.comparison, rule.threshold) == ("<=", 0.5)
    assert rule.holds(0.5)
    assert not rule.holds(0.51)


def test_non_finite_thresholds_are_refused() -> None:
    for threshold in ("nan", ".inf"):
        text = rule_text("signal: metric", "scope: mesh", "comparison: '>'",
                         f"threshold: {threshold}", "metric: {name: m}")  # fmt: skip
        assert only_problem(text).line == 6


# --- templates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{{ $value }}", 0.05, "0.05"),
        ("{{ $value }}", 3.0, "3"),
        ("{{ .Value }}", math.nan, "NaN"),
        ("{{ $value }}", math.inf, "+Inf"),
        ("[{{ $value }}]", None, "[]"),
        ("{{ $labels.service }}/{{ .Labels.version }}", 1.0, "cart/v2"),
        ("{{ $labels.missing }}", 1.0, ""),
        ('{{ index $labels "k8s.pod.name" }}', 1.0, "cart-7d9f"),
        ('{{ "k8s.pod.name" | index $labels }}', 1.0, "cart-7d9f"),
        ('{{ $labels.missing | default "?" }}', 1.0, "?"),
        ('{{ $value | default "no data" }}', None, "no data"),
        ('{{ $labels.service | default "?" }}', 1.0, "cart"),
        ("{{ $labels.service | toUpper }} {{ $labels.service | title }}", 1.0, "CART Cart"),
        ('{{ printf "%.2f" $value }}|{{ $value | printf "%5.1f%%" }}', 0.123, "0.12|  0.1%"),
        ('{{ printf "%s has %d" $labels.service $value }}', 7.9, "cart has 7"),
        ('{{ printf "%q" $labels.service }}', 1.0, '"cart"'),
        ('{{ printf "%.1f" $labels.service }}', 1.0, "%!f(cart)"),
        ("a  {{- $value -}}  b", 1.0, "a1b"),
        ("{{humanize $value}}", 1234567.0, "1.235M"),
        ("{{ $value | humanize }}", 0.12, "120m"),
        ("{{ $value | humanize }}", 0.0, "0"),
        ("{{ $value | humanize1024 }}", 1048576.0, "1Mi"),
        ("{{ $value | humanize1024 }}", 0.12, "0.12"),
        ("{{ $value | humanizePercentage }}", 0.1234567, "12.35%"),
        ("{{ $value | humanizePercentage }}", 1.5, "150%"),
        ('{{ "0.5" | humanizePercentage }}', None, "50%"),
        ("{{ $labels.service | humanize }}", 1.0, "cart"),
        ("no actions { } here", 1.0, "no actions { } here"),
    ],
)
def test_templates_render(template: str, value: float | None, expected: str) -> None:
    labels = {"service": "cart", "version": "v2", "k8s.pod.name": "cart-7d9f"}
    assert render_template(template, labels, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0s"), (1, "1s"), (60, "1m 0s"), (3600, "1h 0m 0s"), (86400, "1d 0h 0m 0s"),
        (86400 + 3600, "1d 1h 0m 0s"), (-(86400 * 2 + 3600 * 3 + 60 * 4 + 5), "-2d 3h 4m 5s"),
        (899.99, "14m 59s"), (0.1, "100ms"), (0.0001, "100us"), (0.12345, "123.5ms"),
        (60.1, "1m 0s"), (1.2345, "1.234s"), (12.345, "12.35s"),
    ],
)  # fmt: skip
def test_humanize_duration_as_prometheus(value: float, expected: str) -> None:
    assert render_template("{{ $value | humanizeDuration }}", {}, value) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ $value | humanise }}", "unknown function 'humanise' (did you mean 'humanize'?)"),
        ("{{ $valeu }}", "unknown variable '$valeu' (there are $labels and $value)"),
        ("{{ .Val }}", "unknown field '.Val' (there are .Labels and .Value)"),
        ("{{ $value", "`{{` without its `}}`"),
        ("{{ }}", "empty `{{ }}`"),
        ("{{ $value | }}", "an empty command around `|` in `{{ $value | }}`"),
        ("{{ $labels }}",
         '$labels is all labels: show one as $labels.name or index $labels "name"'),
        ("{{ $labels.k8s.pod }}",
         "'$labels.k8s.pod': write index $labels \"k8s.pod\" for that name"),
        ("{{ $value | $value }}", "'$value' after `|` must be a function (humanize, humanize1024, "
         "humanizePercentage, humanizeDuration, toUpper, toLower, title, printf, default, index)"),
        ("{{ $value humanize }}", "'$value' is not a function: cannot take 'humanize'"),
        ("{{ humanize }}", "humanize takes 1 argument(s), got 0"),
        ("{{ humanize $value $value }}", "humanize takes 1 argument(s), got 2"),
        ('{{ printf "%.2f %s" $value }}', "printf format '%.2f %s' has 2 verb(s) for 1 value(s)"),
        ('{{ printf "%y" $value }}', "printf format '%y': unknown verb %y (use %d %f %e %g %s %v "
         "%q)"),
        ("{{ printf $value }}", 'printf needs a format string first: printf "%.2f" $value'),
        ('{{ index $value "x" }}', 'index works on $labels only: index $labels "name"'),
        ("{{ $value | len }}", "unknown function 'len'"),
        ("{{ ($value) }}", "unexpected '(' in `{{ ($value) }}`"),
        ('{{ "open }}', "unexpected '\"' in `{{ \"open }}`"),
    ],
)  # fmt: skip
def test_template_problems(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template)
    assert str(caught.value) == message


def test_template_problems_in_annotations_are_reported_with_their_line() -> None:
    text = rule_text(
        "signal: error_rate",
        "scope: mesh",
        'condition: "> .1"',
        "annotations:",
        '  summary: "{{ $value | humanise }}"',
        "  description: fine {{ $value }}",
        '  runbook_url: "{{ $valeu }}"',
    )
    assert [(p.line, p.column, p.path) for p in problems(text)] == [
        (7, 16, "rules[0].annotations.summary"),
        (9, 20, "rules[0].annotations.runbook_url"),
    ]


# --- rules as JSON objects (the API) -------------------------------------------------------


def test_a_rule_from_a_json_object() -> None:
    rule = rule_from_mapping(
        {
            "name": "SlowCheckout",
            "signal": "latency_p95",
            "scope": "service",
            "matchers": {"service": "checkout"},
            "condition": "> 250",
            "for": "1m",
            "receivers": ["chat"],
            "labels": {"team": "shop", "tier": 1},
        },
        known_receivers={"chat"},
    )
    assert rule == Rule(
        name="SlowCheckout",
        signal=Signal.LATENCY_P95,
        scope=Scope.SERVICE,
        comparison=">",
        threshold=250.0,
        for_=60,
        matchers=(Matcher("service", "=", "checkout"),),
        labels={"team": "shop", "tier": "1"},
        receivers=("chat",),
        origin="api",
    )


def test_problems_of_a_json_object_carry_paths_not_lines() -> None:
    with pytest.raises(RulesFileError) as caught:
        rule_from_mapping(
            {
                "name": "R",
                "signal": "metric",
                "scope": "mesh",
                "threshold": 0.5,
                "comparison": True,
                "metric": {"name": "m", "aggregation": "median"},
                "receivers": ["pager"],
                "window": 60.5,
                "labels": {"team": False},
            },
            known_receivers=["chat"],
        )
    assert [(p.line, p.column, p.path, p.message) for p in caught.value.problems] == [
        (0, 0, "comparison", "comparison must be text, got true/false"),
        (0, 0, "window", "window must be a duration such as 5m, got a number"),
        (0, 0, "labels.team", "labels.team must be text, got true/false"),
        (0, 0, "receivers[0]", "receivers: no receiver named 'pager' (defined: chat)"),
        (0, 0, "metric.aggregation",
         "metric.aggregation: 'median' is not one of sum, avg, min, max, last, rate (did you "
         "mean 'min'?)"),
    ]  # fmt: skip
    assert str(caught.value).splitlines()[0] == (
        "comparison: comparison must be text, got true/false"
    )


def test_receivers_are_not_checked_without_known_receivers() -> None:
    rule = rule_from_mapping(
        {
            "name": "R",
            "signal": "error_rate",
            "scope": "mesh",
            "condition": "> 0.5",
            "receivers": ["anything"],
        }
    )
    assert rule.receivers == ("anything",)


def test_rules_round_trip_through_their_mapping() -> None:
    for rule in load_rules_file(RULES / "example.yaml").rules:
        again = rule_from_mapping(rule_to_mapping(rule), origin="file")
        assert again == rule


def test_a_receiver_from_a_json_object() -> None:
    receiver = receiver_from_mapping({"name": "am", "type": "webhook", "url": "https://a.example/"})
    assert receiver == Receiver("am", ReceiverType.WEBHOOK, "https://a.example/")
    with pytest.raises(RulesFileError) as caught:
        receiver_from_mapping({"name": "t", "type": "teams", "url": "x", "hmac_secret": "s"})
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("url", "url must start with https:// (or http://)"),
        ("hmac_secret", "hmac_secret is for webhook receivers only, not teams"),
    ]


# --- reloading ---------------------------------------------------------------------------------


def test_the_watcher_reloads_only_changes(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    watcher = RulesFileWatcher(path)
    with pytest.raises(FileNotFoundError):
        watcher.poll()
    assert watcher.poll() is None  # the same error is raised once
    path.write_text(rule_text("signal: error_rate", "scope: mesh", 'condition: "> .5"'))
    first = watcher.poll()
    assert first is not None
    assert [rule.name for rule in first.rules] == ["R"]
    assert watcher.poll() is None
    path.write_text("rules: {}\n")
    with pytest.raises(RulesFileError):
        watcher.poll()
    assert watcher.poll() is None  # still broken, already reported
    path.write_text("rules: []\n")
    reloaded = watcher.poll()
    assert reloaded is not None
    assert reloaded.rules == ()
    assert reloaded.digest != first.digest


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("0s", 0), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800),
     ("1w", 604800), ("1d2h3m4s", 93784), (" 90s ", 90)],
)  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m", "1.5m", "500ms", "-1m", "5m1h", "11000d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_durations_format_back() -> None:
    for seconds in (0, 1, 59, 60, 90, 3600, 5400, 86400, 8 * 86400, 14 * 86400, 93784):
        assert parse_duration(format_duration(seconds)) == seconds
    assert (format_duration(5400), format_duration(14 * 86400)) == ("1h30m", "2w")


# --- settings ----------------------------------------------------------------------------------


def test_alerting_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RULES_FILE", "EVAL_INTERVAL", "WEBHOOK_ALLOWLIST", "EXTERNAL_URL", "HOST"):
        monkeypatch.delenv(f"MESHLENS_{name}", raising=False)
    settings = Settings()
    assert (settings.rules_file, settings.eval_interval, settings.webhook_allowlist) == (
        None,
        30,
        [],
    )
    assert settings.external_base_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("MESHLENS_EVAL_INTERVAL", "1m30s")
    monkeypatch.setenv("MESHLENS_WEBHOOK_ALLOWLIST", "alertmanager.monitoring.svc, 10.0.0.0/8")
    monkeypatch.setenv("MESHLENS_EXTERNAL_URL", "https://meshlens.example.com/")
    monkeypatch.setenv("MESHLENS_RULES_FILE", "/etc/meshlens/rules.yaml")
    settings = Settings()
    assert settings.eval_interval == 90
    assert settings.webhook_allowlist == ["alertmanager.monitoring.svc", "10.0.0.0/8"]
    assert settings.external_base_url() == "https://meshlens.example.com"
    assert settings.rules_file == Path("/etc/meshlens/rules.yaml")
    assert Settings(eval_interval="2.5").eval_interval == 2.5
    monkeypatch.delenv("MESHLENS_EXTERNAL_URL")
    assert Settings(host="0.0.0.0", http_port=9000).external_base_url() == "http://localhost:9000"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("eval_interval", "5x"),
        ("eval_interval", "0"),
        ("webhook_allowlist", "10.0.0.1/8"),
        ("webhook_allowlist", "https://hooks.example"),
        ("external_url", "meshlens.example.com"),
    ],
)
def test_bad_alerting_settings(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{name: value})
    assert caught.value.errors()[0]["loc"] == (name,)
