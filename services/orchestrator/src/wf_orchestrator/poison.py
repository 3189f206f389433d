"""Poison steps: a dispatch that no runner ever answers because it ends every runner that takes it.

JetStream delivers a step.dispatched at most RUNNER_MAX_DELIVER times; after the last delivery
goes unanswered it publishes a MAX_DELIVERIES advisory (core NATS, not stored) naming the stream
sequence. Orchestrators listen in one queue group; the one that hears it reads the dispatch back
from the stream and feeds the run a failed, non-retryable result for that attempt, so the run
fails (or continues, per on_error) with a clear error at once instead of when the attempt's
deadline passes. Retrying would only take down more runners. If no orchestrator is up to hear
the advisory, the attempt's deadline (a durable timer) still ends the attempt.
A stale advisory (the attempt already settled) changes nothing: decide() ignores stale results.
"""
import json
import logging

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from wf_contracts import codec, events as ev, subjects
from wf_contracts.messages import StepResult

from .executor import RunExecutor

log = logging.getLogger(__name__)


def advisory_subject(durable: str) -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{subjects.STREAM}.{durable}"


def poison_result(rec, deliveries: int) -> StepResult | None:
    e = rec.event
    if not isinstance(e, ev.StepDispatched):
        return None
    return StepResult(
        run_id=e.run_id, tenant=rec.tenant, step_id=e.step_id, attempt=e.attempt, dispatch_id=rec.id, ok=False,
        error=(f"the step was delivered to step-runners {deliveries} times and never answered: each runner "
               "ended or stopped while running it (crash, out-of-memory kill); not retried"),
        error_type="runner_crashed", retryable=False, runner="orchestrator",
    )


class PoisonWatch:
    def __init__(self, nc: NATS, js: JetStreamContext, executor: RunExecutor, durable: str = "step-runner") -> None:
        self.nc, self.js, self.executor, self.durable = nc, js, executor, durable
        self.sub = None

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(advisory_subject(self.durable), queue="orchestrator", cb=self._on_advisory)

    async def stop(self) -> None:
        if self.sub is not None:
            try:
                await self.sub.unsubscribe()
            except Exception:  # noqa: BLE001
                pass

    async def _on_advisory(self, msg) -> None:
        try:
            adv = json.loads(msg.data)
            seq, deliveries = int(adv["stream_seq"]), int(adv.get("deliveries") or 0)
            raw = await self.js.get_msg(subjects.STREAM, seq)
            rec = codec.decode_recorded(raw.data)
            result = poison_result(rec, deliveries)
            if result is None:
                return
            log.error("step %s of %s (attempt %d) ended its runner on all %d deliveries: failing it",
                      result.step_id, result.run_id, result.attempt, deliveries)
            await self.executor.handle(result.run_id, result)
        except Exception as exc:  # noqa: BLE001 - the attempt's deadline is the fallback
            log.warning("max-deliveries advisory not handled: %r", exc)
