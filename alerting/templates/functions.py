"""The functions templates may call, as Prometheus' Go templates have them: `humanize`,
`humanize1024`, `humanizePercentage`, `humanizeDuration`, `toUpper`, `toLower`, `title`,
`printf`, `default` and `index`. Each takes its arguments as values (a piped value last) and
never fails."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import TypeAlias

Value: TypeAlias = "str | float | Mapping[str, str] | None"
"""What an operand or a function call evaluates to."""
VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?(.)?", re.DOTALL)
PRINTF_VERBS = "dfFeEgGsvq"


def as_text(value: Value) -> str:
    """`value` as a template shows it (nothing for None or a map)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float | int):
        return go_float(float(value))
    return ""


def go_float(value: float) -> str:
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
        return go_float(value)
    return f"{value:.4g}"


def _numeric(function: Callable[[float], str]) -> Callable[[list[Value]], Value]:
    def call(args: list[Value]) -> Value:
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


def _string_function(function: Callable[[str], str]) -> Callable[[list[Value]], Value]:
    def call(args: list[Value]) -> Value:
        return function(as_text(args[0]))

    return call


def _title(text: str) -> str:
    return re.sub(r"(?<!\w)\w", lambda match: match.group(0).upper(), text)


def _default(args: list[Value]) -> Value:
    fallback, value = args
    return fallback if value is None or value == "" else value


def _index(args: list[Value]) -> Value:
    labels, name = args
    return labels.get(as_text(name), "") if isinstance(labels, Mapping) else ""


def _printf(args: list[Value]) -> Value:
    fmt = as_text(args[0])
    values = args[1:]
    out: list[str] = []
    position = 0
    used = 0
    for match in VERB.finditer(fmt):
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


def _format_one(flags: str, width: str | None, precision: str | None, verb: str, arg: Value) -> str:
    align = "<" if "-" in flags else ">"
    size = width or ""
    if verb in "sv":
        return format(as_text(arg), f"{align}{size}")
    if verb == "q":
        return format(json.dumps(as_text(arg), ensure_ascii=False), f"{align}{size}")
    number: float | None = None
    if isinstance(arg, float | int):
        number = float(arg)
    elif isinstance(arg, str):
        try:
            number = float(arg)
        except ValueError:
            number = None
    if number is None:
        return f"%!{verb}({as_text(arg)})"
    if math.isnan(number) or math.isinf(number):
        return format(go_float(number), f"{align}{size}")
    sign = "+" if "+" in flags else (" " if " " in flags else "")
    zero = "0" if "0" in flags and "-" not in flags else ""
    alternate = "#" if "#" in flags else ""
    spec = f"{align if not zero else ''}{sign}{alternate}{zero}{size}"
    if verb == "d":
        return format(int(number), spec + "d")
    return format(number, f"{spec}{'.' + precision if precision else ''}{verb}")


FUNCTIONS: dict[str, tuple[int, int | None, Callable[[list[Value]], Value]]] = {
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
