"""Durable timers: every replica polls run_schedule for runs whose next timer is due.

A due run is claimed with a short soft lease (one UPDATE ... SKIP LOCKED, so replicas split the
work instead of all ticking the same runs) and ticked. The lease is only an optimization: if a
replica dies holding it, another one ticks the run once it lapses, and two ticks of one run are
harmless because the run stream's expected version lets only one decision be appended. The tick's
append rewrites the row (new due_at, lease cleared) in the same transaction.

Times are the orchestrator's clock, the same `now` decide() receives, so "due" means the same
thing to the poller and to the rules.
"""
import asyncio
import logging
from datetime import datetime, timedelta
from typing import Callable

from prometheus_client import Counter

from .executor import RunExecutor
from .messages import Tick

log = logging.getLogger(__name__)
TICKS = Counter("wf_timer_ticks_total", "Runs ticked because one of their durable timers was due")

CLAIM_SQL = (
    "UPDATE run_schedule SET claimed_until = %(until)s WHERE run_id IN ("
    " SELECT run_id FROM run_schedule WHERE due_at <= %(now)s"
    " AND (claimed_until IS NULL OR claimed_until < %(now)s)"
    " ORDER BY due_at LIMIT %(n)s FOR UPDATE SKIP LOCKED) RETURNING run_id"
)


class TimerPoller:
    def __init__(self, pool, executor: RunExecutor, clock: Callable[[], datetime], interval: float = 0.1,
                 lease: float = 2.0, batch: int = 200) -> None:
        self.pool, self.executor, self.clock = pool, executor, clock
        self.interval, self.lease, self.batch = interval, lease, batch
        self.ticked = 0

    async def claim(self) -> list[str]:
        now = self.clock()
        async with self.pool.connection() as conn:
            cur = await conn.execute(CLAIM_SQL, {"now": now, "until": now + timedelta(seconds=self.lease),
                                                 "n": self.batch})
            return [r[0] for r in await cur.fetchall()]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            n = 0
            try:
                for run_id in await self.claim():
                    if self.executor.submit(run_id, Tick(run_id)):
                        n += 1
                self.ticked += n
                TICKS.inc(n)
            except Exception as exc:  # noqa: BLE001 - database away: keep polling
                log.warning("timer poll failed: %r", exc)
            if n < self.batch:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                except asyncio.TimeoutError:
                    pass
