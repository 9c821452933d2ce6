"""The golden mesh corpus (tests/testdata/meshes): its cases, their replay, and the API's answers
in the shape of their expected files.

A case is `<mesh>/<case>.json`: the upstream sources it copies (`source`), the shape it models
(`shape`) and the OTLP/JSON export requests its exporters sent (`requests`, each an `exporter`
and the `body` of a POST /v1/traces). Beside it, `<case>.expected.json` says what meshlens's API
must answer: a `tag` every name of the case holds (so that all cases share one meshlens without
touching each other; the `user` node is shared, its edges belong to the case of their target),
`why` in words, and the `nodes` and `edges` of the case with their requests, errors, mTLS states
and, per node, requests per version. This module is pure: no server, no clock.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "testdata" / "meshes"
USER = "user"
MTLS_STATES = ("mutual", "tls", "plaintext", "unknown")
SPAN_TIME_KEYS = ("startTimeUnixNano", "endTimeUnixNano")
EVENT_TIME_KEY = "timeUnixNano"

Json = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One case of the corpus: what its exporters sent and what the API must answer."""

    mesh: str
    name: str
    document: Json
    expected: Json

    @property
    def id(self) -> str:
        return f"{self.mesh}/{self.name}"

    @property
    def tag(self) -> str:
        tag: str = self.expected["tag"]
        return tag

    def bodies(self) -> list[Json]:
        """The POST /v1/traces bodies, in the order the exporters sent them."""
        return [exported["body"] for exported in self.document["requests"]]

    def moved_bodies(self, end_unix_nano: int) -> list[Json]:
        """The export requests with every time shifted by one offset, so that the latest span
        ends at `end_unix_nano` (the offsets between spans are kept). Times stay decimal
        strings, as OTLP/JSON exporters write int64 fields."""
        offset = end_unix_nano - latest_end(self)
        moved = []
        for body in self.bodies():
            body = copy.deepcopy(body)
            for span in spans(body):
                for key in SPAN_TIME_KEYS:
                    span[key] = str(int(span[key]) + offset)
                for event in span.get("events", []):
                    event[EVENT_TIME_KEY] = str(int(event[EVENT_TIME_KEY]) + offset)
            moved.append(body)
        return moved


def load_cases(folder: Path = CORPUS) -> list[Case]:
    """Every case under `folder`, by mesh and name."""
    cases = []
    for path in sorted(folder.glob("*/*.json")):
        if path.name.endswith(".expected.json"):
            continue
        expected = path.with_name(f"{path.stem}.expected.json")
        cases.append(
            Case(
                mesh=path.parent.name,
                name=path.stem,
                document=json.loads(path.read_text()),
                expected=json.loads(expected.read_text()),
            )
        )
    return cases


# --- the spans of a case ----------------------------------------------------------


def spans(body: Json) -> Iterator[Json]:
    """Every span of one export request."""
    for resource_spans in body.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            yield from scope_spans.get("spans", [])


def latest_end(case: Case) -> int:
    """The latest span end of the case, in unix nanoseconds."""
    return max(int(span["endTimeUnixNano"]) for body in case.bodies() for span in spans(body))


# --- the API's answers in the shape of an expected file -----------------------------------------


@dataclass(frozen=True)
class Answers:
    """What the API answered: /graph, /services, /mtls, and /services/{name} per node."""

    graph: Json
    services: Json
    mtls: Json
    details: Mapping[str, Json]


CHANGING_KEYS = frozenset({"window", "rps", "seconds", "series", "step_seconds"})
"""Fields that change as time passes although nothing new was derived."""


def timeless(answers: Answers) -> Json:
    """The answers without the fields that change with time alone: two equal views mean that
    no derivation pass changed anything in between."""
    return {
        "graph": _without_changing(answers.graph),
        "services": _without_changing(answers.services),
        "mtls": _without_changing(answers.mtls),
        "details": _without_changing(dict(answers.details)),
    }


def _without_changing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_changing(v) for k, v in value.items() if k not in CHANGING_KEYS}
    if isinstance(value, list):
        return [_without_changing(item) for item in value]
    return value


def belongs(case: Case, name: str) -> bool:
    return name != USER and case.tag in name


