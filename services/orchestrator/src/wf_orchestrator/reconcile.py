"""Reconciliation sweep: after the broker lost its store, re-drive from Postgres what was pending.

The log says what each unfinished run is waiting for; NATS only carried the news. When the WF
stream comes back empty (a new creation time: its "epoch"), whatever was in it and not yet
consumed is gone: run.created and cancel/resume requests nobody handled, step.dispatched no
runner took, results no orchestrator read. The sweep re-drives each unfinished run:
- a Kick re-evaluates the run (admission, pending cancel/resume, due timers, ready steps);
- every step the log says is running, and whose dispatch went to the lost stream (recorded below
  the first event of the new one: `lost_below`), gets its step.dispatched re-published byte for byte, with
  the Wf-Reconciled header (value: a token of this sweep, also in its Nats-Msg-Id), so a runner
  first looks for that dispatch's result on the bus: if there is one it publishes it again (the
  orchestrators may never have read it), and only if there is none does it run the step.
A result lost with the store means the step runs again with the same Idempotency-Key (documented
in docs/operations.md). Exactly one orchestrator sweeps per epoch: the one whose compare-and-set
on relay_checkpoint.bus_epoch succeeds. `wfctl reconcile` sets it to "requested", so the next
check (every `interval`) sweeps on demand.

The sweep waits `grace` seconds first, so results that runners held through the outage (they
retry publishing) land and are consumed before it decides what is still running.
"""
import asyncio
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Counter

from nats.js.errors import NotFoundError

from wf_contracts import codec, subjects
from wf_platform import bus
from wf_platform.relay import BUS_COLUMNS, bus_message

from .executor import RunExecutor
from .messages import Kick

log = logging.getLogger(__name__)

SWEPT_RUNS = Counter("wf_reconciled_runs_total", "Unfinished runs re-driven by a reconciliation sweep")
SWEPT_DISPATCHES = Counter("wf_reconciled_dispatches_total", "step.dispatched re-published by a sweep")
SWEEPS = Counter("wf_reconcile_sweeps_total", "Reconciliation sweeps run (broker store lost, or forced)")

UNFINISHED_SQL = "SELECT run_id FROM run_schedule WHERE phase IN ('queued', 'holding') ORDER BY run_id"
# Swaps in the stream's epoch and returns the one it replaces (locked, so one replica wins)
EPOCH_SQL = ("WITH old AS (SELECT bus_epoch FROM relay_checkpoint WHERE name = 'nats' FOR UPDATE)"
             " UPDATE relay_checkpoint r SET bus_epoch = %s FROM old"
             " WHERE r.name = 'nats' AND old.bus_epoch IS DISTINCT FROM %s RETURNING old.bus_epoch")
REQUESTED = "requested"   # set by `wfctl reconcile`


@dataclass
class SweepReport:
    runs: int = 0
    dispatches: int = 0
    failed: list[str] = field(default_factory=list)


async def lost_below(pool, js) -> int:
    """The log seq below which events went to the lost stream: the first event in the new stream
    (the relay publishes in seq order from its checkpoint, so everything from there on is in it),
    or the relay's next position when nothing reached the new stream yet (the relay publishes the
    rest there). Dispatches at or above it are not lost and are left to run their normal course."""
    async with pool.connection() as conn:
        bound = (await (await conn.execute("SELECT seq + 1 FROM relay_checkpoint WHERE name = 'nats'")).fetchone())[0]
    try:
        raw = await js.get_msg(subjects.STREAM, seq=1, subject=subjects.ALL_EVENTS, next=True)
        bound = min(bound, codec.decode_recorded(raw.data).seq)
    except NotFoundError:
        pass
    return bound


async def sweep(pool, js, executor: RunExecutor, concurrency: int = 16, below_seq: int | None = None) -> SweepReport:
    """Re-drive every unfinished run (see the module docstring); only dispatches recorded below
    `below_seq` are re-published (None: all of them, for a requested sweep)."""
    SWEEPS.inc()
    report = SweepReport()
    # a token per sweep: its re-publications get ids of their own, so JetStream's de-duplication
    # window (which outlives a purge or an exhausted consumer, though not a lost store) lets them in
    token = str(int(time.time() * 1000))
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
                            f"SELECT {BUS_COLUMNS} FROM events WHERE id = ANY(%s) AND seq < %s ORDER BY seq",
                            (ids, below_seq if below_seq is not None else 2**62))).fetchall()
                    for row in rows:
                        subject, body, msg_id = bus_message(row)
                        await js.publish(subject, body, timeout=10,
                                         headers={"Nats-Msg-Id": f"{msg_id}:reconcile:{token}",
                                                  bus.RECONCILED_HEADER: token})
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

    async def claim_epoch(self) -> str | None:
        """The epoch this replica replaced when the stream is a new one (or "requested") and this
        replica is the one to sweep; else None. A deployment's first epoch (none before) sweeps
        nothing."""
        epoch = await bus.stream_epoch(self.js)
        async with self.pool.connection() as conn:
            row = await (await conn.execute(EPOCH_SQL, (epoch, epoch))).fetchone()
        return row[0] if row is not None else None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._poke.clear()
            try:
                replaced = await self.claim_epoch()
                if replaced is not None:
                    requested = replaced == REQUESTED
                    log.warning("%s: sweeping in %ss", "reconciliation requested" if requested
                                else "the bus stream is new (broker store lost?)", self.grace)
                    await _wait_any(stop, asyncio.Event(), self.grace)
                    if not stop.is_set():
                        below = None if requested else await lost_below(self.pool, self.js)
                        await sweep(self.pool, self.js, self.executor, below_seq=below)
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
