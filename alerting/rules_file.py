"""Alert rules and receivers from YAML (`MESHLENS_RULES_FILE`) or from the API, validated.

Every problem is reported, each with its line and column (1-based; 0 for rules given as JSON
objects, which carry a path such as `metric.aggregation` instead), never just the first. Pure:
no clock, no network; `load_rules_file` and `RulesFileWatcher` read the file.

The format (Prometheus rule files and Alertmanager receivers, flattened)::

    receivers:
      - name: oncall-slack            # unique; rules refer to it by name
        type: slack                   # slack | mattermost | discord | teams | webhook
        url: https://hooks.slack.com/services/T000/B000/XXXX   # a secret: never echoed
      - name: am
        type: webhook                 # Alertmanager webhook payload (version 4)
        url: https://alertmanager-receiver.example/hook
        hmac_secret: s3cret           # optional, webhook only
    rules:
      - name: HighErrorRate           # unique; the alert's `alertname` label
        signal: error_rate            # see SIGNALS below
        scope: service                # mesh | service | edge | version (one alert per instance)
        matchers: {service: checkout} # or ['service=~"check.*"', 'service!=cart']
        condition: "> 0.05"           # quoted (YAML reads a bare `>` as a block scalar);
                                      # or `comparison: ">"` and `threshold: 0.05`; `> 5%` works
        window: 5m                    # default 5m: whole minutes, the signal over this window
        for: 2m                       # default 0: pending this long before firing
        keep_firing_for: 5m           # default 0: firing this long after the condition clears
        min_requests: 100             # default 0: fewer requests in the window: stays quiet
        severity: critical            # critical | warning (default) | info
        labels: {team: shop}          # added to the alert's labels
        annotations:                  # templates, checked at load
          summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
        receivers: [oncall-slack, am] # names of receivers defined in the same file
        group_by: [alertname, service]   # default [alertname]
        group_wait: 30s               # Alertmanager's defaults: 30s, 5m, 4h
        group_interval: 5m
        repeat_interval: 4h
      - name: HotPods
        signal: metric                # a raw metric: `metric` says which points and how
        metric: {name: k8s.pod.cpu.utilization, matchers: {k8s.namespace.name: shop},
                 aggregation: max}    # sum | avg (default) | min | max | last | rate
        scope: mesh
        condition: "> 0.9"

Rules:

- Signals and their values: `request_rate` (requests/s), `error_rate`, `saturation` and
  `mtls_coverage` (ratios in [0, 1]: thresholds outside are refused; `5%` is 0.05),
  `latency_p50`, `latency_p95`, `latency_p99` (milliseconds, as the API's `latency_ms`;
  `> 300ms` and `> 1.5s` are read as milliseconds too), `plaintext_edges` (a count), `metric`.
- Scope matchers use only the scope's labels (`SCOPE_LABELS`: mesh none, service `service`,
  edge `source` and `target`, version `service` and `version`). A mapping means `=`; strings
  are `name=value`, `name!=value`, `name=~regex`, `name!~regex` (value quotes optional; regexes
  are anchored and must compile). `metric.matchers` match the points' attributes, any name.
- Durations: `30s`, `5m`, `1h30m`, `2d`, `1w`, `0` (whole seconds; `window` whole minutes).
- Labels: names `[a-zA-Z_][a-zA-Z0-9_]*`; `alertname` and `severity` come from `name` and
  `severity`, the scope's labels from the instance, so rules cannot set them. Values are
  plain text (not templates). An unquoted YAML scalar keeps its spelling (`version: 1.10` is
  "1.10", `canary: yes` is "yes").
- Receivers named by a rule must be defined in the same file (the file is checked on its own;
  receivers made through the API are not visible to it).
- `min_requests` is 0 by default for every signal, and refused on `metric` rules (no requests).
- Unknown keys are errors (with a did-you-mean), as are duplicate keys, duplicate rule or
  receiver names, a `url` that is not http(s), `hmac_secret` on a non-webhook receiver, and
  annotations that do not parse. A YAML syntax error stops the parse: it is the one problem.
- An empty file is valid: no rules, no receivers.

Templates (annotations), a safe subset of Prometheus' Go templates, parsed once, never eval'd:
`{{ $labels.name }}` (or `.Labels.name`; `index $labels "k8s.pod.name"` for names with dots),
`{{ $value }}` (or `.Value`; empty when the alert has no value), pipelines into `humanize`,
`humanize1024`, `humanizePercentage`, `humanizeDuration` (seconds), `toUpper`, `toLower`,
`title`, `printf "%.2f"`, `default "text"` (for an empty value); calls also written
`humanize $value`. `{{-` and `-}}` trim the whitespace next to them. A missing label is empty.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

import yaml

from alerting.model import (
    AGGREGATIONS,
    COMPARISONS,
    SCOPE_LABELS,
    SEVERITIES,
    Grouping,
    Matcher,
    MetricQuery,
    Receiver,
    ReceiverType,
    Rule,
    Scope,
    Signal,
)
from meshlens.durations import DurationError, format_duration, parse_duration
from meshlens.read.windows import MAX_WINDOW_SECONDS

RATIO_SIGNALS = frozenset({Signal.ERROR_RATE, Signal.SATURATION, Signal.MTLS_COVERAGE})
LATENCY_SIGNALS = frozenset({Signal.LATENCY_P50, Signal.LATENCY_P95, Signal.LATENCY_P99})
RESERVED_LABELS = ("alertname", "severity")
"""Set from the rule's `name` and `severity`, not through `labels`."""

