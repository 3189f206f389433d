"""The orchestration rules as one pure function: decide(state, message, now, ids) -> new events.

No I/O, no clock, no randomness except what is passed in. The adapter (handler.py) appends
what this returns with the state's version as the expected version; on a conflict it reloads
and calls decide again, so every rule here must be idempotent: a message already reflected in
the state yields nothing.
"""
from datetime import datetime
from typing import Callable

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent
from wf_contracts.messages import StepResult
from wf_contracts.run_state import FINISHED_STEP, RunState, apply, can_move

from .messages import Kick, Message

IdFactory = Callable[[str], str]
ACTOR = "orchestrator"


class _Out:
    """Accumulates new events and keeps a working copy of the state in step with them."""

    def __init__(self, state: RunState, now: datetime, ids: IdFactory, cause: str | None) -> None:
        self.state, self.now, self.ids, self.cause = state, now, ids, cause
        self.events: list[NewEvent] = []

    def emit(self, event: ev.Event) -> None:
        event_id = self.ids("evt")
        self.events.append(
            NewEvent(id=event_id, event=event, actor=ACTOR, causation_id=self.cause,
                     correlation_id=self.state.run_id)
        )
        self.state = apply(self.state, event, self.now, event_id, self.state.tenant)


def decide(state: RunState, msg: Message, now: datetime, ids: IdFactory) -> list[NewEvent]:
    if state.status == "new" or state.deleted:
        return []  # run not (yet) known or gone: nothing to do
    match msg:
        case Kick() as k:
            out = _Out(state, now, ids, k.cause_id)
            if state.status == "queued" and can_move("queued", "running"):
                out.emit(ev.RunStarted(run_id=state.run_id))
            if out.state.status == "running":
                _advance(out)
            return out.events
        case StepResult() as r:
            return _on_result(state, r, now, ids)
    return []


def _on_result(state: RunState, r: StepResult, now: datetime, ids: IdFactory) -> list[NewEvent]:
    step = state.steps.get(r.step_id)
    # A stale answer (old attempt, redelivered dispatch, step already settled) changes nothing.
    if step is None or step.status != "running" or step.attempt != r.attempt or step.dispatch_id != r.dispatch_id:
        return []
    if state.status != "running":
        return []
    out = _Out(state, now, ids, r.dispatch_id)
    if r.ok:
        out.emit(ev.StepCompleted(run_id=state.run_id, step_id=r.step_id, attempt=r.attempt, output=r.output))
    else:
        out.emit(ev.StepFailed(run_id=state.run_id, step_id=r.step_id, attempt=r.attempt,
                               error=r.error or "step failed", error_type=r.error_type or "step_error"))
        if _on_error(state, r.step_id) == "fail":
            _fail_run(out, f"step '{r.step_id}' failed: {r.error or 'step failed'}")
            return out.events
    _advance(out)
    return out.events


def _defs(state: RunState) -> dict[str, dict]:
    return {s["id"]: s for s in state.step_defs()}


def _on_error(state: RunState, step_id: str) -> str:
    return _defs(state).get(step_id, {}).get("on_error", "fail")


def _fail_run(out: _Out, error: str) -> None:
    for sid, s in out.state.steps.items():
        if s.status in ("pending", "running", "waiting"):
            out.emit(ev.StepCancelled(run_id=out.state.run_id, step_id=sid))
    out.emit(ev.RunFailed(run_id=out.state.run_id, error=error))


def _should_run(rule: str, dep_statuses: list[str]) -> bool:
    """SPEC §3 trigger rules, applied once every dependency has finished."""
    if rule == "all_done":
        return True
    if rule == "none_failed":
        return not any(s in ("failed", "cancelled") for s in dep_statuses)
    return all(s == "completed" for s in dep_statuses)  # all_success


def _advance(out: _Out) -> None:
    """Dispatch or skip every step whose dependencies have finished, until nothing changes."""
    defs = out.state.step_defs()
    changed = True
    while changed:
        changed = False
        for d in defs:
            sid = d["id"]
            if out.state.steps[sid].status != "pending":
                continue
            deps = d.get("depends_on") or []
            statuses = [out.state.steps[x].status for x in deps if x in out.state.steps]
            if any(s not in FINISHED_STEP for s in statuses):
                continue
            if _should_run(d.get("trigger_rule", "all_success"), statuses):
                out.emit(
                    ev.StepDispatched(
                        run_id=out.state.run_id, step_id=sid, attempt=1, step_type=d["type"],
                        config=d.get("config", {}), timeout_seconds=d.get("timeout_seconds"),
                    )
                )
            else:
                out.emit(ev.StepSkipped(run_id=out.state.run_id, step_id=sid, reason="trigger rule"))
            changed = True
    _maybe_finish(out)


def _maybe_finish(out: _Out) -> None:
    steps = out.state.steps.values()
    if out.state.status != "running" or any(s.status not in FINISHED_STEP for s in steps):
        return
    # on_error "continue" tolerates a failure: the run still completes (Airflow's "failed but
    # tolerated" has no status of its own here); the failed step stays visible in step_runs.
    out.emit(ev.RunCompleted(run_id=out.state.run_id))
