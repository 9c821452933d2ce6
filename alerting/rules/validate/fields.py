"""The checks every part of a rules file shares: mappings, unknown keys, texts, choices,
durations and lists of names. `FieldChecker` collects every problem instead of stopping at the
first, and answers None where a value is unusable."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from alerting.rules.positions import Entry, Node, last_field
from alerting.rules.results import Problem, RulesFileError
from alerting.suggest import did_you_mean
from alerting.templates import go_float
from meshlens.durations import DurationError, format_duration, parse_duration

_HINTS = {
    "alert": "the rule's name is `name`",
    "expr": "meshlens rules name a `signal` and a `condition` instead of an expression",
    "groups": "list rules directly under `rules:` (there are no rule groups)",
    "route": "each rule names its `receivers` and its grouping (`group_by`, ...)",
    "api_url": "the receiver's address is `url`",
    "webhook_url": "the receiver's address is `url`",
    "secret": "the webhook signing secret is `hmac_secret`",
}


class FieldChecker:
    """Walks the tree, collecting every problem; answers None where a part is unusable."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, node: Node, message: str) -> None:
        self.problems.append(Problem(node.line, node.column, message, node.path))

    def raise_if_any(self, source: str) -> None:
        if self.problems:
            ordered = sorted(self.problems, key=lambda problem: (problem.line, problem.column))
            raise RulesFileError(ordered, source)

    @staticmethod
    def name_node(item: Node) -> Node | None:
        entry = item.value.get("name") if isinstance(item.value, dict) else None
        return entry.value if entry is not None else None

    def items(self, entry: Entry | None, what: str) -> Iterator[Node]:
        if entry is None or entry.value.value is None:
            return
        node = entry.value
        if not isinstance(node.value, list):
            self.error(node, f"{what} must be a list (`- name: ...` items), got {kind_of(node)}")
            return
        yield from node.value

    # --- values

    def mapping(self, node: Node, what: str) -> dict[str, Entry] | None:
        if isinstance(node.value, dict):
            return node.value
        self.error(node, f"{what} must be a mapping (key: value lines), got {kind_of(node)}")
        return None

    def unknown_keys(self, entries: dict[str, Entry], allowed: Sequence[str], what: str) -> None:
        for key, entry in entries.items():
            if key in allowed:
                continue
            if key in _HINTS:
                hint = f": {_HINTS[key]}"
            else:
                hint = did_you_mean(key, allowed) or f" (known: {', '.join(allowed)})"
            self.error(entry.key, f"unknown key {key!r} in {what}{hint}")

    def text(self, node: Node) -> str | None:
        """A string value; YAML scalars count with their spelling (`1.10`, `yes`)."""
        value = node.value
        if isinstance(value, str):
            return value
        if value is None or isinstance(value, list | dict):
            self.error(node, f"{last_field(node.path)} must be text, got {kind_of(node)}")
            return None
        if node.text is not None:
            return node.text
        if isinstance(value, bool):
            self.error(node, f"{last_field(node.path)} must be text, got {kind_of(node)}")
            return None
        return number_text(float(value)) if isinstance(value, float) else str(value)

    def plain_text(self, node: Node) -> str | None:
        """`text` without reporting."""
        if isinstance(node.value, str):
            return node.value
        if node.text is not None and not isinstance(node.value, list | dict):
            return node.text
        return None

    def required_text(
        self, parent: Node, entries: dict[str, Entry], key: str, who: str
    ) -> str | None:
        entry = entries.get(key)
        if entry is None:
            self.error(parent, f"{who} has no {key}")
            return None
        text = self.text(entry.value)
        if text is not None and not text.strip():
            self.error(entry.value, f"{last_field(entry.value.path)} is empty")
            return None
        if text is not None and text != text.strip():
            what = last_field(entry.value.path)
            self.error(entry.value, f"{what} has leading or trailing spaces")
            return None
        return text

    def required_choice(
        self,
        parent: Node,
        entries: dict[str, Entry],
        key: str,
        choices: Sequence[str],
        name: str | None,
    ) -> str | None:
        if key not in entries:
            who = named("rule" if key != "type" else "receiver", name)
            self.error(parent, f"{who} has no {key} (one of {', '.join(choices)})")
            return None
        return self.choice(entries, key, choices, None)

    def choice(
        self, entries: dict[str, Entry], key: str, choices: Sequence[str], default: str | None
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
                f"{last_field(entry.value.path)}: {text[:40]!r} is not one of {', '.join(choices)}"
                + did_you_mean(text, choices),
            )
            return None
        return text

    def duration(
        self, entries: dict[str, Entry], key: str, default: int, lowest: int = 0
    ) -> int | None:
        entry = entries.get(key)
        if entry is None:
            return default
        node = entry.value
        what = last_field(node.path)
        if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value == 0:
            seconds = 0
        elif isinstance(node.value, str | int) and not isinstance(node.value, bool):
            try:
                seconds = parse_duration(str(node.value))
            except DurationError as exc:
                self.error(node, f"{what}: {exc}")
                return None
        else:
            self.error(node, f"{what} must be a duration such as 5m, got {kind_of(node)}")
            return None
        if seconds < lowest:
            self.error(node, f"{what} must be at least {format_duration(lowest)}")
            return None
        return seconds

    def name_list(self, entry: Entry | None, what: str) -> list[tuple[str, Node]]:
        if entry is None or entry.value.value is None:
            return []
        node = entry.value
        if not isinstance(node.value, list):
            self.error(node, f"{what} must be a list such as [a, b], got {kind_of(node)}")
            return []
        names: list[tuple[str, Node]] = []
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


def named(kind: str, name: str | None) -> str:
    """`rule 'X'` in messages, or `the rule` when it has no name."""
    return f"{kind} {name!r}" if name else f"the {kind}"


def kind_of(node: Node) -> str:
    """What a node holds, as messages say it (`a list`, `text`, ...)."""
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


def number_text(value: float) -> str:
    """A threshold as rules write it (`0.05`, `300`)."""
    return go_float(value) if not value.is_integer() else str(int(value))