_TOP_KEYS = ("receivers", "rules")
_RULE_KEYS = (
    "name", "signal", "scope", "matchers", "condition", "comparison", "threshold", "window",
    "for", "keep_firing_for", "min_requests", "severity", "labels", "annotations",
    "receivers", "group_by", "group_wait", "group_interval", "repeat_interval", "metric",
)  # fmt: skip
_METRIC_KEYS = ("name", "matchers", "aggregation")
_RECEIVER_KEYS = ("name", "type", "url", "hmac_secret")
_HINTS = {
    "alert": "the rule's name is `name`",
    "expr": "meshlens rules name a `signal` and a `condition` instead of an expression",
    "groups": "list rules directly under `rules:` (there are no rule groups)",
    "route": "each rule names its `receivers` and its grouping (`group_by`, ...)",
    "api_url": "the receiver's address is `url`",
    "webhook_url": "the receiver's address is `url`",
    "secret": "the webhook signing secret is `hmac_secret`",
}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)
_ATTRIBUTE_NAME = r"[a-zA-Z_][a-zA-Z0-9_.:/\-]*"
_MATCHER = re.compile(rf"\s*({_ATTRIBUTE_NAME})\s*(=~|!~|!=|=)\s*(.*?)\s*", re.ASCII)
_CONDITION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(.*?)\s*", re.ASCII)
_THRESHOLD = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(%|ms|s)?", re.ASCII)
_MAX_NODES = 100_000
_MAX_DEPTH = 64


# --- results and errors ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong. `line` and `column` are 1-based in YAML text and 0 for JSON objects;
    `path` (`rules[2].for`, or `for` within one rule object) says where in either case."""

    line: int
    column: int
    message: str
    path: str = ""

    def format(self, source: str) -> str:
        """`source:line:column: message` (compiler style), or `path: message` without a line."""
        if self.line:
            return f"{source}:{self.line}:{self.column}: {self.message}"
        return f"{self.path}: {self.message}" if self.path else self.message


class RulesFileError(ValueError):
    """Rules or receivers that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__("\n".join(problem.format(source) for problem in self.problems))


@dataclass(frozen=True, slots=True)
class RulesFile:
    """The valid content of a rules file (every rule and receiver has `origin="file"`)."""

    rules: tuple[Rule, ...] = ()
    receivers: tuple[Receiver, ...] = ()
    source: str = ""
    digest: str = ""
    """SHA-256 of the text: a reload that finds the same digest changes nothing."""


# --- loading -----------------------------------------------------------------------------------


def load_rules_text(text: str, source: str = "<rules>") -> RulesFile:
    """Rules and receivers of a rules file's `text`; RulesFileError lists every problem."""
    checker = _Checker()
    root = _parse_yaml(text, checker)
    result = checker.rules_file(root, source) if root is not None else RulesFile(source=source)
    checker.raise_if_any(source)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return RulesFile(result.rules, result.receivers, source, digest)


def load_rules_file(path: str | Path) -> RulesFile:
    """`load_rules_text` of the file at `path`; OSError when it cannot be read."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem(line, column, "the file is not UTF-8 text")
        raise RulesFileError([problem], str(path)) from None
    return load_rules_text(text, str(path))


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
    checker = _Checker()
    node = _plain_node(data, "", checker)
    receivers = None if known_receivers is None else {name: node for name in known_receivers}
    rule = checker.rule(node, receivers, origin)
    checker.raise_if_any("")
    assert rule is not None
    return rule


def receiver_from_mapping(data: Mapping[str, object], *, origin: str = "api") -> Receiver:
    """One receiver given as a JSON object (`name`, `type`, `url`, `hmac_secret`)."""
    checker = _Checker()
    receiver = checker.receiver(_plain_node(data, "", checker), origin)
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
        "condition": f"{rule.comparison} {_number_text(rule.threshold)}",
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


class RulesFileWatcher:
    """Reloads a rules file when its content changes (`MESHLENS_RULES_FILE`).

    Call `poll()` now and then: it answers the new `RulesFile` when the text changed since the
    last poll (the first poll always reads), None when not. A changed file that is invalid
    raises RulesFileError, an unreadable one OSError, once per change: the caller keeps the
    rules it has and logs; the next change is read again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: str | None = None

    def poll(self) -> RulesFile | None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            state = f"error: {exc}"
            if state == self._seen:
                return None
            self._seen = state
            raise
        state = hashlib.sha256(data).hexdigest()
        if state == self._seen:
            return None
        self._seen = state
        return load_rules_file(self.path)


# --- templates ---------------------------------------------------------------------------------


