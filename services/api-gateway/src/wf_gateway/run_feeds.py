"""One NATS subscription per run per gateway, shared by every SSE client watching that run.

Without it, N clients on one run meant N subscriptions: NATS sent every event N times and the
gateway decoded and rendered it N times. A feed decodes each event once and hands the decoded
event to every client's bounded queue; the rendered SSE frame is memoised per version, since the
frame for version N depends only on events 1..N and is the same for every client.
"""
import asyncio
from collections import OrderedDict

from wf_contracts import codec, subjects
from wf_contracts.envelope import Recorded

FRAME_MEMO = 256


class Sink:
    """One client's view of a feed: a bounded queue, and a flag once it overflowed."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Recorded] = asyncio.Queue(maxsize=maxsize)
        self.overflow = False


class Feed:
    def __init__(self) -> None:
        self.sinks: set[Sink] = set()
        self.sub = None
        self.ready = asyncio.Event()
        self.frames: OrderedDict[int, bytes] = OrderedDict()

    async def on_msg(self, msg) -> None:
        try:
            rec = codec.decode_recorded(msg.data)
        except codec.DecodeError:
            return
        for sink in self.sinks:
            try:
                sink.queue.put_nowait(rec)
            except asyncio.QueueFull:
                sink.overflow = True

    def frame(self, version: int, render) -> bytes:
        got = self.frames.get(version)
        if got is None:
            got = self.frames[version] = render()
            while len(self.frames) > FRAME_MEMO:
                self.frames.popitem(last=False)
        return got


class RunFeeds:
    def __init__(self, nc) -> None:
        self.nc = nc
        self.feeds: dict[str, Feed] = {}

    async def join(self, run_id: str, maxsize: int) -> tuple[Feed, Sink]:
        """Returns once the subscription is live at the server: what is published later reaches the sink."""
        sink = Sink(maxsize)
        feed = self.feeds.get(run_id)
        if feed is None:
            feed = self.feeds[run_id] = Feed()
            feed.sinks.add(sink)
            try:
                feed.sub = await self.nc.subscribe(subjects.stream_events(run_id), cb=feed.on_msg)
                await self.nc.flush()  # the server has the subscription before we read the log
            except BaseException:
                await self.leave(run_id, feed, sink)
                raise
            finally:
                feed.ready.set()
        else:
            feed.sinks.add(sink)
            await feed.ready.wait()
            if feed.sub is None:  # the first client's subscribe failed
                await self.leave(run_id, feed, sink)
                raise ConnectionError("could not subscribe to the run's events")
        return feed, sink

    async def leave(self, run_id: str, feed: Feed, sink: Sink) -> None:
        feed.sinks.discard(sink)
        if not feed.sinks and self.feeds.get(run_id) is feed:
            del self.feeds[run_id]
            if feed.sub is not None:
                try:
                    await feed.sub.unsubscribe()
                except Exception:  # noqa: BLE001 - connection gone: nothing left to undo
                    pass
