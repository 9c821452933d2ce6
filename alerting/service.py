"""Alerting in `meshlens serve`: APScheduler runs an evaluation round every
`MESHLENS_EVAL_INTERVAL` and the delivery loop every second.

With several meshlens processes on one database, one of them evaluates: the one holding a
session-level PostgreSQL advisory lock, taken on a connection kept open for the purpose. When
that process dies its connection closes, the lock is free, and the next round of another
process takes it. Every process delivers (the outbox is shared with SKIP LOCKED).

Rules come from `MESHLENS_RULES_FILE` (re-read when it changes; an invalid change is logged
and the last valid rules stay) and from the API (the `alert_rules` table, read each round).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerting import evaluation
from alerting.model import Receiver, Rule
from alerting.notify import outbox, trial
from alerting.notify.delivery import Attempt, make_client
from alerting.rules import (
    RulesFile,
    RulesFileError,
    RulesFileWatcher,
    receiver_from_mapping,
    rule_from_mapping,
)
from alerting.store import definitions, leader
from meshlens.allowlist import Allowlist

log = logging.getLogger("meshlens.alerting")
for _noisy in ("httpx", "httpcore", "apscheduler"):
    # httpx logs every request's URL at INFO (webhook URLs are secrets); APScheduler logs every
    # run of every job at INFO
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    rules_file: Path | None
    eval_interval: float
    allowlist: Allowlist
    external_url: str
    delivery_interval: float = 1.0


@dataclass
class AlertingStatus:
    """What the pages and /readyz may show about alerting."""

    leader: bool = False
    last_round_at: dt.datetime | None = None
    last_round_seconds: float | None = None
    last_round: evaluation.RoundResult | None = None
    file_error: str | None = None
    rounds: int = 0
    errors: list[str] = field(default_factory=list)


class AlertingMetrics:
    """Alerting's counters on `/metrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rounds = Counter(
            "meshlens_alert_rounds", "Evaluation rounds run by this process", registry=registry
        )
        self.round_seconds = Histogram(
            "meshlens_alert_round_seconds",
            "Duration of an evaluation round",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )
        self.transitions = Counter(
            "meshlens_alert_transitions",
            "Alert state changes, by the state entered",
            ["state"],
            registry=registry,
        )
        self.notifications = Counter(
            "meshlens_alert_notifications", "Notifications put in the outbox", registry=registry
        )
        self.deliveries = Counter(
            "meshlens_alert_deliveries",
            "Delivery attempts, by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=registry,
        )

    def observe_round(self, result: evaluation.RoundResult, seconds: float) -> None:
        self.rounds.inc()
        self.round_seconds.observe(seconds)
        for state, count in result.transitions.items():
            self.transitions.labels(state).inc(count)
        self.notifications.inc(result.notifications)