class TemplateError(ValueError):
    """A template that does not parse; the message says why."""


_Value: TypeAlias = "str | float | Mapping[str, str] | None"


@dataclass(frozen=True, slots=True)
class _Operand:
    kind: str
    """`value`, `labels` (the map), `label` (one, `payload` its name) or `const`."""
    payload: str | float = ""


@dataclass(frozen=True, slots=True)
class _Command:
    function: str | None
    args: tuple[_Operand, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed annotation template; `render` never fails."""

    source: str
    parts: tuple[str | tuple[_Command, ...], ...]

    def render(self, labels: Mapping[str, str], value: float | None) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_text(_run(part, labels, value)))
        return "".join(out)


def parse_template(template: str) -> Template:
    """`template` parsed; TemplateError says what is wrong with it."""
    return _parse_template(template)


def render_template(template: str, labels: Mapping[str, str], value: float | None) -> str:
    """`template` with the alert's `labels` and `value` filled in (see the module docstring).

    Rules from this module have valid templates; an invalid one raises TemplateError.
    """
    return _parse_template(template).render(labels, value)


@lru_cache(maxsize=1024)
def _parse_template(template: str) -> Template:
    parts: list[str | tuple[_Command, ...]] = []
    position = 0
    trim_next = False
    for match in _ACTION.finditer(template):
        literal = template[position : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group(1):
            literal = literal.rstrip()
        if literal:
            parts.append(literal)
        parts.append(_parse_pipeline(match.group(2)))
        trim_next = bool(match.group(3))
        position = match.end()
    rest = template[position:]
    if "{{" in rest:
        raise TemplateError("`{{` without its `}}`")
    if trim_next:
        rest = rest.lstrip()
    if rest:
        parts.append(rest)
    return Template(template, tuple(parts))


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<pipe>\|)'
    r"|(?P<word>[^\s|\"`()]+)|(?P<other>\S))",
    re.DOTALL,
)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?(.)?", re.DOTALL)
_PRINTF_VERBS = "dfFeEgGsvq"


def _parse_pipeline(body: str) -> tuple[_Command, ...]:
    if not body.strip():
        raise TemplateError("empty `{{ }}`")
    commands: list[list[tuple[str, str]]] = [[]]
    for match in _TOKEN.finditer(body):
        kind = match.lastgroup
        assert kind is not None
        token = match.group(kind)
        if kind == "pipe":
            commands.append([])
        elif kind == "other":
            raise TemplateError(f"unexpected {token!r} in `{{{{{body}}}}}`")
        else:
            commands[-1].append((kind, token))
    parsed: list[_Command] = []
    for index, tokens in enumerate(commands):
        if not tokens:
            raise TemplateError(f"an empty command around `|` in `{{{{{body}}}}}`")
        parsed.append(_parse_command(tokens, piped=index > 0))
    return tuple(parsed)


def _parse_command(tokens: list[tuple[str, str]], *, piped: bool) -> _Command:
    kind, first = tokens[0]
    if kind == "word" and first in _FUNCTIONS:
        args = tuple(_parse_operand(kind, token) for kind, token in tokens[1:])
        _check_call(first, args, piped=piped)
        return _Command(first, args)
    if kind == "word" and not _is_operand(first):
        raise TemplateError(f"unknown function {first!r}{_did_you_mean(first, _FUNCTIONS)}")
    if piped:
        raise TemplateError(f"{first!r} after `|` must be a function ({', '.join(_FUNCTIONS)})")
    if len(tokens) > 1:
        raise TemplateError(f"{first!r} is not a function: cannot take {tokens[1][1]!r}")
    operand = _parse_operand(kind, first)
    if operand.kind == "labels":
        raise TemplateError(_LABELS_MAP)
    return _Command(None, (operand,))


_LABELS_MAP = '$labels is all labels: show one as $labels.name or index $labels "name"'


def _is_operand(word: str) -> bool:
    return word.startswith(("$", ".")) or _NUMBER.fullmatch(word) is not None


def _parse_operand(kind: str, token: str) -> _Operand:
    if kind == "string":
        try:
            text = json.loads(token)
        except ValueError as exc:
            raise TemplateError(f"bad string {token}") from exc
        return _Operand("const", str(text))
    if kind == "raw":
        return _Operand("const", token[1:-1])
    if _NUMBER.fullmatch(token):
        return _Operand("const", float(token))
    if token in ("$value", ".Value"):
        return _Operand("value")
    if token in ("$labels", ".Labels"):
        return _Operand("labels")
    for prefix in ("$labels.", ".Labels."):
        if token.startswith(prefix):
            name = token[len(prefix) :]
            if not _LABEL_NAME.fullmatch(name):
                raise TemplateError(f'{token!r}: write index {prefix[:-1]} "{name}" for that name')
            return _Operand("label", name)
    if token in _FUNCTIONS:
        raise TemplateError(f"{token!r} is a function: call it first or after `|`")
    if token.startswith("$"):
        raise TemplateError(f"unknown variable {token!r} (there are $labels and $value)")
    if token.startswith("."):
        raise TemplateError(f"unknown field {token!r} (there are .Labels and .Value)")
    raise TemplateError(f"unknown function {token!r}{_did_you_mean(token, _FUNCTIONS)}")


def _check_call(function: str, args: tuple[_Operand, ...], *, piped: bool) -> None:
    lowest, highest, _ = _FUNCTIONS[function]
    count = len(args) + piped
    if count < lowest or (highest is not None and count > highest):
        wanted = str(lowest) if highest == lowest else f"at least {lowest}"
        raise TemplateError(f"{function} takes {wanted} argument(s), got {count}")
    for position, arg in enumerate(args):
        if arg.kind == "labels" and not (function == "index" and position == 0):
            raise TemplateError(_LABELS_MAP)
    if function == "index" and args[0].kind != "labels":
        raise TemplateError('index works on $labels only: index $labels "name"')
    if function == "printf":
        if args[0].kind != "const" or not isinstance(args[0].payload, str):
            raise TemplateError('printf needs a format string first: printf "%.2f" $value')
        verbs = _printf_verbs(args[0].payload)
        if verbs != count - 1:
            raise TemplateError(
                f"printf format {args[0].payload!r} has {verbs} verb(s) for {count - 1} value(s)"
            )


def _printf_verbs(fmt: str) -> int:
    verbs = 0
    for match in _VERB.finditer(fmt):
        verb = match.group(4)
        if verb == "%":
            continue
        if verb is None or verb not in _PRINTF_VERBS:
            raise TemplateError(
                f"printf format {fmt!r}: unknown verb %{verb or ''} (use %d %f %e %g %s %v %q)"
            )
        verbs += 1
    return verbs


def _run(pipeline: tuple[_Command, ...], labels: Mapping[str, str], value: float | None) -> _Value:
    result: _Value = None
    for index, command in enumerate(pipeline):
        args = [_evaluate(arg, labels, value) for arg in command.args]
        if index > 0:
            args.append(result)
        result = args[0] if command.function is None else _FUNCTIONS[command.function][2](args)
    return result


def _evaluate(operand: _Operand, labels: Mapping[str, str], value: float | None) -> _Value:
    if operand.kind == "value":
        return value
    if operand.kind == "labels":
        return labels
    if operand.kind == "label":
        return labels.get(str(operand.payload), "")
    return operand.payload


def _text(value: _Value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float | int):
        return _go_float(float(value))
    return ""


def _go_float(value: float) -> str:
    """A float as Go's `{{ $value }}` shows it (NaN, +Inf; no trailing `.0`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _g4(value: float) -> str:
    """Go's `%.4g`."""
    if math.isnan(value) or math.isinf(value):
        return _go_float(value)
    return f"{value:.4g}"


def _numeric(function: Callable[[float], str]) -> Callable[[list[_Value]], _Value]:
    def call(args: list[_Value]) -> _Value:
        (arg,) = args
        if arg is None or isinstance(arg, Mapping):
            return ""
        if isinstance(arg, str):
            try:
                number = float(arg)
            except ValueError:
                return arg
        else:
            number = float(arg)
        return function(number)

    return call


def _humanize(value: float) -> str:
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    prefix = ""
    if abs(value) >= 1:
        for unit in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix = unit
            value /= 1000
    else:
        for unit in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(value) >= 1:
                break
            prefix = unit
            value *= 1000
    return f"{_g4(value)}{prefix}"


def _humanize1024(value: float) -> str:
    if abs(value) <= 1 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    prefix = ""
    for unit in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(value) < 1024:
            break
        prefix = unit
        value /= 1024
    return f"{_g4(value)}{prefix}"


def _humanize_duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return "0s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, whole // 60 % 60
        hours, days = whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value)}s"
    prefix = ""
    for unit in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = unit
        value *= 1000
    return f"{_g4(value)}{prefix}s"


