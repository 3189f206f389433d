"""Server-Sent Events for runs (SPEC §5 Stream): names, payloads, and the resumable run stream.

Resumption without gaps or repeats: the live NATS subscription is opened BEFORE the history is
read from the log, so an event is either in the history read or arrives live (or both; the
stream version decides, and anything at or below the last sent version is dropped). If the live
feed skips a version (relay lag, a reconnect), the gap is filled from the log; the keep-alive
tick also re-reads the log, so a stalled bus cannot stall a client. `id:` is the event's version
in the run's stream, identical on every gateway replica, so a reconnect may land anywhere.
"""
import asyncio
from typing import AsyncIterator

from wf_contracts import codec
from wf_contracts.envelope import Recorded
from wf_contracts.run_state import RunState, evolve
from wf_contracts.timefmt import iso_z

HEARTBEAT_SECONDS = 10.0   # a comment line at least this often (SPEC: at least every 15 s)
BUFFER = 1000              # live events buffered per client before a slow client is cut off

# event type in the log -> SSE event name; types not listed are internal and not streamed
SSE_NAMES = {
    "run.created": "run_queued",
    "run.started": "run_started",
    "step.dispatched": "step_started",   # a runner step's attempt goes out
    "step.started": "step_started",      # a control-flow step (condition, wait, loop) begins
    "step.completed": "step_completed",
    "step.failed": "step_failed",
    "step.skipped": "step_skipped",
    "step.retrying": "step_retrying",
    "step.waiting": "step_waiting",
    "run.paused": "run_paused",
    "run.resumed": "run_resumed",
    "run.completed": "run_completed",
    "run.failed": "run_failed",
    "run.cancelled": "run_cancelled",
}


def payload(rec: Recorded, state: RunState) -> dict:
    e = rec.event
    data: dict = {"run_id": rec.stream, "timestamp": iso_z(rec.recorded_at), "seq": rec.seq}
    for field in ("step_id", "attempt", "output", "error", "reason", "wake_at", "retry_at"):
        if hasattr(e, field):
            data[field] = getattr(e, field)
    if rec.type in ("run.completed", "run.failed", "run.cancelled"):
        data["status"] = state.status
        if state.started_at and state.completed_at:
            data["duration_seconds"] = round((state.completed_at - state.started_at).total_seconds(), 6)
        else:
            data["duration_seconds"] = None
        if state.error:
            data["error"] = state.error
    if rec.type == "run.created":
        data["workflow_id"] = state.workflow_id
    return data


def frame(event_id: int | str, name: str, data: dict) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {codec.encode(data).decode()}\n\n".encode()


class RunStream:
    def __init__(self, feeds, log, run_id: str, last_id: int) -> None:
        self.feeds, self.log, self.run_id = feeds, log, run_id
        self.state = RunState()
        self.sent = last_id
        self.feed = None

    def _apply(self, recs: list[Recorded]) -> list[bytes]:
        out = []
        for rec in recs:
            if rec.version <= self.state.version:
                continue  # already folded (live and log overlap)
            self.state = evolve(self.state, rec)
            name = SSE_NAMES.get(rec.type)
            if rec.version > self.sent and name:
                state = self.state
                out.append(self.feed.frame(rec.version, lambda: frame(rec.version, name, payload(rec, state))))
            self.sent = max(self.sent, rec.version)
        return out

    async def _catch_up(self) -> list[bytes]:
        return self._apply(await self.log.read_stream(self.run_id, after_version=self.state.version))

    async def events(self) -> AsyncIterator[bytes]:
        self.feed, sink = await self.feeds.join(self.run_id, BUFFER)
        try:
            yield b": stream open\n\n"
            for chunk in await self._catch_up():
                yield chunk
            while not self.state.finished:
                try:
                    rec = await asyncio.wait_for(sink.queue.get(), timeout=HEARTBEAT_SECONDS)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
                    for chunk in await self._catch_up():
                        yield chunk
                    continue
                if sink.overflow:
                    yield frame("overflow", "error", {"run_id": self.run_id, "detail":
                                "client too slow: reconnect with Last-Event-ID to resume"})
                    return
                if rec.version > self.state.version + 1:
                    chunks = await self._catch_up()  # a gap in the live feed: fill from the log
                else:
                    chunks = self._apply([rec])
                for chunk in chunks:
                    yield chunk
        finally:
            await self.feeds.leave(self.run_id, self.feed, sink)
