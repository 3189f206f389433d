"""Firing due schedules: the I/O around plan().

Exactly once per fire time, however many replicas run, comes from two keys, not from a leader:
the run id is derived from (schedule id, nominal fire time), so a second replica's attempt to
create the same run hits the run stream's expected version 0 and conflicts; and the
schedule.fired event is appended with the schedule stream's expected version, so only one
replica advances next_run_at. The run is created first: a crash between the two appends leaves
the fire to be retried, and the retry finds the run already there.
"""
import asyncio
import hashlib
import logging
import random
from datetime import datetime
from typing import Callable

from prometheus_client import Counter, Histogram

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent, Recorded
from wf_contracts.ids import new_id
from wf_contracts.run_state import fold
from wf_contracts.timefmt import iso_z
from wf_platform.eventlog import ConcurrencyConflict, EventLog
from wf_platform.projections import apply_event, upsert_run

from .plan import plan

log = logging.getLogger(__name__)
ACTOR = "scheduler"
LATENESS = Histogram("wf_schedule_fire_lateness_seconds", "Actual fire minus nominal fire time",
                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
FIRES = Counter("wf_schedule_fires_total", "Schedule fires", ["outcome"])


def run_id_for(schedule_id: str, fire_time: datetime) -> str:
    digest = hashlib.sha256(f"{schedule_id}|{iso_z(fire_time)}".encode()).hexdigest()
    return f"run_{digest[:24]}"


async def _project(conn, pending: list[Recorded]) -> None:
    for rec in pending:
        await apply_event(conn, rec)


class Firer:
    def __init__(self, log_: EventLog, pool, clock: Callable[[], datetime], batch: int = 1000,
                 concurrency: int = 16) -> None:
        self.log, self.pool, self.clock = log_, pool, clock
        self.batch = batch
        self.sem = asyncio.Semaphore(concurrency)

    async def due(self, now: datetime) -> list[tuple]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT s.id, s.tenant, s.workflow_id, s.cron_expression, s.timezone, s.input_data, s.catchup,"
                " s.next_run_at, s.stream_version FROM schedules s"
                " WHERE s.enabled AND NOT s.deleted AND s.next_run_at <= %s ORDER BY s.next_run_at LIMIT %s",
                (now, self.batch),
            )
            rows = await cur.fetchall()
        random.shuffle(rows)  # replicas start at different ends, so they collide less
        return rows

    async def tick(self) -> int:
        now = self.clock()
        rows = await self.due(now)
        results = await asyncio.gather(*(self._fire_guarded(r, now) for r in rows))
        return sum(results)

    async def _fire_guarded(self, row, now) -> int:
        async with self.sem:
            try:
                return await self.fire(row, now)
            except ConcurrencyConflict:
                FIRES.labels("lost_race").inc()
                return 0
            except Exception:  # noqa: BLE001 - one bad schedule must not stop the others
                log.exception("firing schedule %s failed", row[0])
                return 0

    async def fire(self, row, now: datetime) -> int:
        sched_id, tenant, wf_id, cron, tz, input_data, catchup, next_run_at, version = row
        p = plan(cron, tz, next_run_at, now, catchup)
        if p is None:
            return 0
        async with self.pool.connection() as conn:
            wf = await (await conn.execute(
                "SELECT status, version, definition, deleted FROM workflows WHERE id = %s AND tenant = %s",
                (wf_id, tenant),
            )).fetchone()
        run_id, skipped = None, None
        if wf is None or wf[3]:
            skipped = "workflow deleted"
        elif wf[0] != "active":
            skipped = f"workflow is {wf[0]}"
        else:
            run_id = run_id_for(sched_id, p.fire_time)
            created = ev.RunCreated(
                run_id=run_id, workflow_id=wf_id, workflow_version=wf[1], definition=wf[2], input_data=input_data,
                trigger="schedule", metadata={"schedule_id": sched_id, "fire_time": iso_z(p.fire_time)},
            )

            async def project_run(conn, pending: list[Recorded]) -> None:
                await upsert_run(conn, fold(pending))

            try:
                await self.log.append(run_id, tenant, 0, [NewEvent(id=new_id("evt"), event=created, actor=ACTOR,
                                                                    correlation_id=sched_id)], now, project_run)
            except ConcurrencyConflict:
                pass  # this fire's run exists already (another replica, or our own retry)
        fired = ev.ScheduleFired(schedule_id=sched_id, fire_time=iso_z(p.fire_time), run_id=run_id,
                                 next_run_at=iso_z(p.next_run_at), skipped_reason=skipped,
                                 missed=[iso_z(t) for t in p.missed])
        await self.log.append(sched_id, tenant, version,
                              [NewEvent(id=new_id("evt"), event=fired, actor=ACTOR, correlation_id=sched_id)],
                              now, _project)
        LATENESS.observe(max(0.0, (self.clock() - p.fire_time).total_seconds()))
        FIRES.labels("skipped" if skipped else "fired").inc()
        if p.missed:
            FIRES.labels("missed").inc(len(p.missed))
        return 1


async def run_loop(firer: Firer, stop: asyncio.Event, interval: float = 0.2) -> None:
    while not stop.is_set():
        try:
            n = await firer.tick()
        except Exception as exc:  # noqa: BLE001 - database away: keep trying
            log.warning("scheduler tick failed: %r", exc)
            n = 0
        if n == 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
