"""Bus side of the orchestrator: a durable pull consumer shared by every replica.

It takes run-stream events recorded by others (run.created, run.cancel_requested,
run.resume_requested) and step results. Messages of one run are handled one at a time per
process (RunExecutor); across replicas, optimistic concurrency on the run stream decides.
"""
import asyncio
import logging
from typing import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from wf_contracts import codec, subjects
from wf_platform import bus, faults, metrics

from .executor import RunExecutor
from .messages import Kick

log = logging.getLogger(__name__)

DURABLE = "orchestrator"
KICK_TYPES = ("run.created", "run.cancel_requested", "run.resume_requested")


def filter_subjects() -> list[str]:
    return [subjects.events_of_type(t) for t in KICK_TYPES] + [subjects.RESULTS]


class Consumer:
    # ack_wait is short because handling takes milliseconds: after a replica dies, the messages
    # it had fetched come back to the others this soon. Failed handling (database away) is
    # retried with a growing delay for a long while before JetStream gives a message up; even
    # then timers (attempt deadlines) and the admission sweep make up for what it would have done.
    def __init__(self, js: JetStreamContext, executor: RunExecutor, concurrency: int = 64,
                 ack_wait: float = 5.0, max_deliver: int = 200,
                 on_recreated: Callable[[], Awaitable[None]] | None = None) -> None:
        self.js, self.executor = js, executor
        self.concurrency = concurrency
        self.consumer = bus.PullConsumer(js, DURABLE, filter_subjects(), ack_wait, max_deliver,
                                         on_recreated=on_recreated)
        self._tasks: set[asyncio.Task] = set()

    async def setup(self) -> None:
        await self.consumer.setup()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await self.consumer.fetch(batch=min(free, 64), timeout=1.0)
            except asyncio.TimeoutError:
                continue
            except Exception as exc:  # noqa: BLE001 - broker away: retry after a breath
                if stop.is_set():
                    break
                log.warning("fetch failed: %r", exc)
                await asyncio.sleep(0.5)
                continue
            for m in faults.shuffled(msgs):
                t = asyncio.create_task(self._handle(m))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
        # drain: let in-flight handling finish (SIGTERM)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=20)

    async def _handle(self, m: Msg) -> None:
        metrics.INFLIGHT.inc()
        try:
            if m.subject.startswith("wf.result."):
                msg = codec.decode_result(m.data)
                run_id = msg.run_id
            else:
                rec = codec.decode_recorded(m.data)
                run_id = rec.stream
                msg = Kick(run_id=run_id, cause_id=rec.id)
        except codec.DecodeError as exc:
            log.error("undecodable message on %s: %s", m.subject, exc)
            await m.term()
            metrics.INFLIGHT.dec()
            return
        try:
            await self.executor.handle(run_id, msg)
            delay = faults.redeliver_delay(_deliveries(m))
            if delay is not None:
                await m.nak(delay=delay)
            else:
                await m.ack()
        except Exception as exc:  # noqa: BLE001 - the message comes back and is handled again
            log.exception("handling %s for %s failed: %r", m.subject, run_id, exc)
            try:
                delivered = m.metadata.num_delivered or 1
                await m.nak(delay=min(5.0, 0.5 * delivered))
            except Exception:  # noqa: BLE001
                pass
        finally:
            metrics.INFLIGHT.dec()


def _deliveries(m: Msg) -> int:
    try:
        return m.metadata.num_delivered
    except Exception:  # noqa: BLE001 - not a JetStream message (tests)
        return 1