def _humanize_percentage(value: float) -> str:
    return f"{_g4(value * 100)}%"


def _string_function(function: Callable[[str], str]) -> Callable[[list[_Value]], _Value]:
    def call(args: list[_Value]) -> _Value:
        return function(_text(args[0]))

    return call


def _title(text: str) -> str:
    return re.sub(r"(?<!\w)\w", lambda match: match.group(0).upper(), text)


def _default(args: list[_Value]) -> _Value:
    fallback, value = args
    return fallback if value is None or value == "" else value


def _index(args: list[_Value]) -> _Value:
    labels, name = args
    return labels.get(_text(name), "") if isinstance(labels, Mapping) else ""


def _printf(args: list[_Value]) -> _Value:
    fmt = _text(args[0])
    values = args[1:]
    out: list[str] = []
    position = 0
    used = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[position : match.start()])
        position = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(flags, width, precision, verb or "v", values[used]))
        used += 1
    out.append(fmt[position:])
    return "".join(out)


def _format_one(
    flags: str, width: str | None, precision: str | None, verb: str, arg: _Value
) -> str:
    align = "<" if "-" in flags else ">"
    size = width or ""
    if verb in "sv":
        return format(_text(arg), f"{align}{size}")
    if verb == "q":
        return format(json.dumps(_text(arg), ensure_ascii=False), f"{align}{size}")
    number: float | None = None
    if isinstance(arg, float | int):
        number = float(arg)
    elif isinstance(arg, str):
        try:
            number = float(arg)
        except ValueError:
            number = None
    if number is None:
        return f"%!{verb}({_text(arg)})"
    if math.isnan(number) or math.isinf(number):
        return format(_go_float(number), f"{align}{size}")
    sign = "+" if "+" in flags else (" " if " " in flags else "")
    zero = "0" if "0" in flags and "-" not in flags else ""
    alternate = "#" if "#" in flags else ""
    spec = f"{align if not zero else ''}{sign}{alternate}{zero}{size}"
    if verb == "d":
        return format(int(number), spec + "d")
    return format(number, f"{spec}{'.' + precision if precision else ''}{verb}")


