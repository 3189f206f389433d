"""Thin adapter around decide(): load the run's state, decide, append with the expected version.

States are cached per run. The cache is trusted for deciding (a stale cache shows up as an
append conflict, after which the run is re-read); when the cached state says "nothing to do",
the run is re-read once before concluding so a result for a dispatch made by another replica
is never mistaken for a stale one.
"""
import logging
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable

from wf_contracts.envelope import Recorded
from wf_contracts.ids import new_id
from wf_contracts.run_state import RunState, fold
from wf_platform import metrics
from wf_platform.eventlog import ConcurrencyConflict, EventLog
from wf_platform.projections import upsert_run

from .decide import decide
from .messages import Message

log = logging.getLogger(__name__)


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
                 ids: Callable[[str], str] = new_id, max_conflicts: int = 20) -> None:
        self.log = log_
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.ids = ids
        self.cache = StateCache()
        self.max_conflicts = max_conflicts

    async def load(self, run_id: str, cached: RunState | None = None) -> RunState:
        base = cached or RunState()
        recs = await self.log.read_stream(run_id, after_version=base.version)
        state = fold(recs, base)
        self.cache.put(run_id, state)
        return state

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

            async def project(conn, pending: list[Recorded]) -> None:
                await upsert_run(conn, fold(pending, base))

            try:
                recs = await self.log.append(run_id, state.tenant, state.version, new, now, project)
            except ConcurrencyConflict:
                metrics.APPEND_CONFLICTS.labels("orchestrator").inc()
                state, fresh = await self.load(run_id, state), True
                continue
            metrics.EVENTS_APPENDED.labels("orchestrator").inc(len(recs))
            state = fold(recs, state)
            self.cache.put(run_id, state)
            if state.finished:
                metrics.RUNS.labels(state.status).inc()
            return recs
        raise ConcurrencyConflict(f"run {run_id}: gave up after {self.max_conflicts} conflicts")
