"""Alerting benchmark: how long one evaluation round takes with many rules over many services.

    python bench/alerting.py [--services 200] [--rules 500] [--rounds 20]

1. Creates a throwaway database (dropped at the end, always), migrates it, and COPYs
   rollups into it (`bench.alerting_data`): minute, 10-minute and hour rows of every service
   (totals, operations, versions of a fifth of them), of ~3.5 edges per service (services,
   databases, external APIs, `user`) and of saturation, from 3-4 hours before now until
   after the last round, with a few incidents that start and end during the rounds.
2. Loads `--rules` rules, written as an operator would (fleet-wide, per team by regex, per
   service, edge and version; windows 5m to 1h; `for` 0 or 2m; min_requests), with two
   webhook receivers, through `load_rules_text` as a rules file would be.
3. Runs `--rounds` rounds of `alerting.evaluation.evaluate`, each on its own transaction
   as meshlens serve runs them (`SET LOCAL jit = off` first), at `now` 30 s apart starting
   now, timing each, with the time spent reading (queries), computing values, in the alerts'
   states and in notifications measured on the side. Then one more round, profiled and
   rolled back.
4. Prints the figures and writes bench/results/alerting-<timestamp>.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import gc
import json
import os
import pstats
import random
import signal
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from unittest import mock

import yaml

if not __package__:  # run as `python bench/alerting.py`: import `bench` from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerting import evaluation
from alerting.model import Rule
from alerting.readings import Instance, Readings
from alerting.rules import load_rules_text
from alerting.store import states as state_store
from bench.alerting_data import (
    RECEIVERS,
    Figures,
    Incident,
    load_rollups,
    make_mesh,
    make_rules,
)
from bench.api_report import environment
from bench.database import redacted
from harness.postgres import MACHINE_POSTGRES, postgres_answers, throwaway_database
from meshlens.database import Database
from meshlens.migrations import upgrade_to_head
from meshlens.read import queries
from meshlens.read.results import Graph, Signals

TARGET_SECONDS = 2.0
STEP_SECONDS = 30
EXTERNAL_URL = "http://meshlens.example"
SEED = 20261126
RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time alert evaluation rounds (alerting.evaluation.evaluate) with "
        "--rules rules over --services services' rollups.",
    )
    add = parser.add_argument
    add("--services", type=_between(50, 1000), default=200, help="services (%(default)s)")
    add("--rules", type=_between(60, 100_000), default=500, help="rules (%(default)s)")
    add("--rounds", type=_between(2, 1000), default=20, help="timed rounds (%(default)s)")
    add("--seed", type=int, default=SEED, help="random seed of the mesh and rules")
    add("--database-url", default=MACHINE_POSTGRES, help="server for the throwaway database")
    return parser.parse_args(argv)


def _between(low: int, high: int) -> Any:
    """`--services` up to 1000: names are `svc-000` to `svc-999`."""

    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return number

    return parse


# --- measuring the parts of a round --------------------------------------------------------------


@dataclass
class Phases:
    """Seconds spent in the parts of the current round (wall clock, nested parts subtracted
    when reported)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class TimedReadings(Readings):
    """`Readings` that records the time of its queries (graph, versions) and of `instances`
    (which includes them) in `phases`."""

    phases: ClassVar[Phases] = Phases()

    async def graph(self, seconds: int) -> Graph:
        cached = seconds in self._graphs
        started = time.perf_counter()
        try:
            return await super().graph(seconds)
        finally:
            if not cached:
                self.phases.add("graph", time.perf_counter() - started)

    async def versions(self, seconds: int) -> list[tuple[str, str, Signals]]:
        cached = seconds in self._versions
        started = time.perf_counter()
        try:
            return await super().versions(seconds)
        finally:
            if not cached:
                self.phases.add("versions", time.perf_counter() - started)

    async def instances(self, rule: Rule) -> list[Instance]:
        started = time.perf_counter()
        try:
            return await super().instances(rule)
        finally:
            self.phases.add("instances", time.perf_counter() - started)


