"""Stops steps whose run or step was cancelled (SPEC §5: within 5 s).

The relay publishes every event on `wf.evt.<stream>.<type>`. Each runner holds one core-NATS
subscription on `wf.evt.*.run_cancelled` and `wf.evt.*.step_cancelled` for its whole life
instead of one per step: nothing to set up on the hot path, and an event that arrives just
before its step starts here is remembered. A cancel applies to dispatches recorded before it
(lower `seq`), so a late or repeated cancel never stops a later attempt of the same step.

A runner that was not listening when the cancel went out (it started later, or the dispatch is
a redelivery after a crash) asks JetStream for the last such event of the run instead.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timezone

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from wf_contracts import codec, events as ev, subjects

log = logging.getLogger(__name__)
# run.cancel_requested (recorded by the gateway) stops steps one orchestrator hop earlier than
# the run.cancelled the orchestrator records in answer
LIVE_TYPES = ("run.cancel_requested", "run.cancelled", "step.cancelled")
# after any of these no step of the run may still run (the orchestrator cancels running steps
# before it fails a run); checked only for dispatches this runner may have missed events for
HISTORY_TYPES = ("run.cancel_requested", "run.cancelled", "run.failed", "run.completed", "step.cancelled")
EVERYTHING = 1 << 62


def _base(step_id: str) -> str:
    return step_id.split("[", 1)[0]     # loop iteration "fetch[3]" belongs to step "fetch"


class CancelWatch:
    def __init__(self, nc: NATS | None, js: JetStreamContext | None = None, memory: int = 10_000) -> None:
        self.nc, self.js = nc, js
        self.started_at = datetime.now(timezone.utc)
        self._active: dict[str, dict[tuple[str, int], asyncio.Event]] = {}   # run -> (step, seq) -> event
        self._seen: OrderedDict[tuple[str, str | None], int] = OrderedDict()  # (run, step|None) -> cancel seq
        self._memory = memory
        self._subs: list = []

    async def start(self) -> None:
        if self.nc is not None:
            for t in LIVE_TYPES:
                self._subs.append(await self.nc.subscribe(subjects.events_of_type(t), cb=self._on_msg))
        self.started_at = datetime.now(timezone.utc)

    async def stop(self) -> None:
        for s in self._subs:
            try:
                await s.unsubscribe()
            except Exception:  # noqa: BLE001 - connection already gone
                pass
        self._subs.clear()

    def track(self, run_id: str, step_id: str, seq: int, event: asyncio.Event | None = None) -> asyncio.Event:
        """Watch the step dispatched at `seq`; `event` (returned) is set when it is cancelled."""
        event = event or asyncio.Event()
        self._active.setdefault(run_id, {})[(step_id, seq)] = event
        for key in ((run_id, None), (run_id, step_id), (run_id, _base(step_id))):
            if self._seen.get(key, -1) > seq:
                event.set()
        return event

    def untrack(self, run_id: str, step_id: str, seq: int) -> None:
        steps = self._active.get(run_id)
        if steps is not None:
            steps.pop((step_id, seq), None)
            if not steps:
                del self._active[run_id]

    def cancelled(self, run_id: str, step_id: str | None, seq: int) -> None:
        """Record a cancel of a run (step_id None) or a step, recorded at `seq`; stop what it covers."""
        key = (run_id, step_id)
        self._seen[key] = max(seq, self._seen.pop(key, -1))
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        for (sid, dispatch_seq), event in self._active.get(run_id, {}).items():
            if dispatch_seq < seq and (step_id is None or step_id in (sid, _base(sid))):
                event.set()

    async def _on_msg(self, msg) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        run_id = msg.subject.split(".")[2]
        try:
            rec = codec.decode_recorded(msg.data)
        except codec.DecodeError:
            if kind in ("run_cancelled", "run_cancel_requested"):      # the subject alone says enough
                self.cancelled(run_id, None, EVERYTHING)
            else:
                log.warning("undecodable %s event for %s ignored", kind, run_id)
            return
        self._apply(rec)

    def _apply(self, rec) -> None:
        e = rec.event
        if isinstance(e, ev.StepCancelled):
            self.cancelled(e.run_id, e.step_id, rec.seq)
        elif isinstance(e, (ev.RunCancelRequested, ev.RunCancelled, ev.RunFailed, ev.RunCompleted)):
            self.cancelled(e.run_id, None, rec.seq)

    def may_have_missed(self, recorded_at: datetime, deliveries: int) -> bool:
        return deliveries > 1 or recorded_at < self.started_at

    async def catch_up(self, run_id: str) -> None:
        """Look up the run's last cancel-like events in JetStream (for dispatches we may have missed them for)."""
        if self.js is None:
            return
        for t in HISTORY_TYPES:
            try:
                raw = await self.js.get_last_msg(subjects.STREAM, subjects.event_subject(run_id, t))
                self._apply(codec.decode_recorded(raw.data))
            except Exception:  # noqa: BLE001 - none recorded (NotFound), or the broker is away: run it
                continue