class AlertingService:
    """Evaluates rules and delivers notifications until stopped."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: AlertingConfig,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = AlertingMetrics(registry)
        self.engine = engine
        self.config = config
        self.clock = clock
        self.status = AlertingStatus()
        self._watcher = RulesFileWatcher(config.rules_file) if config.rules_file else None
        self._file = RulesFile()
        self._lock_conn: AsyncConnection | None = None
        self._client = make_client(config.allowlist)
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._round_lock = asyncio.Lock()

    async def start(self) -> None:
        self._poll_file()
        now = dt.datetime.now(dt.UTC)
        job = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self._scheduler.add_job(
            self.run_round, "interval", seconds=self.config.eval_interval, next_run_time=now, **job
        )
        self._scheduler.add_job(
            self.deliver, "interval", seconds=self.config.delivery_interval, **job
        )
        self._scheduler.start()

    async def stop(self) -> None:
        self._scheduler.shutdown(wait=False)
        await self._client.aclose()
        if self._lock_conn is not None:
            await self._lock_conn.close()
            self._lock_conn = None

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    @property
    def client(self) -> httpx.AsyncClient:
        """The SSRF-guarded client notifications go out with."""
        return self._client

    async def send_test(self, receiver: Receiver) -> Attempt:
        """One attempt to send `receiver` a test notification (the API's test send)."""
        return await trial.send_test(
            self._client,
            receiver,
            external_url=self.config.external_url,
            allowlist=self.config.allowlist,
            now=self.now(),
        )

    # --- rules and receivers ------------------------------------------------------------------

    def _poll_file(self) -> None:
        if self._watcher is None:
            return
        try:
            found = self._watcher.poll()
        except (RulesFileError, OSError) as exc:
            self.status.file_error = str(exc)
            log.error("rules file not (re)loaded, keeping the last valid rules: %s", exc)
            return
        if found is not None:
            self._file = found
            self.status.file_error = None
            log.info("rules file: %d rules, %d receivers", len(found.rules), len(found.receivers))

    @property
    def file_rules(self) -> tuple[Rule, ...]:
        return self._file.rules

    @property
    def file_receivers(self) -> tuple[Receiver, ...]:
        return self._file.receivers

    async def rules(self, conn: AsyncConnection) -> list[Rule]:
        """File rules, then API rules (a name in the file wins)."""
        found = {rule.name: rule for rule in self._file.rules}
        for name, definition in await definitions.rule_definitions(conn):
            if name in found:
                continue
            try:
                found[name] = rule_from_mapping(definition)
            except RulesFileError as exc:  # validated when made; a later change may not fit
                log.error("rule %r from the API skipped: %s", name, exc)
        return list(found.values())

    async def receivers(self, conn: AsyncConnection) -> dict[str, Receiver]:
        found = {receiver.name: receiver for receiver in self._file.receivers}
        for data in await definitions.receiver_definitions(conn):
            name = data["name"]
            if name not in found:
                try:
                    found[name] = receiver_from_mapping(data)
                except RulesFileError as exc:  # validated when made; kept out if it no longer is
                    log.error("receiver %r from the API skipped: %s", name, exc)
        return found

    # --- jobs ---------------------------------------------------------------------------------

    async def run_round(self) -> evaluation.RoundResult | None:
        """One evaluation round if this process holds the evaluator lock; None if not."""
        async with self._round_lock:
            self._poll_file()
            try:
                if not await self._lead():
                    return None
                started = time.perf_counter()
                now = self.now()
                async with self.engine.begin() as conn:
                    await leader.round_settings(conn)
                    rules = await self.rules(conn)
                    result = await evaluation.evaluate(conn, rules, now, self.config.external_url)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("alert evaluation failed (%s); next round retries", exc)
                await self._drop_lock()
                return None
            self.status.last_round_at = now
            self.status.last_round_seconds = time.perf_counter() - started
            self.metrics.observe_round(result, self.status.last_round_seconds)
            self.status.last_round = result
            self.status.rounds += 1
            return result

    async def deliver(self) -> int:
        """Attempt the notifications due now (and notice a changed rules file: every process
        answers the API, not only the one evaluating)."""
        self._poll_file()
        try:
            async with self.engine.connect() as conn:
                receivers = await self.receivers(conn)
            context = outbox.DeliveryContext(self._client, self.config.allowlist)
            outcomes = await outbox.deliver_due(self.engine, receivers, context, self.now())
        except (SQLAlchemyError, OSError) as exc:
            log.warning("notification delivery failed (%s); retrying", exc)
            return 0
        for outcome in outcomes:
            self.metrics.deliveries.labels(outcome).inc()
        return len(outcomes)

    async def _lead(self) -> bool:
        if self.status.leader and self._lock_conn is not None:
            try:
                await leader.ping(self._lock_conn)
                return True
            except DBAPIError:
                await self._drop_lock()
        if self._lock_conn is None:
            self._lock_conn = await self.engine.connect()
        self.status.leader = await leader.try_lead(self._lock_conn)
        await self._lock_conn.commit()
        return self.status.leader

    async def _drop_lock(self) -> None:
        self.status.leader = False
        if self._lock_conn is not None:
            with contextlib.suppress(SQLAlchemyError, OSError):
                await self._lock_conn.close()
            self._lock_conn = None