def observed(case: Case, answers: Answers) -> Json:
    """The API's answers about the nodes and edges of `case`, shaped like its expected file
    (`tag` and `why` left out): every node whose name holds the case's tag, every edge with such
    a node at either end."""
    nodes = {
        node["id"]: {
            "type": node["type"],
            "requests": node["requests"],
            "errors": node["errors"],
            "mtls": mtls_counts(node["mtls"]),
            "versions": versions(answers.details.get(node["id"])),
        }
        for node in answers.graph["nodes"]
        if belongs(case, node["id"])
    }
    edges = [
        edge_counts(edge)
        for edge in answers.graph["edges"]
        if belongs(case, edge["source"]) or belongs(case, edge["target"])
    ]
    return {"nodes": nodes, "edges": sorted(edges, key=edge_key)}


def expected(case: Case) -> Json:
    """The expected file's nodes and edges, in the order `observed` gives them."""
    return {
        "nodes": case.expected["nodes"],
        "edges": sorted(case.expected["edges"], key=edge_key),
    }


def mtls_counts(mtls: Mapping[str, Any]) -> dict[str, int]:
    return {state: mtls[state] for state in MTLS_STATES}


def versions(detail: Json | None) -> dict[str, dict[str, int]]:
    if detail is None:
        return {}
    return {
        share["version"]: {"requests": share["requests"], "errors": share["errors"]}
        for share in detail["versions"]
    }


def edge_counts(edge: Mapping[str, Any]) -> Json:
    return {
        "source": edge["source"],
        "source_type": edge["source_type"],
        "target": edge["target"],
        "target_type": edge["target_type"],
        "requests": edge["requests"],
        "errors": edge["errors"],
        "mtls": mtls_counts(edge["mtls"]),
    }


def edge_key(edge: Mapping[str, Any]) -> tuple[str, str]:
    return edge["source"], edge["target"]


def unclaimed(cases: list[Case], answers: Answers) -> Json:
    """Nodes and edges of the graph that no case claims (a name holding no case's tag)."""
    tags = [case.tag for case in cases]

    def claimed(name: str) -> bool:
        return any(tag in name for tag in tags)

    return {
        "nodes": sorted(
            node["id"]
            for node in answers.graph["nodes"]
            if node["id"] != USER and not claimed(node["id"])
        ),
        "edges": sorted(
            f"{edge['source']} -> {edge['target']}"
            for edge in answers.graph["edges"]
            if not (claimed(edge["source"]) or claimed(edge["target"]))
        ),
    }


def mesh_mtls(cases: list[Case]) -> dict[str, int]:
    """The mesh-wide mTLS counts the cases' edges add up to."""
    totals = dict.fromkeys(MTLS_STATES, 0)
    for case in cases:
        for edge in case.expected["edges"]:
            for state in MTLS_STATES:
                totals[state] += edge["mtls"][state]
    return totals


def diff(want: Json, got: Json, *, label: str) -> str:
    """A unified diff of two documents shaped like an expected file, one line per node and edge."""
    lines = difflib.unified_diff(
        summary(want), summary(got), f"{label} (expected)", f"{label} (the API)", lineterm=""
    )
    return "\n".join(lines)


def summary(document: Json) -> list[str]:
    """One line per node and per edge, sorted: what a reader compares."""
    nodes = [
        f"node {name} ({node['type']}): {_counts(node)}; versions {_versions(node['versions'])}"
        for name, node in sorted(document["nodes"].items())
    ]
    edges = [
        f"edge {e['source']} ({e['source_type']}) -> {e['target']} ({e['target_type']}): "
        + _counts(e)
        for e in sorted(document["edges"], key=edge_key)
    ]
    return nodes + edges


def _counts(signals: Mapping[str, Any]) -> str:
    states = " ".join(f"{state}={signals['mtls'][state]}" for state in MTLS_STATES)
    return f"{signals['requests']} requests, {signals['errors']} errors, mTLS {states}"


def _versions(shares: Mapping[str, Mapping[str, int]]) -> str:
    parts = [f"{v}={s['requests']} ({s['errors']} errors)" for v, s in sorted(shares.items())]
    return ", ".join(parts) or "none"
