"""The golden mesh corpus replayed through a real meshlens: exact numbers for real sidecar shapes.

Every case of tests/testdata/meshes (Istio, Linkerd and Consul sidecars, OpenTelemetry SDKs,
modelled on their sources; see tests/mesh_corpus.py and the README there) is moved to the
present, split into the export requests its exporters sent, and all requests of all cases are
posted in one shuffled order to `meshlens serve`'s OTLP/HTTP receiver as OTLP/JSON. Once the
deriver has settled (the pairing window has passed and the answers stop changing), each case's
nodes, edges, requests, errors, mTLS states and versions are compared exactly with /api/v1/graph,
/api/v1/services/{name} and /api/v1/mtls. The shuffle's seed is printed and named in every
failure; MESHLENS_CORPUS_SEED=<seed> repeats an order.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests import mesh_corpus as corpus
from tests.support import RunningServer, metric_total, running_server

PAIRING_WINDOW_SECONDS = 5.0
UNPAIRED_COUNT_AFTER_SECONDS = 1.0
DERIVE_INTERVAL_SECONDS = 0.2
WINDOW = {"window": "15m"}
SEED_VARIABLE = "MESHLENS_CORPUS_SEED"
CASES = corpus.load_cases()


@pytest.fixture(scope="module")
def corpus_server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("corpus") / "meshlens.log"
    with running_server(
        databases.create(),
        log,
        MESHLENS_DERIVE_INTERVAL_SECONDS=str(DERIVE_INTERVAL_SECONDS),
        MESHLENS_UNPAIRED_COUNT_AFTER_SECONDS=str(UNPAIRED_COUNT_AFTER_SECONDS),
        MESHLENS_PAIRING_WINDOW_SECONDS=str(PAIRING_WINDOW_SECONDS),
    ) as server:
        yield server


@pytest.fixture(scope="module")
def replayed(corpus_server: RunningServer) -> tuple[corpus.Answers, int]:
    """Every case replayed once, in one seeded shuffled order; the settled answers and the seed."""
    seed = int(os.environ.get(SEED_VARIABLE) or random.randrange(2**32))
    print(f"mesh corpus: replay order seed {seed} ({SEED_VARIABLE}={seed} repeats it)")
    now = time.time_ns()
    bodies = [(case.id, body) for case in CASES for body in case.moved_bodies(now - 1_000_000_000)]
    random.Random(seed).shuffle(bodies)
    with httpx.Client(base_url=corpus_server.otlp_http, timeout=30) as client:
        for case_id, body in bodies:
            _post(client, case_id, body)
    settled_from = time.monotonic() + PAIRING_WINDOW_SECONDS + UNPAIRED_COUNT_AFTER_SECONDS
    return _settled(corpus_server, settled_from), seed


def _post(client: httpx.Client, case_id: str, body: corpus.Json) -> None:
    answer = client.post("/v1/traces", json=body)
    assert answer.status_code == 200, f"{case_id}: {answer.status_code} {answer.text}"
    partial = answer.json().get("partialSuccess") or {}
    assert int(partial.get("rejectedSpans") or 0) == 0, f"{case_id}: {answer.text}"


# --- waiting for the deriver to settle -----------------------------------------------------------


def _settled(server: RunningServer, settled_from: float) -> corpus.Answers:
    """The API's answers once every half has waited out the pairing window and the answers have
    stayed the same over three derivation passes."""
    state: dict[str, Any] = {"view": None, "since_pass": 0.0}

    def settle() -> corpus.Answers | None:
        if time.monotonic() < settled_from:
            return None
        passes = metric_total(server, "meshlens_derive_run_seconds_count")
        answers = _answers(server)
        view = corpus.timeless(answers)
        if view != state["view"]:
            state.update(view=view, since_pass=passes)
            return None
        return answers if passes - state["since_pass"] >= 3 else None

    return wait_until(
        settle,
        timeout=PAIRING_WINDOW_SECONDS + 60,
        what="the API's answers to settle after the replay",
        every=0.5,
    )


def _answers(server: RunningServer) -> corpus.Answers:
    with server.web_client(timeout=30) as web:
        graph = _get(web, "/api/v1/graph")
        details = {
            node["id"]: _get(web, f"/api/v1/services/{quote(node['id'], safe='')}")
            for node in graph["nodes"]
            if node["id"] != corpus.USER
        }
        return corpus.Answers(
            graph=graph,
            services=_get(web, "/api/v1/services"),
            mtls=_get(web, "/api/v1/mtls"),
            details=details,
        )


def _get(web: httpx.Client, path: str) -> corpus.Json:
    answer = web.get(path, params=WINDOW)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
    body: corpus.Json = answer.json()
    return body


# --- the comparisons -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_api_answers_what_the_case_expects(
    case: corpus.Case, replayed: tuple[corpus.Answers, int]
) -> None:
    answers, seed = replayed
    want, got = corpus.expected(case), corpus.observed(case, answers)
    if got != want:
        reasons = "\n".join(f"  why: {reason}" for reason in case.expected["why"])
        pytest.fail(
            f"{case.id} (replay seed {seed}):\n{corpus.diff(want, got, label=case.id)}\n{reasons}",
            pytrace=False,
        )


@pytest.mark.slow
def test_no_node_or_edge_outside_the_cases(replayed: tuple[corpus.Answers, int]) -> None:
    """A phantom named by no case's tag (`unknown`, a bare host) is caught here."""
    answers, seed = replayed
    assert corpus.unclaimed(CASES, answers) == {"nodes": [], "edges": []}, f"seed {seed}"


