"""The orchestration rules as one pure function: decide(state, message, now, ids) -> new events.

No I/O, no clock, no randomness except what is passed in (jitter is drawn from `ids`). The
adapter (handler.py) appends what this returns with the state's version as the expected version;
on a conflict it reloads and calls decide again, so every rule is idempotent: a message already
reflected in the state yields nothing. Whatever the message, the same settling pass runs after it
(requests, timers due at `now`, readiness), so a redelivered or duplicated message is harmless and
a lost one is made up for by the next message or tick.

Rules live in one module per concern: advance (readiness, trigger rules, if), start (render and
dispatch, condition), waits, loops, failures (retry, on_error), timers, ops (cancel, resume).
"""
from datetime import datetime

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent
from wf_contracts.messages import StepResult
from wf_contracts.run_state import RunState

from . import failures, ops, timers
from .advance import advance
from .messages import Kick, Message, Tick
from .out import ACTOR, IdFactory, Out  # noqa: F401 (ACTOR re-exported)
from .plan import Plan, plan_for


def decide(state: RunState, msg: Message, now: datetime, ids: IdFactory) -> list[NewEvent]:
    if state.status == "new" or state.deleted or state.finished:
        return []  # unknown, gone or final: results and ticks for it change nothing
    plan = plan_for(state.definition)
    match msg:
        case StepResult() as r:
            out = Out(state, now, ids, r.dispatch_id)
            _on_result(out, plan, r)
        case Kick() as k:
            out = Out(state, now, ids, k.cause_id)
        case Tick():
            out = Out(state, now, ids, None)
        case _:
            return []
    settle(out, plan)
    return out.events


def _on_result(out: Out, plan: Plan, r: StepResult) -> None:
    s = out.state.steps.get(r.step_id)
    # A stale answer (old attempt, timed out, redelivered dispatch, step settled) changes nothing.
    if s is None or s.status != "running" or s.attempt != r.attempt or s.dispatch_id != r.dispatch_id:
        return
    if r.ok:
        out.emit(ev.StepCompleted(run_id=out.run_id, step_id=r.step_id, attempt=r.attempt, output=r.output))
    elif out.state.cancel_requested:
        # runners stop on run.cancel_requested itself and answer "cancelled" before we react to
        # it: cancellation wins (settle cancels the step), the failure is not the run's outcome
        return
    else:
        failures.attempt_failed(out, plan, r.step_id, r.error or "step failed", r.error_type or "step_error",
                                r.retryable)


def settle(out: Out, plan: Plan) -> None:
    st = out.state
    if st.finished:
        return
    if st.cancel_requested:
        ops.cancel(out)
        return
    if st.status == "queued":
        # the adapter admits this only with a free concurrency slot (wf_admit); else nothing is appended
        out.emit(ev.RunStarted(run_id=st.run_id))
    if out.state.status == "paused" and out.state.resume_request is not None:
        ops.resume(out, plan)
    timers.fire_due(out, plan)
    if not out.state.finished:
        advance(out, plan)
