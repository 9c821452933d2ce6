"""Silences made through the API: a POST body read into a `Silence`, with every problem.

A body has `matchers` (objects `{name, op, value}` or strings such as `service=checkout`, at
least one, not all matching an empty label), `starts_at` (RFC 3339 or unix seconds; default
now), `ends_at` or `duration` (`2h`), `created_by` and `comment`. Pure: `now` is an argument.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from alerting.model import Matcher, Silence
from alerting.rules import Problem
from meshlens.durations import DurationError, parse_duration

_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_.:/\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.ASCII)
_MATCHER_KEYS = {"name", "op", "value"}
_SILENCE_KEYS = ("matchers", "starts_at", "ends_at", "duration", "created_by", "comment")


def silence_from_body(body: Mapping[str, Any], now: dt.datetime) -> Silence | list[Problem]:
    """A new silence from a POST body, or every problem it has (each with its `path`)."""
    problems: list[Problem] = []

    def problem(path: str, message: str) -> None:
        problems.append(Problem(0, 0, message, path))

    for key in body:
        if key not in _SILENCE_KEYS:
            problem(key, f"unknown key {key!r} (known: {', '.join(_SILENCE_KEYS)})")
    matchers = _matchers(body.get("matchers"), problem)
    given_start = body.get("starts_at")
    starts = _moment(now if given_start is None else given_start, "starts_at", problem)
    ends: dt.datetime | None = None
    if ("ends_at" in body) == ("duration" in body):
        problem("", "give either ends_at or duration (such as 2h)")
    elif "ends_at" in body:
        ends = _moment(body["ends_at"], "ends_at", problem)
    elif starts is not None:
        try:
            ends = starts + dt.timedelta(seconds=parse_duration(str(body["duration"])))
        except (DurationError, OverflowError) as exc:
            problem("duration", f"duration: {exc}")
    if starts is not None and ends is not None and ends <= max(starts, now):
        problem("ends_at", "the silence must end after it starts, and in the future")
    by, comment = body.get("created_by"), body.get("comment")
    for key, value in (("created_by", by), ("comment", comment)):
        if not isinstance(value, str) or not value.strip():
            problem(key, f"{key} is required: a non-empty text")
    if problems or starts is None or ends is None:
        return problems
    return Silence(str(uuid.uuid4()), matchers, starts, ends, str(by).strip(), str(comment).strip())


def _matchers(given: object, problem: Callable[[str, str], None]) -> tuple[Matcher, ...]:
    if not isinstance(given, list) or not given:
        problem("matchers", 'matchers must be a non-empty list (such as ["service=checkout"])')
        return ()
    found: list[Matcher] = []
    for index, item in enumerate(given):
        path = f"matchers[{index}]"
        if isinstance(item, dict):
            item = _matcher_text(item)
        match = _MATCHER.fullmatch(item) if isinstance(item, str) else None
        value = _unquote(match.group(3)) if match else None
        if match is None or value is None:
            shown = f"{item[:60]!r} is not" if isinstance(item, str) else "give"
            problem(path, f"{shown} name=value, name!=value, name=~regex, name!~regex, or an "
                    "object {name, op, value}")  # fmt: skip
            continue
        matcher = Matcher(match.group(1), match.group(2), value)
        if matcher.op in ("=~", "!~"):
            try:
                re.compile(matcher.value)
            except re.error as exc:
                problem(path, f"bad regex {matcher.value[:60]!r}: {exc}")
                continue
        found.append(matcher)
    if len(found) == len(given) and all(matcher.matches({}) for matcher in found):
        problem("matchers", "at least one matcher must not match an empty label (or every alert "
                "is silenced)")  # fmt: skip
    return tuple(found)


def _matcher_text(item: Mapping[str, object]) -> str | None:
    """`{name, op, value}` written as a string (`name op "value"`); None when it is not one."""
    if set(item) - _MATCHER_KEYS or not isinstance(item.get("value"), str):
        return None
    return f"{item.get('name')}{item.get('op', '=')}{orjson.dumps(item['value']).decode()}"


def _unquote(value: str) -> str | None:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            loaded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return loaded if isinstance(loaded, str) else None
    return None if value[:1] in ("'", '"') or value[-1:] in ("'", '"') else value


def _moment(value: object, name: str, problem: Callable[[str, str], None]) -> dt.datetime | None:
    """A time from RFC 3339 (with an offset) or unix seconds."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,11}(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and 0 <= value < 253402300800:
            return dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().upper())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(dt.UTC)
    problem(name, f"{name} must be RFC 3339 with an offset (2026-11-26T12:00:00Z) or unix seconds")
    return None