@pytest.mark.slow
def test_the_lists_agree_with_the_graph(replayed: tuple[corpus.Answers, int]) -> None:
    """/services lists the graph's service nodes with the same signals, and /mtls the graph's
    edges with the same mTLS states."""
    answers, seed = replayed
    services = {node["name"]: _signals(node) for node in answers.services["services"]}
    in_graph = {n["id"]: _signals(n) for n in answers.graph["nodes"] if n["type"] == "service"}
    assert services == in_graph, f"seed {seed}"
    by_edge = {corpus.edge_key(edge): edge["mtls"] for edge in answers.mtls["edges"]}
    assert by_edge == {corpus.edge_key(e): e["mtls"] for e in answers.graph["edges"]}


@pytest.mark.slow
def test_mesh_wide_mtls_is_the_sum_of_the_cases(replayed: tuple[corpus.Answers, int]) -> None:
    """Every request of every case counts once mesh-wide (a phantom edge adds requests)."""
    answers, seed = replayed
    assert corpus.mtls_counts(answers.mtls) == corpus.mesh_mtls(CASES), f"seed {seed}"


def _signals(node: corpus.Json) -> tuple[int, int, dict[str, int]]:
    return node["requests"], node["errors"], corpus.mtls_counts(node["mtls"])


# --- the corpus itself (no server) ---------------------------------------------------------------


def test_every_case_names_its_sources_and_keeps_to_its_names() -> None:
    """Each case cites the upstream files and versions it copies, holds export requests with
    spans, and uses names of its own: every node it expects holds its tag, and no name of one
    case holds another case's tag (so the cases share one meshlens without touching)."""
    assert len(CASES) >= 12
    tags = {case.tag for case in CASES}
    assert len(tags) == len(CASES)
    for case in CASES:
        assert case.document["source"], case.id
        for source in case.document["source"]:
            assert all(source[key] for key in ("project", "version", "files")), case.id
        assert all(list(corpus.spans(body)) for body in case.bodies()), case.id
        names = set(case.expected["nodes"]) | {
            end for edge in case.expected["edges"] for end in (edge["source"], edge["target"])
        }
        names.discard(corpus.USER)
        assert all(case.tag in name for name in names), case.id
        others = tags - {case.tag}
        assert not [name for name in names if any(tag in name for tag in others)], case.id


def test_moving_a_case_keeps_the_offsets_between_its_spans() -> None:
    case = CASES[0]
    before = [int(s["startTimeUnixNano"]) for b in case.bodies() for s in corpus.spans(b)]
    moved = case.moved_bodies(2_000_000_000_000_000_000)
    after = [int(s["startTimeUnixNano"]) for b in moved for s in corpus.spans(b)]
    assert max(int(s["endTimeUnixNano"]) for b in moved for s in corpus.spans(b)) == (
        2_000_000_000_000_000_000
    )
    assert {a - b for a, b in zip(after, before, strict=True)} == {after[0] - before[0]}
