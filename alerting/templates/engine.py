"""Templates parsed into pipelines of commands (once: `parse_template` is cached), and run
against an alert's labels and value. Never eval'd: only operands and `functions` exist."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from alerting.model import LABEL_NAME
from alerting.suggest import did_you_mean
from alerting.templates.functions import FUNCTIONS, PRINTF_VERBS, VERB, Value, as_text


class TemplateError(ValueError):
    """A template that does not parse; the message says why."""


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
                out.append(as_text(_run(part, labels, value)))
        return "".join(out)


def render_template(template: str, labels: Mapping[str, str], value: float | None) -> str:
    """`template` with the alert's `labels` and `value` filled in (see `alerting.templates`).

    Rules from `alerting.rules` have valid templates; an invalid one raises TemplateError.
    """
    return parse_template(template).render(labels, value)


@lru_cache(maxsize=1024)
def parse_template(template: str) -> Template:
    """`template` parsed (cached); TemplateError says what is wrong with it."""
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
    if kind == "word" and first in FUNCTIONS:
        args = tuple(_parse_operand(kind, token) for kind, token in tokens[1:])
        _check_call(first, args, piped=piped)
        return _Command(first, args)
    if kind == "word" and not _is_operand(first):
        raise TemplateError(f"unknown function {first!r}{did_you_mean(first, FUNCTIONS)}")
    if piped:
        raise TemplateError(f"{first!r} after `|` must be a function ({', '.join(FUNCTIONS)})")
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
            if not LABEL_NAME.fullmatch(name):
                raise TemplateError(f'{token!r}: write index {prefix[:-1]} "{name}" for that name')
            return _Operand("label", name)
    if token in FUNCTIONS:
        raise TemplateError(f"{token!r} is a function: call it first or after `|`")
    if token.startswith("$"):
        raise TemplateError(f"unknown variable {token!r} (there are $labels and $value)")
    if token.startswith("."):
        raise TemplateError(f"unknown field {token!r} (there are .Labels and .Value)")
    raise TemplateError(f"unknown function {token!r}{did_you_mean(token, FUNCTIONS)}")


def _check_call(function: str, args: tuple[_Operand, ...], *, piped: bool) -> None:
    lowest, highest, _ = FUNCTIONS[function]
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
    for match in VERB.finditer(fmt):
        verb = match.group(4)
        if verb == "%":
            continue
        if verb is None or verb not in PRINTF_VERBS:
            raise TemplateError(
                f"printf format {fmt!r}: unknown verb %{verb or ''} (use %d %f %e %g %s %v %q)"
            )
        verbs += 1
    return verbs


def _run(pipeline: tuple[_Command, ...], labels: Mapping[str, str], value: float | None) -> Value:
    result: Value = None
    for index, command in enumerate(pipeline):
        args = [_evaluate(arg, labels, value) for arg in command.args]
        if index > 0:
            args.append(result)
        result = args[0] if command.function is None else FUNCTIONS[command.function][2](args)
    return result


def _evaluate(operand: _Operand, labels: Mapping[str, str], value: float | None) -> Value:
    if operand.kind == "value":
        return value
    if operand.kind == "labels":
        return labels
    if operand.kind == "label":
        return labels.get(str(operand.payload), "")
    return operand.payload
