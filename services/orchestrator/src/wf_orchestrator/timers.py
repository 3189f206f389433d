"""Durable timers that are due at `now`: the run deadline, attempt deadlines, retries and waits.

Every timer is a time recorded in an event (run.started + timeout_seconds, step.dispatched's
deadline, step.retrying's retry_at, step.waiting's wake_at); run_state.next_wakeup derives the
earliest one for the timers projection. This module is what a tick does with them, so both
must agree: a paused run starts no retry (and next_wakeup leaves those out while paused).
"""
from wf_contracts.run_state import run_deadline

from . import failures, start, waits
from .out import Out
from .plan import Plan


def fire_due(out: Out, plan: Plan) -> None:
    deadline = run_deadline(out.state)
    if deadline is not None and out.now >= deadline and not out.state.finished:
        failures.fail_run(out, f"run timed out after {plan.timeout_seconds:g}s")
        return
    for unit_id in list(out.state.steps):
        if out.state.finished:
            return
        s = out.state.steps[unit_id]
        if s.status == "running" and s.deadline is not None and out.now >= s.deadline:
            sdef = plan.unit(unit_id)
            if sdef.timeout_seconds is not None:
                error = f"step timed out after {sdef.timeout_seconds:g}s"
            else:
                error = "no result from a step-runner before the attempt's deadline"
            failures.attempt_failed(out, plan, unit_id, error, "timeout", retryable=True)
        elif s.status == "waiting" and s.wake_at is not None and out.now >= s.wake_at:
            if s.wait == "retry":
                if out.state.status == "running":
                    start.start_unit(out, plan, unit_id)
            else:
                waits.on_timer(out, plan, unit_id)
