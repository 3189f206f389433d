"""Run operations requested through the gateway (recorded on the run stream): cancel and resume."""
from wf_contracts import events as ev
from wf_contracts.run_state import iteration_of

from . import failures, waits
from .out import Out
from .plan import Plan


def cancel(out: Out) -> None:
    """queued, running or paused -> cancelled. step.cancelled tells runners to stop in-flight work."""
    failures.cancel_open_units(out, "run cancelled")
    out.emit(ev.RunCancelled(run_id=out.run_id))


def resume(out: Out, plan: Plan) -> None:
    """paused -> running (SPEC §5).

    With from_step: that step and everything downstream of it go back to pending and run again
    with the current outputs of everything upstream. Without it: the last checkpoint, i.e. the
    step(s) whose failure paused the run run again and waiting approvals are granted.
    A failed step that paused the run is re-run in both cases: leaving it failed would silently
    skip its dependents. Approvals outside the re-run set are granted by the resume itself.
    """
    req = out.state.resume_request or {}
    from_step = req.get("from_step")
    reset: list[str] = []
    if from_step in plan.steps:
        reset = [from_step, *plan.downstream(from_step)]
    for sid in plan.steps:
        s = out.state.steps.get(sid)
        if s is not None and s.status == "failed" and plan.steps[sid].on_error == "pause" and sid not in reset:
            reset.append(sid)
    reset = [sid for sid in plan.steps if sid in reset]  # definition order, for a readable event
    in_reset = set(reset)

    def covered(unit_id: str) -> bool:
        it = iteration_of(unit_id)
        return unit_id in in_reset or (it is not None and it[0] in in_reset)

    for unit_id, s in list(out.state.steps.items()):
        if covered(unit_id) and s.status == "running":
            out.emit(ev.StepCancelled(run_id=out.run_id, step_id=unit_id, reason="re-run by resume"))
    approvals = [u for u, s in out.state.steps.items()
                 if s.status == "waiting" and s.wait == "approval" and not covered(u)]
    out.emit(ev.RunResumed(run_id=out.run_id, from_step=from_step if from_step in plan.steps else None,
                           reset=reset, request_id=req.get("id")))
    for unit_id in approvals:
        waits.complete(out, unit_id)
