"""The cardinality budget's decisions: what is admitted, what folds, and how folded points
keep their identity (pure: no database)."""

from __future__ import annotations

from collector.derive.batch import RollupSignals
from collector.derive.cardinality import OVERFLOW, Caps, DimensionBudget, Kind
from collector.derive.rollup_fold import RollupFold
from collector.rows import SeriesRow
from collector.series_budget import (
    OVERFLOW_ATTRIBUTES,
    SeriesPlan,
    overflow_series,
    points_inserted,
)
from meshlens.signals.histogram import LatencyHistogram


def _budget(**caps: int) -> tuple[DimensionBudget, list[Kind]]:
    warned: list[Kind] = []
    return DimensionBudget(Caps(**caps), warned.append), warned


def test_services_past_the_cap_fold_and_known_ones_stay() -> None:
    budget, warned = _budget(services=2)
    assert [budget.service(name) for name in ("a", "b", "c", "a", "d", "b")] == [
        "a", "b", OVERFLOW, "a", OVERFLOW, "b",
    ]  # fmt: skip
    assert budget.known(Kind.SERVICE) == 2
    assert warned == [Kind.SERVICE]  # once, however many fold


def test_the_reserved_name_is_the_overflow() -> None:
    budget, _ = _budget()
    assert budget.service(OVERFLOW) == OVERFLOW
    assert budget.known(Kind.SERVICE) == 0


def test_operations_are_capped_per_service() -> None:
    budget, _ = _budget(operations_per_service=1)
    assert budget.operation("a", "GET /1") == "GET /1"
    assert budget.operation("a", "GET /2") == OVERFLOW
    assert budget.operation("b", "GET /2") == "GET /2"
    assert budget.operation("a", "GET /1") == "GET /1"
    assert budget.operation(OVERFLOW, "GET /3") == OVERFLOW


def test_an_edge_past_the_cap_keeps_its_target() -> None:
    budget, _ = _budget(edges=1)
    assert budget.edge("a", "b") == ("a", "b")
    assert budget.edge("a", "c") == (OVERFLOW, "c")
    assert budget.edge("a", "b") == ("a", "b")
    assert budget.edge("c", OVERFLOW) == ("c", OVERFLOW)  # to the overflow node: not capped
    assert budget.known(Kind.EDGE) == 1


def test_zero_is_no_cap() -> None:
    budget, warned = _budget()
    for n in range(5000):
        assert budget.service(f"s{n}") == f"s{n}"
    assert warned == []


def test_a_failed_pass_forgets_what_it_admitted() -> None:
    budget, _ = _budget(services=1)
    budget.learn([("service", "known", "")])
    assert budget.service("new") == OVERFLOW  # the cap counts what others admitted
    budget.caps = Caps(services=2)
    assert budget.service("new") == "new"
    budget.rollback()
    assert budget.services == {"known"}
    assert budget.service("other") == "other"
    admitted, _ = budget.commit()
    assert admitted == [("service", "other", "")]


def _signals(requests: int) -> RollupSignals:
    return RollupSignals(requests, 0, LatencyHistogram(), [requests, 0, 0, 0])


def test_the_fold_counts_every_request_under_the_overflow() -> None:
    budget, _ = _budget(services=2, operations_per_service=1, edges=1)
    fold = RollupFold(budget=budget)
    for service, operation, requests in (("a", "op1", 3), ("a", "op2", 4), ("b", "", 5)):
        fold.add("service", 0, (service, "", "", ""), _signals(requests), "traces")
        if operation:
            fold.add("service", 0, (service, operation, "", ""), _signals(requests), "traces")
    fold.add("service", 0, ("c", "op", "v9", ""), _signals(6), "traces")
    fold.add("service", 0, ("c", "", "", ""), _signals(6), "traces")
    fold.add("edge", 0, ("a", "service", "b", "service"), _signals(1), "traces")
    fold.add("edge", 0, ("b", "service", "a", "service"), _signals(2), "traces")
    fold.add("edge", 0, ("a", "service", "db", "database"), _signals(7), "traces")
    minute = {
        k[3:6]: s.requests for k, s in fold.signals.items() if k[0] == "service" and k[1] == 60
    }
    assert minute == {
        ("a", "", ""): 7,
        ("a", "op1", ""): 3,
        ("a", OVERFLOW, ""): 4,
        ("b", "", ""): 5,
        (OVERFLOW, OVERFLOW, OVERFLOW): 6,
        (OVERFLOW, "", ""): 6,
    }
    edges = {k[3:7]: s.requests for k, s in fold.signals.items() if k[0] == "edge" and k[1] == 60}
    assert edges == {
        ("a", "service", "b", "service"): 1,
        (OVERFLOW, "service", "a", "service"): 2,
        ("a", "service", OVERFLOW, "service"): 7,
    }
    assert budget.folded == {Kind.OPERATION: 4, Kind.SERVICE: 6, Kind.EDGE: 9}


def _series(series_id: int, name: str = "queue.depth", **changes: object) -> SeriesRow:
    fields: dict[str, object] = {
        "id": series_id,
        "name": name,
        "description": "",
        "unit": "1",
        "type": "gauge",
        "temporality": 0,
        "is_monotonic": None,
        "resource_id": 7,
        "service": "shop",
        "scope_name": "",
        "attributes": f'{{"queue": "q{series_id}"}}',
    }
    fields.update(changes)
    return SeriesRow(**fields)  # type: ignore[arg-type]


def test_series_of_one_metric_share_its_overflow_series() -> None:
    first, second = overflow_series(_series(1)), overflow_series(_series(2, resource_id=9))
    assert first == second
    assert (first.service, first.resource_id, first.attributes) == (
        OVERFLOW,
        0,
        OVERFLOW_ATTRIBUTES,
    )
    assert overflow_series(_series(3, name="other")).id != first.id
    assert overflow_series(_series(3, type="sum", temporality=2)).id != first.id
    catch_all = overflow_series(_series(1), named=False)
    assert catch_all.name == OVERFLOW
    assert catch_all.id != first.id


def _point(series_id: int, time: int) -> tuple[object, ...]:
    return (series_id, 0, time, 1.0, *([None] * 14), 0)


def test_folded_points_keep_their_own_series_as_overflow_key() -> None:
    overflow = overflow_series(_series(2))
    plan = SeriesPlan(folded={2: overflow, 3: overflow})
    points = [_point(1, 10), _point(2, 10), _point(3, 10)]
    kept, folded = plan.split(points)  # type: ignore[arg-type]
    assert kept == [points[0]]
    assert [(row[0], row[2], row[-1]) for row in folded] == [
        (overflow.id, 10, 2),
        (overflow.id, 10, 3),
    ]  # two series at one time: two points, told apart by the key
    assert points_inserted(kept, None, folded, None) is None
    only_one = {(overflow.id, 10, 3)}  # the other was a resend
    assert points_inserted(kept, None, folded, only_one) == {(1, 10), (3, 10)}
