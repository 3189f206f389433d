"""What expressions and steps may read (SPEC §6): input, steps.<id>.output/status, run.*, item, index.

`secrets` is never given a value here: templates are rendered with secret placeholders and the
step-runner substitutes the values at execution time, so no secret ever reaches the log.
"""
from typing import Any

from wf_contracts.run_state import RunState, iteration_of

from .plan import Plan, StepDef

NO_ITEM = object()


def loop_item(state: RunState, unit_id: str) -> tuple[Any, int | None]:
    """(item, index) for a loop iteration, (NO_ITEM, None) otherwise."""
    it = iteration_of(unit_id)
    if it is None:
        return NO_ITEM, None
    items = state.steps[it[0]].items or []
    return (items[it[1]] if it[1] < len(items) else None), it[1]


def run_info(state: RunState) -> dict[str, Any]:
    return {"id": state.run_id, "workflow_id": state.workflow_id, "trigger": state.trigger}


def variables(state: RunState, plan: Plan, unit_id: str) -> dict[str, Any]:
    steps = {}
    for sid in plan.steps:
        s = state.steps.get(sid)
        if s is not None:
            steps[sid] = {"output": s.output, "status": s.status}
    out: dict[str, Any] = {"input": state.input_data, "steps": steps, "run": run_info(state)}
    item, index = loop_item(state, unit_id)
    if item is not NO_ITEM:
        out["item"], out["index"] = item, index
    return out


def dispatch_context(state: RunState, sdef: StepDef, unit_id: str) -> dict[str, Any]:
    """StepDispatched.context: the run input, the dependencies' outputs, run info (+ item, index)."""
    deps = {}
    for d in sdef.deps:
        s = state.steps.get(d)
        if s is not None:
            deps[d] = {"output": s.output, "status": s.status}
    ctx: dict[str, Any] = {"input": state.input_data, "steps": deps, "run": run_info(state)}
    item, index = loop_item(state, unit_id)
    if item is not NO_ITEM:
        ctx["item"], ctx["index"] = item, index
    return ctx