_FUNCTIONS: dict[str, tuple[int, int | None, Callable[[list[_Value]], _Value]]] = {
    "humanize": (1, 1, _numeric(_humanize)),
    "humanize1024": (1, 1, _numeric(_humanize1024)),
    "humanizePercentage": (1, 1, _numeric(_humanize_percentage)),
    "humanizeDuration": (1, 1, _numeric(_humanize_duration)),
    "toUpper": (1, 1, _string_function(str.upper)),
    "toLower": (1, 1, _string_function(str.lower)),
    "title": (1, 1, _string_function(_title)),
    "printf": (1, None, _printf),
    "default": (2, 2, _default),
    "index": (2, 2, _index),
}
"""name -> (fewest arguments, most arguments, implementation); a piped value is the last
argument, as in Go templates."""


# --- the tree both YAML and JSON become --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    key: _Node
    value: _Node


@dataclass(frozen=True, slots=True, eq=False)
class _Node:
    value: str | int | float | bool | list[_Node] | dict[str, _Entry] | None
    line: int
    column: int
    path: str
    text: str | None = None
    """A YAML scalar's spelling (`1.10` for the float 1.1); None for JSON values."""


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    step = key if _LABEL_NAME.fullmatch(key) else json.dumps(key)
    return f"{path}.{step}" if path else step


def _parse_yaml(text: str, checker: _Checker) -> _Node | None:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _YamlTree(loader, checker).convert(root, "", 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = ": ".join(part for part in (exc.context, exc.problem) if part) or "not YAML"
        checker.problems.append(Problem(line, column, _yaml_message(problem, text, line)))
    except yaml.YAMLError as exc:  # a reader error: a character YAML does not allow
        position = getattr(exc, "position", 0)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        checker.problems.append(Problem(line, column, f"YAML: {exc}".splitlines()[0]))
    finally:
        loader.dispose()
    return None


def _yaml_message(problem: str, text: str, line: int) -> str:
    source = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    found = re.match(r"\s*(?:-\s+)?(condition|comparison)\s*:\s*([>|&*].*?)\s*$", source)
    if found:
        return (
            f"YAML: {problem}: quote the {found.group(1)}, as in "
            f'{found.group(1)}: "{found.group(2)}"'
        )
    return f"YAML: {problem}"


class _YamlTree:
    """YAML nodes -> `_Node`s: scalars typed as YAML 1.1 reads them, with their spelling kept;
    merge keys (`<<: *defaults`) applied; duplicate keys and alias bombs refused."""

    def __init__(self, loader: yaml.SafeLoader, checker: _Checker) -> None:
        self.loader = loader
        self.checker = checker
        self.count = 0

    def convert(self, node: yaml.Node, path: str, depth: int) -> _Node:
        self.count += 1
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if self.count > _MAX_NODES or depth > _MAX_DEPTH:
            raise yaml.MarkedYAMLError(
                problem="too deeply nested, or aliases expand too far", problem_mark=node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            return _Node(self._mapping(node, path, depth), line, column, path)
        if isinstance(node, yaml.SequenceNode):
            items = [
                self.convert(item, _child_path(path, index), depth + 1)
                for index, item in enumerate(node.value)
            ]
            return _Node(items, line, column, path)
        assert isinstance(node, yaml.ScalarNode)
        return _Node(self._scalar(node, path), line, column, path, text=str(node.value))

    def _scalar(self, node: yaml.ScalarNode, path: str) -> str | int | float | bool | None:
        if node.tag not in yaml.SafeLoader.yaml_constructors:
            shown = f"{node.tag} {node.value}".strip()
            hint = f'quote the value: "{shown}"' if node.tag.startswith("!") else "not supported"
            self.checker.problems.append(
                Problem(
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    f"{_last(path)}: {node.tag!r} is read as a YAML tag: {hint}",
                    path,
                )
            )
            return shown  # read on as the user meant it: one problem, not two
        value = self.loader.construct_object(node)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return str(node.value)  # dates, binary: their spelling

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, _Entry]:
        merged: dict[str, _Entry] = {}
        entries: dict[str, _Entry] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self._merge(value_node, path, depth))
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            key_line, key_column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            child = _child_path(path, key)
            if not isinstance(key_node, yaml.ScalarNode):
                self.checker.problems.append(
                    Problem(key_line, key_column, "a key must be plain text", path)
                )
                continue
            if key in entries:
                first = entries[key].key
                self.checker.problems.append(
                    Problem(
                        key_line,
                        key_column,
                        f"{key} given twice (first at line {first.line})",
                        child,
                    )
                )
                continue
            entries[key] = _Entry(
                _Node(key, key_line, key_column, child, text=key),
                self.convert(value_node, child, depth + 1),
            )
        return {**merged, **entries}

    def _merge(self, node: yaml.Node, path: str, depth: int) -> dict[str, _Entry]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, _Entry] = {}
        for source in reversed(sources):  # earlier sources win, as YAML's merge key says
            if not isinstance(source, yaml.MappingNode):
                raise yaml.MarkedYAMLError(
                    problem="`<<` merges mappings only", problem_mark=source.start_mark
                )
            merged.update(self._mapping(source, path, depth + 1))
        return merged


