"""Thin adapter around decide(): load the run's state, decide, append with the expected version.

States are cached per run. The cache is trusted for deciding (a stale cache shows up as an
append conflict, after which the run is re-read); when the cached state says "nothing to do",
the run is re-read once before concluding so a result for a dispatch made by another replica
is never mistaken for a stale one.

Admission: an append that starts a run (run.started) also calls wf_admit in the same
transaction, which takes a concurrency slot or refuses (SQLSTATE WF429, the whole append rolls
back and the run stays queued). Slot rows are written by upsert_run from the run's own state in
the same transaction as every append, so a slot is held exactly while the log says the run is
running or paused (docs/orchestration.md).
"""
import logging
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable

import psycopg

from wf_contracts import events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.ids import new_id
from wf_contracts.run_state import RunState, fold
from wf_platform import metrics
from wf_platform.eventlog import ConcurrencyConflict, EventLog
from wf_platform.projections import upsert_run

from .decide import decide
from .messages import Message

log = logging.getLogger(__name__)
NO_SLOT = "WF429"


class StateCache:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: OrderedDict[str, RunState] = OrderedDict()

    def get(self, run_id: str) -> RunState | None:
        s = self._items.get(run_id)
        if s is not None:
            self._items.move_to_end(run_id)
        return s

    def put(self, run_id: str, state: RunState) -> None:
        self._items[run_id] = state
        self._items.move_to_end(run_id)
        if state.finished:
            # finished runs rarely change again; keep the cache for live ones
            self._items.pop(run_id, None)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop(self, run_id: str) -> None:
        self._items.pop(run_id, None)


class RunHandler:
    def __init__(self, log_: EventLog, clock: Callable[[], datetime] | None = None,
                 ids: Callable[[str], str] = new_id, max_conflicts: int = 20, max_running: int = 10,
                 on_admission_change: Callable[[], None] | None = None) -> None:
        self.log = log_
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.ids = ids
        self.cache = StateCache()
        self.max_conflicts = max_conflicts
        self.max_running = max_running
        # called when this replica started a run or ended one: the next in line may start now
        self.on_admission_change = on_admission_change or (lambda: None)

    async def load(self, run_id: str, cached: RunState | None = None) -> RunState:
        base = cached or RunState()
        recs = await self.log.read_stream(run_id, after_version=base.version)
        state = fold(recs, base)
        self.cache.put(run_id, state)
        return state

    async def _may_start(self, run_id: str) -> bool:
        """Is the run next in line for a free slot? (What wf_admit will check, without its lock.)"""
        async with self.log.pool.connection() as conn:
            row = await (await conn.execute("SELECT run_id FROM wf_admissible(%s) LIMIT 1",
                                            (self.max_running,))).fetchone()
        return row is not None and row[0] == run_id

    async def handle(self, run_id: str, msg: Message) -> list[Recorded]:
        state = self.cache.get(run_id)
        fresh = state is None
        if state is None:
            state = await self.load(run_id)
        for _ in range(self.max_conflicts):
            now = self.clock()
            new = decide(state, msg, now, self.ids)
            if not new:
                if fresh:
                    return []
                state, fresh = await self.load(run_id, state), True
                continue
            base = state
            admitting = any(isinstance(n.event, ev.RunStarted) for n in new)
            if admitting and not await self._may_start(run_id):
                # cheap pre-check (wf_admit in the append decides). A cached "queued" may be stale:
                # the run may have started elsewhere, and this message be a result for it.
                if fresh:
                    return []
                state, fresh = await self.load(run_id, state), True
                continue

            async def project(conn, pending: list[Recorded]) -> None:
                if admitting:
                    # first: takes the admission lock, then counts slots (see migration 006)
                    await conn.execute("SELECT wf_admit(%s, %s)", (run_id, self.max_running))
                await upsert_run(conn, fold(pending, base), previous=base)

            try:
                recs = await self.log.append(run_id, state.tenant, state.version, new, now, project)
            except ConcurrencyConflict:
                metrics.APPEND_CONFLICTS.labels("orchestrator").inc()
                state, fresh = await self.load(run_id, state), True
                continue
            except psycopg.Error as exc:
                if exc.sqlstate != NO_SLOT:
                    raise
                if fresh:
                    return []  # stays queued; the admission sweeper kicks it when a slot frees
                state, fresh = await self.load(run_id, state), True
                continue
            metrics.EVENTS_APPENDED.labels("orchestrator").inc(len(recs))
            state = fold(recs, state)
            self.cache.put(run_id, state)
            if state.finished:
                metrics.RUNS.labels(state.status).inc()
            if admitting or state.finished:
                self.on_admission_change()
            return recs
        raise ConcurrencyConflict(f"run {run_id}: gave up after {self.max_conflicts} conflicts")
