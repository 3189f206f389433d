"""From one step.dispatched to its StepResult, with no bus in sight (the worker does the bus).

Secrets: the dispatch carries markers (`wf_expr.templates.secret_marker`) where the config said
`{{ secrets.X }}`. They become values here, at execution time, in a copy of the config that
lives only in this process. The step receives only the secrets its config references; whatever
the step reports (output, error, metadata) is then redacted against every secret this runner
knows, so a value can only leave the runner as `***`.

Time-out and cancel: the step is asked to stop (ctx.cancel, which kills a script's process
group and aborts HTTP calls) and given STOP_GRACE seconds to clean up before its task is
cancelled outright, so a misbehaving step type cannot hold a runner slot.
"""
import asyncio
import logging
import time
import traceback
from datetime import datetime, timezone
from typing import Any, Mapping

from wf_contracts import codec, events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.messages import StepResult
from wf_expr.cel import ExpressionError
from wf_expr.templates import redact, referenced_secrets, substitute_secrets
from wf_platform import metrics

from .steps.base import StepContext, StepError, StepExecutor

log = logging.getLogger(__name__)
STOP_GRACE = 2.0        # seconds a step gets to stop by itself after a cancel or time-out
TIMEOUT_MARGIN = 0.5    # step types enforce the time-out themselves; this is the backstop


class Executor:
    def __init__(self, registry: Mapping[str, StepExecutor], secrets: Mapping[str, str], instance: str = "",
                 max_result_bytes: int | None = None, stop_grace: float = STOP_GRACE) -> None:
        self.registry, self.secrets, self.instance = registry, dict(secrets), instance
        self.max_result_bytes = max_result_bytes   # the bus's max payload; None: no check
        self.stop_grace = stop_grace

    async def run(self, rec: Recorded, cancel: asyncio.Event | None = None) -> StepResult:
        e: ev.StepDispatched = rec.event  # type: ignore[assignment]
        ctx = StepContext(run_id=e.run_id, step_id=e.step_id, attempt=e.attempt, tenant=rec.tenant,
                          step_type=e.step_type, config={}, timeout_seconds=e.timeout_seconds, context=e.context,
                          cancel=cancel or asyncio.Event(), dispatched_at=rec.recorded_at,
                          runner=self.instance)
        started = time.perf_counter()
        ok, output, error, etype, retryable = True, None, None, None, True
        try:
            _check_deadline(e)
            ctx.config, ctx.secrets = self._with_secrets(e.config)
            output = await self._guarded(ctx, e.timeout_seconds)
        except StepError as exc:
            ok, error, etype, retryable = False, exc.message, exc.error_type, exc.retryable
        except Exception as exc:  # noqa: BLE001 - a bug in a step type is a failed attempt, not a crash
            log.error("step type %s raised: %s", e.step_type, self._redact(traceback.format_exc()))
            ok, error, etype = False, f"internal error in step type '{e.step_type}': {type(exc).__name__}", "internal"
        took = time.perf_counter() - started
        metrics.STEPS.labels(e.step_type, "ok" if ok else "failed").inc()
        metrics.STEP_SECONDS.labels(e.step_type).observe(took)
        result = StepResult(
            run_id=e.run_id, tenant=rec.tenant, step_id=e.step_id, attempt=e.attempt, dispatch_id=rec.id,
            ok=ok, output=self._redact(output), error=self._redact(error), error_type=etype, retryable=retryable,
            runner=self.instance, duration_seconds=round(took, 6), metadata=self._redact(ctx.metadata),
        )
        return self._fits(result)

    def _with_secrets(self, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        names = referenced_secrets(config)
        if not names:
            return config, {}
        missing = sorted(n for n in names if n not in self.secrets)
        if missing:
            raise StepError(f"unknown secret '{missing[0]}': set WORKFLOW_SECRET_{missing[0]} on the step-runner",
                            retryable=False, error_type="unknown_secret")
        used = {n: self.secrets[n] for n in names}
        try:
            return substitute_secrets(config, used), used
        except ExpressionError as exc:   # cannot happen after the check above; never echo values
            raise StepError(f"secret substitution failed: {exc.reason}", retryable=False,
                            error_type="unknown_secret") from None

    async def _guarded(self, ctx: StepContext, timeout: float | None) -> Any:
        executor = self.registry.get(ctx.step_type)
        if executor is None:
            raise StepError(f"step type '{ctx.step_type}' is not supported by this runner", retryable=False,
                            error_type="unsupported")
        if ctx.cancel.is_set():
            raise StepError("cancelled", retryable=False, error_type="cancelled")
        task = asyncio.ensure_future(executor.execute(ctx))
        stop = asyncio.ensure_future(ctx.cancel.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED,
                                         timeout=None if timeout is None else timeout + TIMEOUT_MARGIN)
        except BaseException:   # we are being cancelled ourselves: take the step down with us
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        timed_out = not ctx.cancel.is_set()
        ctx.cancel.set()     # ask the step to stop: scripts are killed, HTTP calls aborted
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_grace)
        except BaseException:  # noqa: BLE001 - whatever it raised, the attempt is over
            pass
        if not task.done():
            task.cancel()
            log.warning("step %s of %s did not stop within %ss; its task was cancelled",
                        ctx.step_id, ctx.run_id, self.stop_grace)
        if timed_out:
            raise StepError(f"step timed out after {timeout:g}s", error_type="timeout")
        raise StepError("cancelled", retryable=False, error_type="cancelled")

    def _redact(self, value: Any) -> Any:
        return redact(value, self.secrets) if self.secrets and value is not None else value

    def _fits(self, result: StepResult) -> StepResult:
        """A result the bus would refuse (over its max payload) becomes a failure that fits."""
        if self.max_result_bytes is None:
            return result
        size = len(codec.encode(result))
        if size <= self.max_result_bytes:
            return result
        return StepResult(
            run_id=result.run_id, tenant=result.tenant, step_id=result.step_id, attempt=result.attempt,
            dispatch_id=result.dispatch_id, ok=False, runner=result.runner, duration_seconds=result.duration_seconds,
            error=f"step result is {size} bytes, over the {self.max_result_bytes}-byte limit of the message bus",
            error_type="output_too_large", retryable=False,
        )


def _check_deadline(e: ev.StepDispatched) -> None:
    """A dispatch redelivered after the orchestrator gave up on it (its deadline) is not run: the
    orchestrator has already failed or retried that attempt, so running it now would only repeat
    its side effects behind the run's back."""
    deadline = getattr(e, "deadline", None)
    try:
        due = datetime.fromisoformat(deadline) if deadline else None
    except ValueError:
        return
    if due is not None and due.tzinfo is not None and due < datetime.now(timezone.utc):
        raise StepError(f"the attempt's deadline ({deadline}) passed before it started", error_type="deadline")
