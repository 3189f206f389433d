"""Firing due schedules: one transaction per batch around the pure decide().

Exactly once per fire time, however many replicas run, comes from keys, not from a leader: the
run id is derived from (schedule id, nominal fire time), and the fire is appended with the
schedule stream's expected version in the same transaction as its run (store.py). The row locks
only keep replicas from doing the same work twice. A replica that stalls inside a transaction
(GC pause, SIGSTOP) is cut off by Postgres after lease_seconds (idle_in_transaction_session_timeout),
which frees its rows for the others; when it wakes, its transaction is gone and it lost nothing
but time.
"""
import asyncio
import logging
import time

import psycopg
from prometheus_client import Counter, Histogram

from wf_contracts import events as ev
from wf_platform import metrics
from wf_platform.eventlog import ConcurrencyConflict

from . import store
from .clock import Clock
from .decide import Decision, decide

log = logging.getLogger(__name__)
LATENESS = Histogram("wf_schedule_fire_lateness_seconds", "Run start (commit) minus nominal fire time",
                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
FIRES = Counter("wf_schedule_fires_total", "Schedule fire outcomes", ["outcome"])


class Firer:
    def __init__(self, pool, clock: Clock, batch: int = 50, lease_seconds: float = 5.0,
                 sweep_seconds: float = 10.0) -> None:
        self.pool, self.clock = pool, clock
        self.batch = batch
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.sweep_seconds = sweep_seconds  # how often to look for schedules of deleted workflows
        self._next_sweep = 0.0

    async def tick(self) -> int:
        """Fire until nothing is due; returns how many schedules were handled."""
        total = 0
        while True:
            n = await self.fire_once()
            total += n
            if n < self.batch:
                return total

    async def fire_once(self, only: list[str] | None = None) -> int:
        """One batch in one transaction; returns how many schedules it locked."""
        now = self.clock.now()
        try:
            decisions = await self._transaction(now, only)
        except ConcurrencyConflict:
            FIRES.labels("lost_race").inc()
            if only is None:
                # cannot happen while every writer locks the schedule row first; if it does, one
                # bad schedule must not hold back the batch: retry each on its own
                for sid in await self._due_ids(now):
                    await self._fire_alone(sid)
            return 0
        self._observe(decisions)
        return len(decisions)

    async def _fire_alone(self, sid: str) -> None:
        try:
            await self.fire_once([sid])
        except Exception:  # noqa: BLE001 - one bad schedule must not stop the others
            log.exception("firing schedule %s failed", sid)

    async def _transaction(self, now, only: list[str] | None) -> list[Decision]:
        async with self.pool.connection() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {self.lease_ms}")
                    rows = await self._lock(conn, now, only)
                    if not rows:
                        return []
                    wfs = await store.workflows(conn, rows)
                    watch = [r.id for r in rows if r.overlap != "allow" or r.buffered_fire_at is not None]
                    busy = await store.running(conn, watch)
                    decisions = _decide_each(rows, wfs, busy, now)
                    existing = await store.existing_runs(conn, [x.run_id for d in decisions for x in d.runs])
                    async with conn.pipeline():
                        appended = await store.write(conn, now, decisions, existing)
            except psycopg.Error as exc:
                if (c := store.conflict(exc)) is not None:
                    raise c from exc
                raise
        metrics.EVENTS_APPENDED.labels("scheduler").inc(appended)
        return decisions

    async def _lock(self, conn, now, only: list[str] | None):
        if only is not None:
            return await store.lock_ids(conn, only)
        rows = await store.lock_due(conn, now, self.batch)
        if len(rows) < self.batch:
            rows += await store.lock_releasable(conn, self.batch - len(rows), [r.id for r in rows])
        if len(rows) < self.batch and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.sweep_seconds
            rows += await store.lock_orphans(conn, self.batch - len(rows), [r.id for r in rows])
        return rows

    async def _due_ids(self, now) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT id FROM schedules WHERE enabled AND NOT deleted AND next_run_at <= %s"
                                     " ORDER BY next_run_at LIMIT %s", (now, self.batch))
            return [r[0] for r in await cur.fetchall()]

    def _observe(self, decisions: list[Decision]) -> None:
        done = self.clock.now()
        for d in decisions:
            for t in d.started:
                LATENESS.observe(max(0.0, (done - t).total_seconds()))
            for e in d.events:
                match e:
                    case ev.ScheduleFired():
                        FIRES.labels("fired" if e.run_id else "buffered" if e.buffered else "skipped").inc()
                        FIRES.labels("missed").inc(len(e.missed))
                    case ev.ScheduleMissed():
                        FIRES.labels("missed").inc(len(e.missed))
                    case ev.ScheduleBufferReleased():
                        FIRES.labels("released" if e.run_id else "skipped").inc()
                    case ev.ScheduleDeleted():
                        FIRES.labels("retired").inc()


def _decide_each(rows, wfs, busy, now) -> list[Decision]:
    out = []
    for r in rows:
        try:
            out.append(decide(r, wfs.get(r.id), r.id in busy, now))
        except Exception:  # noqa: BLE001 - a bug for one schedule must not hold back the batch
            log.exception("deciding schedule %s failed; it is left for the next tick", r.id)
    return out


async def run_loop(firer: Firer, stop: asyncio.Event, interval: float = 0.2, workers: int = 1) -> None:
    """`workers` batches in flight at once; SKIP LOCKED keeps them on different schedules."""
    async def worker() -> None:
        while not stop.is_set():
            try:
                n = await firer.fire_once()
            except Exception as exc:  # noqa: BLE001 - database away, session cut off: keep trying
                log.warning("fire batch failed: %r", exc)
                n = 0
            if n < firer.batch:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except asyncio.TimeoutError:
                    pass

    await asyncio.gather(*(worker() for _ in range(max(1, workers))))
