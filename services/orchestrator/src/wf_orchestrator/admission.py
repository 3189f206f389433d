"""Starting queued runs as slots free (SPEC §5 concurrency), strictly in arrival order.

The rule lives in Postgres (wf_admit, migration 006) and runs inside the append of a run's
run.started: only the head of wf_admissible may start. This loop only decides whom to try: it
takes the runs next in line and kicks them one after another through the normal handler (each
admission must commit before the next run is the head). It runs on every replica, every
`interval`, and at once when this replica started or ended a run (poke), so a run finishing on
any replica, or a replica crashing, never leaves a free slot unused for long.
"""
import asyncio
import logging

from prometheus_client import Gauge

from .executor import RunExecutor
from .messages import Kick

log = logging.getLogger(__name__)

CANDIDATES_SQL = "SELECT run_id FROM wf_admissible(%s)"
# both counts are served by partial indexes (migration 006)
COUNTS_SQL = ("SELECT (SELECT count(*) FROM run_schedule WHERE phase = 'queued'),"
              " (SELECT count(*) FROM run_schedule WHERE phase = 'holding')")
QUEUED = Gauge("wf_runs_queued", "Runs waiting for a concurrency slot (deployment-wide)")
HOLDING = Gauge("wf_runs_holding_slot", "Runs running or paused, i.e. holding a slot (deployment-wide)")


class AdmissionSweeper:
    def __init__(self, pool, executor: RunExecutor, limit: int, interval: float = 0.5) -> None:
        self.pool, self.executor, self.limit, self.interval = pool, executor, limit, interval
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def candidates(self) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(CANDIDATES_SQL, (self.limit,))
            return [r[0] for r in await cur.fetchall()]

    async def admit_in_order(self) -> int:
        """Kick the runs next in line, one at a time, while they start. Returns how many did."""
        started, head = 0, None
        while True:
            runs = await self.candidates()
            if not runs or runs[0] == head:
                return started  # nobody waiting, or the head would not start (another replica's turn)
            head = runs[0]
            for run_id in runs:
                if not await self.executor.handle(run_id, Kick(run_id)):
                    break  # not started (raced by another replica): look at the line again
                started += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.admit_in_order()
                async with self.pool.connection() as conn:
                    queued, holding = await (await conn.execute(COUNTS_SQL)).fetchone()
                QUEUED.set(queued)
                HOLDING.set(holding)
            except Exception as exc:  # noqa: BLE001 - database away: keep trying
                log.warning("admission sweep failed: %r", exc)
            waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in waits:
                    t.cancel()