def _plain_node(value: object, path: str, checker: _Checker, depth: int = 0) -> _Node:
    if depth > _MAX_DEPTH:
        checker.problems.append(Problem(0, 0, "nested too deeply", path))
        return _Node(None, 0, 0, path)
    if isinstance(value, Mapping):
        entries: dict[str, _Entry] = {}
        for key, item in value.items():
            name = str(key)
            child = _child_path(path, name)
            entries[name] = _Entry(
                _Node(name, 0, 0, child), _plain_node(item, child, checker, depth + 1)
            )
        return _Node(entries, 0, 0, path)
    if isinstance(value, list | tuple):
        items = [
            _plain_node(item, _child_path(path, index), checker, depth + 1)
            for index, item in enumerate(value)
        ]
        return _Node(items, 0, 0, path)
    if value is None or isinstance(value, str | int | float | bool):
        return _Node(value, 0, 0, path)
    return _Node(str(value), 0, 0, path)


def _last(path: str) -> str:
    """The field a path ends in, as messages name it (`rules[0].metric.name` -> `metric.name`)."""
    match = re.match(r"^(?:rules|receivers)\[\d+\]\.(.+)$", path)
    return match.group(1) if match else (path or "the file")


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(node: _Node) -> str:
    value = node.value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def _number_text(value: float) -> str:
    return _go_float(value) if not value.is_integer() else str(int(value))


# --- validation --------------------------------------------------------------------------------