def _timed(name: str, function: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    async def timed(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            TimedReadings.phases.add(name, time.perf_counter() - started)

    return timed


@contextlib.contextmanager
def instrumented() -> Iterator[Phases]:
    """`evaluate` with its readings, state reads and writes, and notifications timed. Only
    this process's module attributes change; api/ is as it is."""
    patches: list[contextlib.AbstractContextManager[Any]] = [
        mock.patch.object(evaluation, "Readings", TimedReadings),
        mock.patch.object(evaluation, "dispatch", _timed("notify", evaluation.dispatch)),
        mock.patch.object(queries, "fetch", _timed("sql", queries.fetch)),
    ]
    for name in ("load_states", "save_states", "add_history"):
        patches.append(
            mock.patch.object(state_store, name, _timed("states", getattr(state_store, name)))
        )
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield TimedReadings.phases


def breakdown(phases: Phases, total: float, commit: float) -> dict[str, float]:
    """Milliseconds of a round by part; `observe_step` is what is left of `evaluate`: alert
    labels, fingerprints, annotations and steps."""
    seconds = phases.seconds
    reads = seconds["graph"] + seconds["versions"]
    parts = {
        "sql": seconds["sql"],
        "rows": reads - seconds["sql"],
        "values": seconds["instances"] - reads,
        "states": seconds["states"],
        "notify": seconds["notify"],
        "commit": commit,
    }
    parts["observe_step"] = total - sum(parts.values())
    return {name: round(value * 1000, 1) for name, value in parts.items()}


# --- the rounds --------------------------------------------------------------------------------


@dataclass
class RoundFigures:
    number: int
    now: float
    milliseconds: float
    instances: int
    transitions: dict[str, int]
    notifications: int
    parts_ms: dict[str, float]
    statements: int


Outcome = tuple[list[RoundFigures], dict[str, Any], dict[str, Any]]
"""Each round's figures, the alerts and notifications after them, and the profile."""


async def run_rounds(engine: AsyncEngine, rules: Sequence[Rule], t0: float, rounds: int) -> Outcome:
    figures = []
    with instrumented() as phases:
        for number in range(rounds):
            now = t0 + number * STEP_SECONDS
            moment = dt.datetime.fromtimestamp(now, dt.UTC)
            phases.reset()
            started = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL jit = off"))
                result = await evaluation.evaluate(conn, rules, moment, EXTERNAL_URL)
                evaluated = time.perf_counter()
            finished = time.perf_counter()
            total = finished - started
            figures.append(
                RoundFigures(
                    number=number + 1,
                    now=now,
                    milliseconds=total * 1000,
                    instances=result.instances,
                    transitions=dict(result.transitions),
                    notifications=result.notifications,
                    parts_ms=breakdown(phases, total, finished - evaluated),
                    statements=phases.calls["sql"],
                )
            )
            print(
                f"  round {number + 1:>2}: {total * 1000:7.1f} ms, {result.instances:,} "
                f"instances, transitions {dict(result.transitions) or '-'}, "
                f"{result.notifications} notifications",
                flush=True,
            )
    async with engine.connect() as conn:
        after = await _after(conn)
    profile = await _profiled_round(engine, rules, t0 + rounds * STEP_SECONDS)
    return figures, after, profile


async def _after(conn: AsyncConnection) -> dict[str, Any]:
    states: dict[str, int] = dict(
        (await conn.execute(text("SELECT state, count(*) FROM alert_states GROUP BY 1"))).all()
    )
    history: dict[str, int] = dict(
        (await conn.execute(text("SELECT state, count(*) FROM alert_history GROUP BY 1"))).all()
    )
    outbox = (await conn.execute(text("SELECT count(*) FROM notification_outbox"))).scalar()
    groups = (await conn.execute(text("SELECT count(*) FROM alert_groups"))).scalar()
    firing_rules = (
        await conn.execute(
            text("SELECT count(DISTINCT rule) FROM alert_states WHERE state = 'firing'")
        )
    ).scalar()
    by_rule = await conn.execute(
        text(
            "SELECT rule, count(*) FROM alert_states WHERE state = 'firing'"
            " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 8"
        )
    )
    return {
        "alerts": {"firing": states.get("firing", 0), "pending": states.get("pending", 0)},
        "most_firing_rules": dict(by_rule.all()),
        "rules_firing": firing_rules or 0,
        "history": history,
        "notifications_enqueued": outbox or 0,
        "groups": groups or 0,
    }


async def _profiled_round(engine: AsyncEngine, rules: Sequence[Rule], now: float) -> dict[str, Any]:
    """One more round under cProfile, rolled back: its top entries by cumulative time (in
    meshlens's code) and by own time (any code)."""
    profiler = cProfile.Profile()
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("SET LOCAL jit = off"))
        started = time.perf_counter()
        profiler.enable()
        await evaluation.evaluate(conn, rules, dt.datetime.fromtimestamp(now, dt.UTC), EXTERNAL_URL)
        profiler.disable()
        seconds = time.perf_counter() - started
        await transaction.rollback()
    entries = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in entries.items():
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({function})",
                "calls": calls,
                "own_ms": round(own * 1000, 1),
                "cumulative_ms": round(cumulative * 1000, 1),
                "ours": _ours(filename),
            }
        )
    ours = [r for r in rows if r["ours"] and not r["function"].endswith("(evaluate)")]
    return {
        "milliseconds": round(seconds * 1000, 1),
        "cumulative": sorted(ours, key=lambda r: -r["cumulative_ms"])[:10],
        "own": sorted(rows, key=lambda r: -r["own_ms"])[:10],
    }


