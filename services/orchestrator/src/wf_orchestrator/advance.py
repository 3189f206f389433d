"""Readiness (SPEC §3): a step is decided once every dependency has finished.

all_success runs it when every dependency completed (skipped if any did not); none_failed when
none failed (skipped ones are fine: joins of branches); all_done always. A branch target whose
condition took the other arm is skipped. Then the step's `if` decides run or skip.
"""
from wf_contracts import events as ev
from wf_contracts.run_state import FINISHED_STEP

from . import loops, start, waits
from .out import Out
from .plan import Plan, StepDef

_FAILED = ("failed", "cancelled")


def trigger_allows(rule: str, statuses: list[str]) -> bool:
    if rule == "all_done":
        return True
    if rule == "none_failed":
        return not any(s in _FAILED for s in statuses)
    return all(s == "completed" for s in statuses)  # all_success


def _untaken_branch(out: Out, sdef: StepDef) -> str | None:
    for cond_id, arm in sdef.branches:
        c = out.state.steps.get(cond_id)
        if c is not None and c.status == "completed" and isinstance(c.output, dict) and c.output.get("branch") != arm:
            return cond_id
    return None


def _decide_step(out: Out, plan: Plan, sdef: StepDef) -> bool:
    """Skip or start one pending step whose dependencies are finished; False if not ready yet."""
    statuses = [out.state.steps[d].status for d in sdef.deps if d in out.state.steps]
    if any(s not in FINISHED_STEP for s in statuses):
        return False
    skip = lambda reason: out.emit(ev.StepSkipped(run_id=out.run_id, step_id=sdef.id, reason=reason))  # noqa: E731
    cond = _untaken_branch(out, sdef)
    if cond is not None:
        skip(f"branch not taken by '{cond}'")
    elif not trigger_allows(sdef.trigger_rule, statuses):
        skip(f"trigger rule {sdef.trigger_rule}")
    else:
        allowed = start.check_if(out, plan, sdef)
        if allowed is False:
            skip("'if' is false")
        elif allowed:
            start.start_unit(out, plan, sdef.id)
    return True


def advance(out: Out, plan: Plan) -> None:
    """Apply every rule until nothing changes: loops, condition waits, ready steps, completion."""
    changed = True
    while changed and not out.state.finished:
        before = len(out.events)
        for unit_id, s in list(out.state.steps.items()):
            if out.state.finished:
                return
            s = out.state.steps.get(unit_id, s)
            if s.status == "waiting" and s.wait == "condition":
                waits.check_condition(out, plan, unit_id)
            elif s.status == "running" and s.items is not None:
                loops.progress(out, plan, unit_id)
        if out.state.status == "running":
            for sdef in plan.steps.values():
                if out.state.status != "running":
                    break
                if out.state.steps[sdef.id].status == "pending":
                    _decide_step(out, plan, sdef)
        changed = len(out.events) != before
    _maybe_finish(out, plan)


def _maybe_finish(out: Out, plan: Plan) -> None:
    if out.state.status != "running":
        return
    if any(out.state.steps[sid].status not in FINISHED_STEP for sid in plan.steps):
        return
    # on_error "continue" tolerates a failure: the run still completes (Airflow's "failed but
    # tolerated" has no status of its own here); the failed step stays visible in step_runs.
    out.emit(ev.RunCompleted(run_id=out.run_id))
