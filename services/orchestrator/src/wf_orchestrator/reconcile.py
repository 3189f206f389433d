"""Reconciliation sweep: after the broker lost its store, re-drive from Postgres what was pending.

The log says what each unfinished run is waiting for; NATS only carried the news. When the WF
stream comes back empty (a new creation time: its "epoch"), whatever was in it and not yet
consumed is gone: run.created and cancel/resume requests nobody handled, step.dispatched no
runner took, results no orchestrator read. The sweep re-drives each unfinished run:
- a Kick re-evaluates the run (admission, pending cancel/resume, due timers, ready steps);
- every step the log says is running gets its step.dispatched re-published byte for byte, with
  its event id as Nats-Msg-Id (JetStream drops it if the new stream already has it) and the
  Wf-Reconciled header, so a runner first looks for that dispatch's result on the bus and runs
  the step only if there is none.
A result lost with the store means the step runs again with the same Idempotency-Key (documented
in docs/operations.md). Exactly one orchestrator sweeps per epoch: the one whose compare-and-set
on relay_checkpoint.bus_epoch succeeds. `wfctl reconcile` runs the same sweep on demand.

The sweep waits `grace` seconds first, so results that runners held through the outage (they
retry publishing) land and are consumed before it decides what is still running.
"""
import asyncio
import logging
from dataclasses import dataclass, field

from prometheus_client import Counter

from wf_platform import bus
from wf_platform.relay import BUS_COLUMNS, bus_message

from .executor import RunExecutor
from .messages import Kick

log = logging.getLogger(__name__)

SWEPT_RUNS = Counter("wf_reconciled_runs_total", "Unfinished runs re-driven by a reconciliation sweep")
SWEPT_DISPATCHES = Counter("wf_reconciled_dispatches_total", "step.dispatched re-published by a sweep")
SWEEPS = Counter("wf_reconcile_sweeps_total", "Reconciliation sweeps run (broker store lost, or forced)")

UNFINISHED_SQL = "SELECT run_id FROM run_schedule WHERE phase IN ('queued', 'holding') ORDER BY run_id"
EPOCH_SQL = ("UPDATE relay_checkpoint SET bus_epoch = %s WHERE name = 'nats' AND bus_epoch IS DISTINCT FROM %s"
             " RETURNING 1")


@dataclass
class SweepReport:
    runs: int = 0
    dispatches: int = 0
    failed: list[str] = field(default_factory=list)


async def sweep(pool, js, executor: RunExecutor, concurrency: int = 16) -> SweepReport:
    """Re-drive every unfinished run (see the module docstring). Safe to run at any time."""
    SWEEPS.inc()
    report = SweepReport()
    async with pool.connection() as conn:
        run_ids = [r[0] for r in await (await conn.execute(UNFINISHED_SQL)).fetchall()]
    bound = asyncio.Semaphore(concurrency)

    async def one(run_id: str) -> None:
        async with bound:
            try:
                await executor.handle(run_id, Kick(run_id))
                state = await executor.handler.load(run_id, executor.handler.cache.get(run_id))
                ids = [s.dispatch_id for s in state.steps.values() if s.status == "running" and s.dispatch_id]
                if ids:
                    async with pool.connection() as conn:
                        rows = await (await conn.execute(
                            f"SELECT {BUS_COLUMNS} FROM events WHERE id = ANY(%s) ORDER BY seq", (ids,))).fetchall()
                    for row in rows:
                        subject, body, msg_id = bus_message(row)
                        await js.publish(subject, body, timeout=10,
                                         headers={"Nats-Msg-Id": msg_id, bus.RECONCILED_HEADER: "1"})
                    report.dispatches += len(rows)
                    SWEPT_DISPATCHES.inc(len(rows))
                report.runs += 1
                SWEPT_RUNS.inc()
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the sweep
                log.warning("reconciling %s failed: %r", run_id, exc)
                report.failed.append(run_id)

    await asyncio.gather(*(one(r) for r in run_ids))
    log.info("reconciliation sweep: %d unfinished runs re-driven, %d dispatches re-published, %d failed",
             report.runs, report.dispatches, len(report.failed))
    return report


class Reconciler:
    """Notices a new stream epoch (at start, when a consumer had to be re-created, and every
    `interval` seconds) and then sweeps, once per epoch across all replicas."""

    def __init__(self, pool, js, executor: RunExecutor, grace: float = 3.0, interval: float = 10.0) -> None:
        self.pool, self.js, self.executor = pool, js, executor
        self.grace, self.interval = grace, interval
        self._poke = asyncio.Event()

    async def poke(self) -> None:
        self._poke.set()

    async def claim_epoch(self) -> bool:
        """True when the stream is a new one and this replica is the one to sweep for it."""
        epoch = await bus.stream_epoch(self.js)
        async with self.pool.connection() as conn:
            return (await (await conn.execute(EPOCH_SQL, (epoch, epoch))).fetchone()) is not None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._poke.clear()
            try:
                if await self.claim_epoch():
                    log.warning("the bus stream is new (broker store lost?): sweeping in %ss", self.grace)
                    await _wait_any(stop, asyncio.Event(), self.grace)
                    if not stop.is_set():
                        await sweep(self.pool, self.js, self.executor)
            except Exception as exc:  # noqa: BLE001 - broker or database away: next round
                log.debug("epoch check failed: %r", exc)
            await _wait_any(stop, self._poke, self.interval)


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    tasks = [asyncio.create_task(stop.wait()), asyncio.create_task(other.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