def _short(filename: str) -> str:
    path = Path(filename)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    for marker in ("site-packages", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1].lstrip("/")
    return filename


def _ours(filename: str) -> bool:
    return filename.startswith(str(REPO / "api")) or filename.startswith(str(REPO / "meshlens"))


# --- report --------------------------------------------------------------------------------------


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(_quantile(values, 0.95), 1),
        "max": round(max(values), 1),
    }


def report(
    args: argparse.Namespace,
    config: dict[str, Any],
    data: Figures,
    figures: list[RoundFigures],
    after: dict[str, Any],
    profile: dict[str, Any],
) -> tuple[list[str], dict[str, Any]]:
    times = [f.milliseconds for f in figures]
    later = times[1:]
    parts = {
        name: round(statistics.median(f.parts_ms[name] for f in figures[1:]), 1)
        for name in figures[0].parts_ms
    }
    rows = data.rows
    worst = max(times)
    met = worst <= TARGET_SECONDS * 1000
    verdict = (
        f"target: one round at most {TARGET_SECONDS * 1000:,.0f} ms with {args.rules} rules over "
        f"{args.services} services: {'MET' if met else 'MISSED'} (slowest round "
        f"{worst:,.0f} ms, median {statistics.median(times):,.0f} ms)"
    )
    transitions: Counter[str] = Counter()
    for f in figures:
        transitions.update(f.transitions)
    lines = [
        f"alerting benchmark: {args.rules} rules over {args.services} services, {args.rounds} "
        f"rounds {STEP_SECONDS} s apart from {config['start']}",
        f"rollups: {data.minutes} minutes ({_hhmm(data.start_unix)}-{_hhmm(data.end_unix)} UTC), "
        f"loaded in {data.seconds:.0f} s",
        "  rows 1m / 10m / 1h: service "
        + " / ".join(f"{n:,}" for n in rows["service_rollups"].values())
        + ", edge "
        + " / ".join(f"{n:,}" for n in rows["edge_rollups"].values())
        + ", saturation "
        + " / ".join(f"{n:,}" for n in rows["saturation_rollups"].values()),
        f"  histogram buckets per row: service {data.buckets_per_row['service_rollups']:.1f}, "
        f"edge {data.buckets_per_row['edge_rollups']:.1f}",
        f"mesh: {args.services} services ({data.versioned_services} with versions), "
        f"{data.edges} edges ({data.service_edges} between services, {data.virtual_edges} to "
        f"databases/external APIs; {data.plaintext_edges} plaintext)",
        f"rules: {args.rules}; by scope {config['rules_by_scope']}; by window "
        f"{config['rules_by_window']}; receivers {len(RECEIVERS)} webhooks (group_wait 0s)",
        f"instances evaluated per round: {statistics.median(f.instances for f in figures):,.0f} "
        f"(SQL statements per round: {figures[0].statements})",
        "",
        "round time, ms                      p50      p95      max",
        f"  first round (inserts the states) {times[0]:8.1f}",
        f"  rounds 2-{len(times):<2}                  "
        + "".join(f"{v:9.1f}" for v in _spread(later).values()),
        "  all rounds                      "
        + "".join(f"{v:9.1f}" for v in _spread(times).values()),
        "  first round parts: "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in figures[0].parts_ms.items()),
        "  rounds 2+ parts (median): "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in parts.items()),
        "    sql: the graph and version statements, executed and fetched (one each per window);"
        " rows: their rows into nodes, edges and signals;",
        "    values: the rules' instances and their values (percentiles: histograms summed);",
        "    observe_step: labels, fingerprints, annotations, steps; states: alert states read"
        " and saved, history; notify: groups and outbox; commit",
        "",
        f"after {len(times)} rounds: {after['alerts']['firing']} alerts firing and "
        f"{after['alerts']['pending']} pending (of {after['rules_firing']} rules), "
        f"{after['notifications_enqueued']} notifications enqueued in {after['groups']} groups",
        f"  transitions over the rounds: {dict(transitions)}",
        f"  most firing alerts: {after['most_firing_rules']}",
        "",
        f"profile of one more round (rolled back, {profile['milliseconds']:,.0f} ms under "
        "cProfile), top 10 by cumulative time in api/ and meshlens/:",
        *(
            f"  {r['cumulative_ms']:8.1f} ms {r['calls']:>8,} calls  {r['function']}"
            for r in profile["cumulative"]
        ),
        "top 10 by own time (any code):",
        *(
            f"  {r['own_ms']:8.1f} ms {r['calls']:>8,} calls  {r['function']}"
            for r in profile["own"]
        ),
        "",
        verdict,
    ]
    document = {
        "config": config,
        "data": data.as_json(),
        "rounds": [
            {
                "round": f.number,
                "now_unix": f.now,
                "milliseconds": round(f.milliseconds, 2),
                "instances": f.instances,
                "transitions": f.transitions,
                "notifications": f.notifications,
                "statements": f.statements,
                "parts_ms": f.parts_ms,
            }
            for f in figures
        ],
        "round_ms": {
            "first": round(times[0], 1),
            "later": _spread(later),
            "all": _spread(times),
            "later_parts_median": parts,
        },
        "after": after,
        "profile": profile,
        "target_ms": TARGET_SECONDS * 1000,
        "met": met,
        "verdict": verdict,
    }
    return lines, document