class _Checker:
    """Walks the tree, collecting every problem; answers None where a part is unusable."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, node: _Node, message: str) -> None:
        self.problems.append(Problem(node.line, node.column, message, node.path))

    def raise_if_any(self, source: str) -> None:
        if self.problems:
            ordered = sorted(self.problems, key=lambda problem: (problem.line, problem.column))
            raise RulesFileError(ordered, source)

    # --- the file

    def rules_file(self, root: _Node, source: str) -> RulesFile:
        if not isinstance(root.value, dict):
            self.error(root, "a rules file is a mapping with `rules:` and `receivers:`")
            return RulesFile(source=source)
        self.unknown_keys(root.value, _TOP_KEYS, "the file")
        receivers: list[Receiver] = []
        first_seen: dict[str, _Node] = {}
        for item in self.items(root.value.get("receivers"), "receivers"):
            receiver = self.receiver(item, "file")
            name_node = self.name_node(item)
            name = self.plain_text(name_node) if name_node is not None else None
            if name_node is not None and name:
                if name in first_seen:
                    self.error(
                        name_node,
                        f"receiver {name!r} is defined twice "
                        f"(first at line {first_seen[name].line})",
                    )
                    continue
                first_seen[name] = name_node  # even when invalid: rules may still name it
            if receiver is not None:
                receivers.append(receiver)
        rules: list[Rule] = []
        rule_names: dict[str, _Node] = {}
        for item in self.items(root.value.get("rules"), "rules"):
            rule = self.rule(item, first_seen, "file")
            name_node = self.name_node(item)
            name = self.plain_text(name_node) if name_node is not None else None
            if name_node is not None and name:
                if name in rule_names:
                    self.error(
                        name_node,
                        f"rule {name!r} is defined twice (first at line {rule_names[name].line})",
                    )
                    continue
                rule_names[name] = name_node
            if rule is not None:
                rules.append(rule)
        return RulesFile(tuple(rules), tuple(receivers), source)

    @staticmethod
    def name_node(item: _Node) -> _Node | None:
        entry = item.value.get("name") if isinstance(item.value, dict) else None
        return entry.value if entry is not None else None

    def items(self, entry: _Entry | None, what: str) -> Iterator[_Node]:
        if entry is None or entry.value.value is None:
            return
        node = entry.value
        if not isinstance(node.value, list):
            self.error(node, f"{what} must be a list (`- name: ...` items), got {_kind(node)}")
            return
        yield from node.value

    # --- one receiver

    def receiver(self, node: _Node, origin: str) -> Receiver | None:
        entries = self.mapping(node, "a receiver")
        if entries is None:
            return None
        before = len(self.problems)
        self.unknown_keys(entries, _RECEIVER_KEYS, "a receiver")
        name = self.required_text(node, entries, "name", "a receiver")
        kind = self.required_choice(node, entries, "type", [t.value for t in ReceiverType], name)
        url = self.required_text(node, entries, "url", _who("receiver", name))
        if url is not None and "url" in entries:
            self.check_url(entries["url"].value, url)
        secret: str | None = None
        if "hmac_secret" in entries:
            secret = self.text(entries["hmac_secret"].value)
            if secret == "":
                self.error(entries["hmac_secret"].value, "hmac_secret is empty")
            if kind is not None and kind != ReceiverType.WEBHOOK:
                self.error(
                    entries["hmac_secret"].key,
                    f"hmac_secret is for webhook receivers only, not {kind}",
                )
        if len(self.problems) > before or name is None or kind is None or url is None:
            return None
        return Receiver(name, ReceiverType(kind), url, hmac_secret=secret, origin=origin)

    def check_url(self, node: _Node, url: str) -> None:
        # never echo the URL: it is a secret
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (a bad port raises)
        except ValueError:
            self.error(node, "url is not a valid URL")
            return
        if parts.scheme not in ("http", "https"):
            self.error(node, "url must start with https:// (or http://)")
        elif not parts.hostname:
            self.error(node, "url has no host")
        elif any(character.isspace() for character in url):
            self.error(node, "url contains white space")

    # --- one rule

    def rule(
        self, node: _Node, known_receivers: Mapping[str, _Node] | None, origin: str
    ) -> Rule | None:
        entries = self.mapping(node, "a rule")
        if entries is None:
            return None
        before = len(self.problems)
        self.unknown_keys(entries, _RULE_KEYS, "a rule")
        name = self.required_text(node, entries, "name", "a rule")
        who = _who("rule", name)
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
        self, node: _Node, entries: dict[str, _Entry], signal: Signal | None, who: str
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
            self.error(threshold.value, f"threshold must be a number, got {_kind(threshold.value)}")
            return None
        value = self.threshold(threshold.value, str(raw), signal, "threshold")
        if operator is None or value is None:
            return None
        return operator.strip(), value

    def threshold(self, node: _Node, text: str, signal: Signal | None, what: str) -> float | None:
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
            hint = f"; did you mean {_number_text(value)}% ({_number_text(value / 100)})?"
            self.error(
                node,
                f"{what}: {signal} is a ratio in [0, 1]"
                + (hint if 1 < value <= 100 else f", got {_number_text(value)}"),
            )
            return None
        if signal is not None and signal is not Signal.METRIC and value < 0:
            self.error(node, f"{what}: {signal} is never negative")
            return None
        return value

    def min_requests(self, entries: dict[str, _Entry], signal: Signal | None) -> int:
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
        self, entries: dict[str, _Entry], signal: Signal | None, node: _Node, who: str
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
        self.unknown_keys(metric, _METRIC_KEYS, "metric")
        name = self.required_text(entry.value, metric, "name", "metric")
        matchers: tuple[Matcher, ...] = ()
        if "matchers" in metric:
            matchers = self.matchers(metric["matchers"].value, "metric.matchers", None)
        aggregation = self.choice(metric, "aggregation", AGGREGATIONS, "avg")
        if name is None or aggregation is None:
            return None
        return MetricQuery(name, matchers, aggregation)

    def matchers(
        self, node: _Node, what: str, allowed: tuple[str, ...] | None
    ) -> tuple[Matcher, ...]:
        found: list[tuple[_Node, Matcher]] = []
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
            self.error(node, f"{what} must be a mapping or a list of strings, got {_kind(node)}")
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

    def labels(self, entry: _Entry | None, scope: Scope | None) -> dict[str, str]:
        if entry is None:
            return {}
        entries = self.mapping(entry.value, "labels")
        labels: dict[str, str] = {}
        for name, item in (entries or {}).items():
            if not _LABEL_NAME.fullmatch(name):
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

    def annotations(self, entry: _Entry | None) -> dict[str, str]:
        if entry is None:
            return {}
        entries = self.mapping(entry.value, "annotations")
        annotations: dict[str, str] = {}
        for name, item in (entries or {}).items():
            if not _LABEL_NAME.fullmatch(name):
                self.error(
                    item.key, f"annotations: {name!r} is not a name ([a-zA-Z_][a-zA-Z0-9_]*)"
                )
                continue
            template = self.text(item.value)
            if template is None:
                continue
            try:
                _parse_template(template)
            except TemplateError as exc:
                self.error(item.value, f"annotations.{name}: {exc}")
                continue
            annotations[name] = template
        return annotations

    def rule_receivers(
        self, entry: _Entry | None, known: Mapping[str, _Node] | None
    ) -> tuple[str, ...]:
        names = self.name_list(entry, "receivers")
        if entry is None or known is None:
            return tuple(name for name, _ in names)
        for name, node in names:
            if name not in known:
                defined = f" (defined: {', '.join(known)})" if known else " (none are defined)"
                self.error(node, f"receivers: no receiver named {name!r}{defined}")
        return tuple(name for name, _ in names)

    def grouping(self, entries: dict[str, _Entry]) -> Grouping | None:
        defaults = Grouping()
        group_by = defaults.group_by
        if "group_by" in entries:
            names = self.name_list(entries["group_by"], "group_by")
            for name, node in names:
                if not _LABEL_NAME.fullmatch(name):
                    self.error(node, f"group_by: {name!r} is not a label name")
            group_by = tuple(name for name, _ in names)
        wait = self.duration(entries, "group_wait", defaults.group_wait)
        interval = self.duration(entries, "group_interval", defaults.group_interval, lowest=1)
        repeat = self.duration(entries, "repeat_interval", defaults.repeat_interval, lowest=1)
        if wait is None or interval is None or repeat is None:
            return None
        return Grouping(group_by, wait, interval, repeat)

    # --- values

    def mapping(self, node: _Node, what: str) -> dict[str, _Entry] | None:
        if isinstance(node.value, dict):
            return node.value
        self.error(node, f"{what} must be a mapping (key: value lines), got {_kind(node)}")
        return None

    def unknown_keys(self, entries: dict[str, _Entry], allowed: Sequence[str], what: str) -> None:
        for key, entry in entries.items():
            if key in allowed:
                continue
            if key in _HINTS:
                hint = f": {_HINTS[key]}"
            else:
                hint = _did_you_mean(key, allowed) or f" (known: {', '.join(allowed)})"
            self.error(entry.key, f"unknown key {key!r} in {what}{hint}")

    def text(self, node: _Node) -> str | None:
        """A string value; YAML scalars count with their spelling (`1.10`, `yes`)."""
        value = node.value
        if isinstance(value, str):
            return value
        if value is None or isinstance(value, list | dict):
            self.error(node, f"{_last(node.path)} must be text, got {_kind(node)}")
            return None
        if node.text is not None:
            return node.text
        if isinstance(value, bool):
            self.error(node, f"{_last(node.path)} must be text, got {_kind(node)}")
            return None
        return _number_text(float(value)) if isinstance(value, float) else str(value)

    def plain_text(self, node: _Node) -> str | None:
        """`text` without reporting."""
        if isinstance(node.value, str):
            return node.value
        if node.text is not None and not isinstance(node.value, list | dict):
            return node.text
        return None

    def required_text(
        self, parent: _Node, entries: dict[str, _Entry], key: str, who: str
    ) -> str | None:
        entry = entries.get(key)
        if entry is None:
            self.error(parent, f"{who} has no {key}")
            return None
        text = self.text(entry.value)
        if text is not None and not text.strip():
            self.error(entry.value, f"{_last(entry.value.path)} is empty")
            return None
        if text is not None and text != text.strip():
            self.error(entry.value, f"{_last(entry.value.path)} has leading or trailing spaces")
            return None
        return text

    def required_choice(
        self,
        parent: _Node,
        entries: dict[str, _Entry],
        key: str,
        choices: Sequence[str],
        name: str | None,
    ) -> str | None:
        if key not in entries:
            who = _who("rule" if key != "type" else "receiver", name)
            self.error(parent, f"{who} has no {key} (one of {', '.join(choices)})")
            return None
        return self.choice(entries, key, choices, None)

    def choice(
        self, entries: dict[str, _Entry], key: str, choices: Sequence[str], default: str | None
    ) -> str | None:
        entry = entries.get(key)
        if entry is None:
            return default
        text = self.text(entry.value)
        if text is None:
            return None
        if text not in choices:
            self.error(
                entry.value,
                f"{_last(entry.value.path)}: {text[:40]!r} is not one of {', '.join(choices)}"
                + _did_you_mean(text, choices),
            )
            return None
        return text

    def duration(
        self, entries: dict[str, _Entry], key: str, default: int, lowest: int = 0
    ) -> int | None:
        entry = entries.get(key)
        if entry is None:
            return default
        node = entry.value
        what = _last(node.path)
        if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value == 0:
            seconds = 0
        elif isinstance(node.value, str | int) and not isinstance(node.value, bool):
            try:
                seconds = parse_duration(str(node.value))
            except DurationError as exc:
                self.error(node, f"{what}: {exc}")
                return None
        else:
            self.error(node, f"{what} must be a duration such as 5m, got {_kind(node)}")
            return None
        if seconds < lowest:
            self.error(node, f"{what} must be at least {format_duration(lowest)}")
            return None
        return seconds

    def name_list(self, entry: _Entry | None, what: str) -> list[tuple[str, _Node]]:
        if entry is None or entry.value.value is None:
            return []
        node = entry.value
        if not isinstance(node.value, list):
            self.error(node, f"{what} must be a list such as [a, b], got {_kind(node)}")
            return []
        names: list[tuple[str, _Node]] = []
        seen: set[str] = set()
        for item in node.value:
            name = self.text(item)
            if name is None:
                continue
            if name in seen:
                self.error(item, f"{what}: {name!r} is listed twice")
                continue
            seen.add(name)
            names.append((name, item))
        return names


def _who(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else f"the {kind}"


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
