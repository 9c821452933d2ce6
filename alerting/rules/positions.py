"""The tree both YAML and JSON objects become: every node keeps its position (line and column,
1-based; 0 for JSON) and its path (`rules[2].for`), so every problem says where it is.

YAML scalars are typed as YAML 1.1 reads them with their spelling kept (`1.10`, `yes`); merge
keys (`<<: *defaults`) are applied; duplicate keys, non-text keys, unknown tags and alias bombs
are problems. A YAML syntax error stops the parse: it is the one problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from alerting.model import LABEL_NAME
from alerting.rules.results import Problem

MAX_NODES = 100_000
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Entry:
    key: Node
    value: Node


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    value: str | int | float | bool | list[Node] | dict[str, Entry] | None
    line: int
    column: int
    path: str
    text: str | None = None
    """A YAML scalar's spelling (`1.10` for the float 1.1); None for JSON values."""


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    step = key if LABEL_NAME.fullmatch(key) else json.dumps(key)
    return f"{path}.{step}" if path else step


def parse_yaml(text: str, problems: list[Problem]) -> Node | None:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _YamlTree(loader, problems).convert(root, "", 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = ": ".join(part for part in (exc.context, exc.problem) if part) or "not YAML"
        problems.append(Problem(line, column, _yaml_message(problem, text, line)))
    except yaml.YAMLError as exc:  # a reader error: a character YAML does not allow
        position = getattr(exc, "position", 0)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        problems.append(Problem(line, column, f"YAML: {exc}".splitlines()[0]))
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
    """YAML nodes -> `Node`s: scalars typed as YAML 1.1 reads them, with their spelling kept;
    merge keys (`<<: *defaults`) applied; duplicate keys and alias bombs refused."""

    def __init__(self, loader: yaml.SafeLoader, problems: list[Problem]) -> None:
        self.loader = loader
        self.problems = problems
        self.count = 0

    def convert(self, node: yaml.Node, path: str, depth: int) -> Node:
        self.count += 1
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise yaml.MarkedYAMLError(
                problem="too deeply nested, or aliases expand too far", problem_mark=node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            return Node(self._mapping(node, path, depth), line, column, path)
        if isinstance(node, yaml.SequenceNode):
            items = [
                self.convert(item, child_path(path, index), depth + 1)
                for index, item in enumerate(node.value)
            ]
            return Node(items, line, column, path)
        assert isinstance(node, yaml.ScalarNode)
        return Node(self._scalar(node, path), line, column, path, text=str(node.value))

    def _scalar(self, node: yaml.ScalarNode, path: str) -> str | int | float | bool | None:
        if node.tag not in yaml.SafeLoader.yaml_constructors:
            shown = f"{node.tag} {node.value}".strip()
            hint = f'quote the value: "{shown}"' if node.tag.startswith("!") else "not supported"
            self.problems.append(
                Problem(
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    f"{last_field(path)}: {node.tag!r} is read as a YAML tag: {hint}",
                    path,
                )
            )
            return shown  # read on as the user meant it: one problem, not two
        value = self.loader.construct_object(node)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return str(node.value)  # dates, binary: their spelling

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Entry]:
        merged: dict[str, Entry] = {}
        entries: dict[str, Entry] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self._merge(value_node, path, depth))
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            key_line, key_column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            child = child_path(path, key)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem(key_line, key_column, "a key must be plain text", path)
                )
                continue
            if key in entries:
                first = entries[key].key
                self.problems.append(
                    Problem(
                        key_line,
                        key_column,
                        f"{key} given twice (first at line {first.line})",
                        child,
                    )
                )
                continue
            entries[key] = Entry(
                Node(key, key_line, key_column, child, text=key),
                self.convert(value_node, child, depth + 1),
            )
        return {**merged, **entries}

    def _merge(self, node: yaml.Node, path: str, depth: int) -> dict[str, Entry]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Entry] = {}
        for source in reversed(sources):  # earlier sources win, as YAML's merge key says
            if not isinstance(source, yaml.MappingNode):
                raise yaml.MarkedYAMLError(
                    problem="`<<` merges mappings only", problem_mark=source.start_mark
                )
            merged.update(self._mapping(source, path, depth + 1))
        return merged


def plain_node(value: object, path: str, problems: list[Problem], depth: int = 0) -> Node:
    if depth > MAX_DEPTH:
        problems.append(Problem(0, 0, "nested too deeply", path))
        return Node(None, 0, 0, path)
    if isinstance(value, Mapping):
        entries: dict[str, Entry] = {}
        for key, item in value.items():
            name = str(key)
            child = child_path(path, name)
            entries[name] = Entry(
                Node(name, 0, 0, child), plain_node(item, child, problems, depth + 1)
            )
        return Node(entries, 0, 0, path)
    if isinstance(value, list | tuple):
        items = [
            plain_node(item, child_path(path, index), problems, depth + 1)
            for index, item in enumerate(value)
        ]
        return Node(items, 0, 0, path)
    if value is None or isinstance(value, str | int | float | bool):
        return Node(value, 0, 0, path)
    return Node(str(value), 0, 0, path)


def last_field(path: str) -> str:
    """The field a path ends in, as messages name it (`rules[0].metric.name` -> `metric.name`)."""
    match = re.match(r"^(?:rules|receivers)\[\d+\]\.(.+)$", path)
    return match.group(1) if match else (path or "the file")
