"""Failures as data (SPEC §3): retry with backoff and jitter, then on_error fail / continue / pause.

A failed attempt that will be retried is recorded as step.retrying (not step.failed), so a
step.failed event always means the step's final outcome.
"""
from datetime import timedelta
from typing import Any

from wf_contracts import events as ev
from wf_contracts.run_state import iteration_of
from wf_contracts.timefmt import iso_z

from .out import Out
from .plan import Plan

OPEN = ("pending", "running", "waiting")


def attempt_failed(out: Out, plan: Plan, unit_id: str, error: str, error_type: str = "step_error",
                   retryable: bool = True) -> None:
    sdef = plan.unit(unit_id)
    attempt = max(out.state.steps[unit_id].attempt, 1)
    if retryable and attempt < sdef.retry.max_attempts:
        delay = sdef.retry.delay(attempt, out.random())
        out.emit(ev.StepRetrying(
            run_id=out.run_id, step_id=unit_id, attempt=attempt, next_attempt=attempt + 1, delay_seconds=delay,
            retry_at=iso_z(out.now + timedelta(seconds=delay)), error=error, error_type=error_type,
        ))
        return
    step_failed(out, plan, unit_id, error, error_type)


def step_failed(out: Out, plan: Plan, unit_id: str, error: str, error_type: str = "step_error",
                output: Any = None, attempt: int | None = None) -> None:
    """The unit's final failure. A loop iteration's consequences are the loop's to decide."""
    attempt = attempt or max(out.state.steps[unit_id].attempt, 1)
    out.emit(ev.StepFailed(run_id=out.run_id, step_id=unit_id, attempt=attempt, error=error,
                           error_type=error_type, output=output))
    if iteration_of(unit_id) is None:
        apply_on_error(out, plan, unit_id, error)


def apply_on_error(out: Out, plan: Plan, step_id: str, error: str) -> None:
    policy = plan.steps[step_id].on_error
    if policy == "continue":
        return  # dependents see a finished-failed step and follow their trigger rule
    if policy == "pause":
        if out.state.status == "running":
            out.emit(ev.RunPaused(run_id=out.run_id, step_id=step_id, reason="step failed"))
        return
    fail_run(out, f"step '{step_id}' failed: {error}")


def fail_run(out: Out, error: str) -> None:
    cancel_open_units(out, "run failed")
    out.emit(ev.RunFailed(run_id=out.run_id, error=error))


def cancel_open_units(out: Out, reason: str) -> None:
    """Every unit not finished is cancelled; running ones are told to stop via step.cancelled."""
    for unit_id, s in list(out.state.steps.items()):
        if s.status in OPEN:
            out.emit(ev.StepCancelled(run_id=out.run_id, step_id=unit_id, reason=reason))