def _hhmm(unix: int) -> str:
    return time.strftime("%H:%M", time.gmtime(unix))


def write_json(document: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"alerting-{stamp}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return path


# --- main ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on ^C
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted; the database was dropped", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    if not postgres_answers(args.database_url):
        raise SystemExit(f"no PostgreSQL answers at {redacted(args.database_url)}")
    t0 = time.time()
    rng = random.Random(args.seed)
    mesh = make_mesh(args.services, t0, rng)
    rule_text = yaml.safe_dump({"receivers": RECEIVERS, "rules": make_rules(mesh, args.rules, rng)})
    rules_file = load_rules_text(rule_text, "bench-rules.yaml")
    rules = list(rules_file.rules)
    config = {
        "services": args.services,
        "rules": args.rules,
        "rounds": args.rounds,
        "seed": args.seed,
        "step_seconds": STEP_SECONDS,
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "start_unix": t0,
        "rules_by_scope": dict(Counter(rule.scope.value for rule in rules)),
        "rules_by_signal": dict(Counter(rule.signal.value for rule in rules)),
        "rules_by_window": dict(Counter(_duration(rule.window) for rule in rules)),
        "rules_with_matchers": sum(1 for rule in rules if rule.matchers),
        "rules_with_for": sum(1 for rule in rules if rule.for_),
        "incidents": [_incident(incident) for incident in mesh.incidents],
        "load_average": os.getloadavg(),
    }
    end = t0 + (args.rounds + 2) * STEP_SECONDS
    print(
        f"{args.services} services, {len(mesh.edges)} edges, {len(rules)} rules; loading rollups "
        f"until {time.strftime('%H:%M', time.gmtime(end))} UTC",
        flush=True,
    )
    with throwaway_database(args.database_url) as url:
        config["environment"] = environment(url)
        _migrate(url)
        data = load_rollups(url, mesh, t0, end, rng)
        print(f"loaded in {data.seconds:.0f} s; {args.rounds} rounds:", flush=True)
        del mesh
        gc.collect()
        figures, after, profile = asyncio.run(_rounds(url, rules, t0, args.rounds))
    lines, document = report(args, config, data, figures, after, profile)
    print()
    print("\n".join(lines))
    path = write_json(document)
    print(f"\nresults: {path}")
    return 0


def _duration(seconds: int) -> str:
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m"


def _incident(incident: Incident) -> dict[str, Any]:
    return {
        "service": incident.service,
        "start_unix": incident.start,
        "end_unix": incident.end,
        "error_ratio": incident.error_ratio,
        "slowdown": incident.slowdown,
    }


async def _rounds(url: str, rules: Sequence[Rule], t0: float, rounds: int) -> Outcome:
    engine = Database(url).async_engine()
    try:
        return await run_rounds(engine, rules, t0, rounds)
    finally:
        await engine.dispose()


def _migrate(url: str) -> None:
    engine = Database(url).sync_engine()
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
