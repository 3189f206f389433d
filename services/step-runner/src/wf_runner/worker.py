"""Takes dispatched steps from JetStream, executes them, publishes results.

All runner replicas share one durable pull consumer, so each dispatch goes to one runner.
While a step runs, in-progress acks keep JetStream from redelivering it; if the runner dies,
the message is redelivered after ack_wait and executed again (same attempt number, same
Idempotency-Key, so a receiver can drop the repeat). The result is published before the ack,
with Nats-Msg-Id derived from the dispatch, so a repeated result is dropped by JetStream and a
late one is ignored by the orchestrator.

SIGTERM: stop fetching, let in-flight steps finish for `drain_seconds`; steps still running
then are stopped (ctx.cancel) and nak-ed without a result, so another runner runs them at once
instead of after ack_wait.
"""
import asyncio
import logging
from datetime import datetime, timezone

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from wf_contracts import codec, events as ev, subjects
from wf_platform import bus, faults, metrics

from .cancels import CancelWatch
from .claims import Claims
from .execute import STOP_GRACE, Executor

log = logging.getLogger(__name__)
DURABLE = "step-runner"
RECONCILED = bus.RECONCILED_HEADER


class Worker:
    def __init__(self, js: JetStreamContext, executor: Executor, *, concurrency: int, ack_wait: float,
                 max_deliver: int, drain_seconds: float = 25.0, cancels: CancelWatch | None = None,
                 durable: str = DURABLE, result_retry_seconds: float = 120.0, claims: Claims | None = None,
                 suspect_after: float = 2.0) -> None:
        self.js, self.executor = js, executor
        self.concurrency, self.ack_wait, self.max_deliver = concurrency, ack_wait, max_deliver
        self.drain_seconds, self.durable = drain_seconds, durable
        self.result_retry_seconds = result_retry_seconds
        self.claims = claims or Claims(js, "runner")
        self.suspect_after = suspect_after   # an older dispatch may have been run already: look first
        self._running: dict[str, asyncio.Event] = {}   # dispatch id -> set when this runner is done with it
        self.cancels = cancels or CancelWatch(None)
        self._inflight: dict[asyncio.Task, asyncio.Event] = {}
        self._abandoning = False

    async def setup(self) -> None:
        self.consumer = bus.PullConsumer(self.js, self.durable, [subjects.DISPATCHES], self.ack_wait,
                                         self.max_deliver, max_ack_pending=10_000)
        await self.consumer.setup()
        await self.cancels.start()
        await self.claims.start()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self.concurrency - len(self._inflight)
            if free <= 0:   # full: wait for a free slot, or for SIGTERM so draining starts now
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait([*self._inflight, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                continue
            try:
                msgs = await self.consumer.fetch(batch=free, timeout=1.0)
            except asyncio.TimeoutError:
                continue
            except Exception as exc:  # noqa: BLE001
                if stop.is_set():
                    break
                log.warning("fetch failed: %r", exc)
                await asyncio.sleep(0.5)
                continue
            for m in faults.shuffled(msgs):   # started even when stop came during the fetch: ours now
                self._start(m)
        await self._drain()
        await self.cancels.stop()

    def _start(self, m: Msg) -> None:
        cancel = asyncio.Event()
        task = asyncio.create_task(self._handle(m, cancel))
        self._inflight[task] = cancel
        task.add_done_callback(lambda t: self._inflight.pop(t, None))

    async def _drain(self) -> None:
        if not self._inflight:
            return
        log.info("draining %d in-flight steps (up to %ss)", len(self._inflight), self.drain_seconds)
        _, late = await asyncio.wait(list(self._inflight), timeout=self.drain_seconds)
        if late:
            log.warning("%d steps still running after %ss: stopping them for another runner", len(late),
                        self.drain_seconds)
            self._abandoning = True
            for t in late:
                self._inflight[t].set()
            await asyncio.wait(late, timeout=STOP_GRACE + 1.0)

    async def _handle(self, m: Msg, cancel: asyncio.Event) -> None:
        try:
            rec = codec.decode_recorded(m.data)
            if not isinstance(rec.event, ev.StepDispatched):
                raise codec.DecodeError(f"not a dispatch: {rec.type}")
        except codec.DecodeError as exc:
            log.error("undecodable dispatch: %s", exc)
            await m.term()
            return
        e = rec.event
        faults.poison(e.step_id, f"{e.run_id}:{e.step_id}:{e.attempt}")
        if not await self._should_run(m, rec):
            return
        asyncio.create_task(self.claims.claim(rec.id))   # off the hot path; see claims.py
        metrics.INFLIGHT.inc()
        metrics.DISPATCH_LATENCY.observe(max(0.0, (datetime.now(timezone.utc) - rec.recorded_at).total_seconds()))
        self.cancels.track(e.run_id, e.step_id, rec.seq, cancel)
        background = [asyncio.create_task(self._keepalive(m, claim=rec.id))]
        if self.cancels.may_have_missed(rec.recorded_at, _deliveries(m)):
            background.append(asyncio.create_task(self.cancels.catch_up(e.run_id)))
        try:
            result = await self.executor.run(rec, cancel)
            if self._abandoning and cancel.is_set():
                # stopped by our shutdown (or a cancel during it): another runner takes it now and,
                # seeing a redelivery, checks for a cancel before running it
                await m.nak()
                return
            # held (and retried) through a broker restart; in-progress acks keep the dispatch ours
            await bus.publish_until_acked(self.js, subjects.result_subject(result.run_id, rec.id),
                                          codec.encode(result), f"{rec.id}:result", self.result_retry_seconds)
            faults.crash_point("runner_after_reply_before_ack")
            delay = faults.redeliver_delay(_deliveries(m))
            if delay is not None:
                await m.nak(delay=delay)
            else:
                await m.ack()
        except Exception as exc:  # noqa: BLE001 - not acked: JetStream redelivers
            log.error("step %s of %s failed to report: %r", e.step_id, e.run_id, exc)
            try:
                await m.nak(delay=1.0)
            except Exception:  # noqa: BLE001
                pass
        finally:
            for t in background:
                t.cancel()
            self.cancels.untrack(e.run_id, e.step_id, rec.seq)
            self._running.pop(rec.id).set()
            metrics.INFLIGHT.dec()

    async def _should_run(self, m: Msg, rec) -> bool:
        """False when this copy of the dispatch must not run: it is already answered, or being run
        (here or by a live runner elsewhere); the copy is then acked once that is settled."""
        sweep = (m.headers or {}).get(RECONCILED)
        if rec.id in self._running:
            # a second copy of what this very runner is running: ack it once the first is done
            await self._hold(m, self._running[rec.id].wait())
            await m.ack()
            return False
        # taken now, before any await, so another copy arriving meanwhile waits for this one
        mine = self._running[rec.id] = asyncio.Event()
        doubtful = _deliveries(m) > 1 or sweep or _age(rec) > self.suspect_after
        if not doubtful:
            return True
        try:
            run = await self._look(m, rec, sweep)
        except BaseException:
            run = False
            raise
        finally:
            if not run:
                self._running.pop(rec.id, None)
                mine.set()
        return run

    async def _look(self, m: Msg, rec, sweep: str | None) -> bool:
        while True:
            answer = await self._reported(rec)
            if answer is not None:
                # a redelivery (our ack was lost, or the runner before us died after replying) or a
                # re-dispatch by the reconciliation sweep, of a step whose result is already on the
                # bus: running it again would repeat its side effect for nothing. For the sweep the
                # result is published again (the orchestrators may never have consumed it).
                log.info("step %s of %s already reported: not run again", rec.event.step_id, rec.event.run_id)
                if sweep:
                    await bus.publish_until_acked(self.js, answer.subject, answer.data,
                                                  f"{rec.id}:result:{sweep}", self.result_retry_seconds)
                await m.ack()
                return False
            holder = await self.claims.live_holder(rec.id, fresh_within=self.ack_wait)
            if holder is None:
                return True
            # alive and on it elsewhere: wait (holding this copy) for its result or its death
            log.info("step %s of %s is being run by %s: waiting", rec.event.step_id, rec.event.run_id, holder)
            await self._hold(m, asyncio.sleep(max(1.0, self.ack_wait / 3)))

    async def _hold(self, m: Msg, aw) -> None:
        keep = asyncio.create_task(self._keepalive(m, claim=None))
        try:
            await aw
        finally:
            keep.cancel()

    async def _reported(self, rec):
        """The result of this dispatch if it is already in the stream (its subject is unique to it)."""
        try:
            return await self.js.get_last_msg(subjects.STREAM, subjects.result_subject(rec.event.run_id, rec.id))
        except NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - cannot tell: run it (the orchestrator drops a repeat)
            log.warning("could not look up the result of %s: %r", rec.id, exc)
            return None

    async def _keepalive(self, m: Msg, claim: str | None) -> None:
        # tell JetStream (and other runners: the claim) we are still working, well before ack_wait
        while True:
            await asyncio.sleep(max(self.ack_wait / 3, 0.5))
            try:
                await m.in_progress()
            except Exception:  # noqa: BLE001
                pass
            if claim is not None:
                await self.claims.claim(claim)


def _age(rec) -> float:
    return (datetime.now(timezone.utc) - rec.recorded_at).total_seconds()


def _deliveries(m: Msg) -> int:
    try:
        return m.metadata.num_delivered
    except Exception:  # noqa: BLE001 - not a JetStream message (tests)
        return 1
