"""SSE of every run of one workflow (dashboards): live events of all its runs, `id:` = global seq.

Same no-gap scheme as a run stream: subscribe first, then catch up from the log (events of the
workflow's runs with seq > Last-Event-ID), then live events with seq above the last one sent.
The live side sees every run event on the bus and keeps those of this workflow's runs (a run's
workflow is learned from its run.created event, or looked up once in the runs projection).
"""
import asyncio
from typing import AsyncIterator

from wf_contracts import codec, events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.run_state import RunState
from wf_platform.eventlog import recorded_from_row

from .sse import BUFFER, HEARTBEAT_SECONDS, SSE_NAMES, frame, payload

_COLS = ("e.seq, e.id, e.stream, e.version, e.tenant, e.type, e.payload, e.actor, e.causation_id,"
         " e.correlation_id, e.recorded_at, e.hash")


class WorkflowStream:
    def __init__(self, nc, pool, workflow_id: str, last_seq: int) -> None:
        self.nc, self.pool, self.workflow_id = nc, pool, workflow_id
        self.sent = last_seq
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=BUFFER)
        self.overflow = False
        self.mine: dict[str, bool] = {}

    async def _on_msg(self, msg) -> None:
        if not msg.subject.startswith("wf.evt.run_"):
            return
        try:
            self.queue.put_nowait(msg.data)
        except asyncio.QueueFull:
            self.overflow = True

    async def _belongs(self, rec: Recorded) -> bool:
        if isinstance(rec.event, ev.RunCreated):
            self.mine[rec.stream] = rec.event.workflow_id == self.workflow_id
        if rec.stream not in self.mine:
            async with self.pool.connection() as conn:
                row = await (await conn.execute("SELECT workflow_id FROM runs WHERE id = %s",
                                                (rec.stream,))).fetchone()
            self.mine[rec.stream] = bool(row) and row[0] == self.workflow_id
        return self.mine[rec.stream]

    def _frame(self, rec: Recorded) -> bytes | None:
        name = SSE_NAMES.get(rec.type)
        if name is None:
            return None
        data = payload(rec, RunState(run_id=rec.stream))
        data["workflow_id"] = self.workflow_id
        return frame(rec.seq, name, data)

    async def _catch_up(self) -> list[bytes]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                f"SELECT {_COLS} FROM events e JOIN runs r ON r.id = e.stream"
                " WHERE r.workflow_id = %s AND e.seq > %s ORDER BY e.seq LIMIT 10000",
                (self.workflow_id, self.sent))).fetchall()
        out = []
        for row in rows:
            rec = recorded_from_row(row)
            self.mine[rec.stream] = True
            f = self._frame(rec)
            if f:
                out.append(f)
            self.sent = rec.seq
        return out

    async def events(self) -> AsyncIterator[bytes]:
        sub = await self.nc.subscribe("wf.evt.*.>", cb=self._on_msg)
        try:
            yield b": stream open\n\n"
            if self.sent:
                for chunk in await self._catch_up():
                    yield chunk
            else:
                async with self.pool.connection() as conn:  # live only: start at the log's head
                    self.sent = (await (await conn.execute("SELECT seq FROM log_head")).fetchone())[0]
            while True:
                try:
                    data = await asyncio.wait_for(self.queue.get(), timeout=HEARTBEAT_SECONDS)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if self.overflow:
                    yield frame("overflow", "error", {"workflow_id": self.workflow_id, "detail":
                                "client too slow: reconnect with Last-Event-ID to resume"})
                    return
                try:
                    rec = codec.decode_recorded(data)
                except codec.DecodeError:
                    continue
                if rec.seq <= self.sent or not await self._belongs(rec):
                    continue
                self.sent = rec.seq
                f = self._frame(rec)
                if f:
                    yield f
        finally:
            await sub.unsubscribe()
