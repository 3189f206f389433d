"""Takes dispatched steps from JetStream, executes them, publishes results.

All runner replicas share one durable pull consumer, so each dispatch goes to one runner.
While a step runs, in-progress acks keep JetStream from redelivering it; if the runner dies,
the message is redelivered after ack_wait and executed again (same attempt number, same
Idempotency-Key, so a receiver can drop the repeat). The result is published before the ack,
with Nats-Msg-Id derived from the dispatch, so a repeated result is dropped by JetStream and a
late one is ignored by the orchestrator.
"""
import asyncio
import logging
import time
from datetime import datetime, timezone

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from wf_contracts import codec, events as ev, subjects
from wf_contracts.envelope import Recorded
from wf_contracts.messages import StepResult
from wf_platform import bus, faults, metrics

from .steps.base import StepContext, StepError, StepExecutor

log = logging.getLogger(__name__)
DURABLE = "step-runner"


class Worker:
    def __init__(self, js: JetStreamContext, registry: dict[str, StepExecutor], instance: str,
                 concurrency: int, ack_wait: float, max_deliver: int, secrets: dict[str, str],
                 drain_seconds: float = 25.0) -> None:
        self.js, self.registry, self.instance = js, registry, instance
        self.concurrency, self.ack_wait, self.max_deliver = concurrency, ack_wait, max_deliver
        self.secrets = secrets
        self.drain_seconds = drain_seconds
        self._tasks: set[asyncio.Task] = set()

    async def setup(self) -> None:
        await bus.ensure_consumer(self.js, DURABLE, [subjects.DISPATCHES], self.ack_wait, self.max_deliver,
                                  max_ack_pending=10_000)
        self.sub = await self.js.pull_subscribe_bind(DURABLE, stream=subjects.STREAM)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await self.sub.fetch(batch=free, timeout=1.0)
            except asyncio.TimeoutError:
                continue
            except Exception as exc:  # noqa: BLE001
                if stop.is_set():
                    break
                log.warning("fetch failed: %r", exc)
                await asyncio.sleep(0.5)
                continue
            for m in msgs:
                t = asyncio.create_task(self._handle(m))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
        if self._tasks:  # SIGTERM: finish what is in flight within the grace period
            await asyncio.wait(self._tasks, timeout=self.drain_seconds)

    async def _handle(self, m: Msg) -> None:
        try:
            rec = codec.decode_recorded(m.data)
            if not isinstance(rec.event, ev.StepDispatched):
                raise codec.DecodeError(f"not a dispatch: {rec.type}")
        except codec.DecodeError as exc:
            log.error("undecodable dispatch: %s", exc)
            await m.term()
            return
        metrics.INFLIGHT.inc()
        keepalive = asyncio.create_task(self._keepalive(m))
        try:
            result = await self.execute(rec)
            await self.js.publish(
                subjects.result_subject(result.run_id), codec.encode(result),
                headers={"Nats-Msg-Id": f"{rec.id}:result"},
            )
            faults.crash_point("runner_after_reply_before_ack")
            await m.ack()
        except Exception as exc:  # noqa: BLE001 - not acked: JetStream redelivers
            log.exception("step %s failed to report: %r", rec.id, exc)
            try:
                await m.nak(delay=1.0)
            except Exception:  # noqa: BLE001
                pass
        finally:
            keepalive.cancel()
            metrics.INFLIGHT.dec()

    async def execute(self, rec: Recorded) -> StepResult:
        e: ev.StepDispatched = rec.event  # type: ignore[assignment]
        metrics.DISPATCH_LATENCY.observe(max(0.0, (datetime.now(timezone.utc) - rec.recorded_at).total_seconds()))
        executor = self.registry.get(e.step_type)
        ctx = StepContext(
            run_id=e.run_id, step_id=e.step_id, attempt=e.attempt, tenant=rec.tenant, step_type=e.step_type,
            config=e.config, timeout_seconds=e.timeout_seconds, context=e.context, secrets=self.secrets,
        )
        started = time.perf_counter()
        ok, output, error, etype, retryable = True, None, None, None, True
        try:
            if executor is None:
                raise StepError(f"step type '{e.step_type}' is not supported by this runner", retryable=False)
            coro = executor.execute(ctx)
            output = await (asyncio.wait_for(coro, e.timeout_seconds) if e.timeout_seconds else coro)
        except StepError as exc:
            ok, error, etype, retryable = False, exc.message, exc.error_type, exc.retryable
        except asyncio.TimeoutError:
            ok, error, etype = False, f"step timed out after {e.timeout_seconds}s", "timeout"
        except Exception as exc:  # noqa: BLE001 - a bug in a step type is a failed attempt, not a crash
            log.exception("step type %s raised", e.step_type)
            ok, error, etype = False, f"internal error in step type '{e.step_type}': {type(exc).__name__}", "internal"
        took = time.perf_counter() - started
        metrics.STEPS.labels(e.step_type, "ok" if ok else "failed").inc()
        metrics.STEP_SECONDS.labels(e.step_type).observe(took)
        return StepResult(
            run_id=e.run_id, tenant=rec.tenant, step_id=e.step_id, attempt=e.attempt, dispatch_id=rec.id,
            ok=ok, output=output, error=error, error_type=etype, retryable=retryable, runner=self.instance,
            duration_seconds=round(took, 6),
        )

    async def _keepalive(self, m: Msg) -> None:
        # tell JetStream we are still working well before ack_wait runs out
        while True:
            await asyncio.sleep(max(self.ack_wait / 3, 0.5))
            try:
                await m.in_progress()
            except Exception:  # noqa: BLE001
                pass
