"""The `loop` step (SPEC §6): iterations `<id>[i]` started in item order, at most max_concurrency
at a time, each dispatched to the step-runners (or run inline for condition/wait bodies).

Iterations share the loop's retry and timeout policies; the loop's on_error applies to the
loop as a whole. The rendered items are recorded once (step.started) so every iteration, also
one started after a restart or on another replica, renders from the same list.
"""
from wf_contracts import events as ev
from wf_contracts.run_state import FINISHED_STEP, StepState, iteration_id
from wf_expr import ExpressionError, render

from . import failures, start
from .out import Out
from .plan import Plan, StepDef

MAX_LOOP_ITEMS = 1000  # every iteration is several events in the run's history
ACTIVE = ("running", "waiting")


def start_loop(out: Out, plan: Plan, loop_id: str, sdef: StepDef, values: dict, attempt: int) -> None:
    try:
        items = render(sdef.config.get("items"), values, secret_placeholders=True)
    except ExpressionError as exc:
        failures.step_failed(out, plan, loop_id, str(exc), "template_error", attempt=attempt)
        return
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        failures.step_failed(out, plan, loop_id, f"loop 'items' must be a list, got {kind}", "invalid_config",
                             attempt=attempt)
        return
    if len(items) > MAX_LOOP_ITEMS:
        failures.step_failed(out, plan, loop_id, f"loop 'items' has {len(items)} items; at most "
                             f"{MAX_LOOP_ITEMS} are allowed", "too_many_items", attempt=attempt)
        return
    out.emit(ev.StepStarted(run_id=out.run_id, step_id=loop_id, attempt=attempt, step_type="loop", items=items))
    progress(out, plan, loop_id)


def _settings(sdef: StepDef) -> tuple[int, bool]:
    mc = sdef.config.get("max_concurrency", 1)
    mc = mc if isinstance(mc, int) and not isinstance(mc, bool) and mc >= 1 else 1
    return mc, sdef.config.get("fail_fast", True) is not False


def progress(out: Out, plan: Plan, loop_id: str) -> None:
    """Start what may start, and settle the loop once its iterations are done (or one failed)."""
    loop = out.state.steps[loop_id]
    if loop.status != "running" or loop.items is None:
        return
    sdef = plan.steps[loop_id]
    max_concurrency, fail_fast = _settings(sdef)
    ids = [iteration_id(loop_id, i) for i in range(len(loop.items))]

    def its() -> list[StepState]:
        return [out.state.steps.get(u) or StepState(step_id=u) for u in ids]

    while True:
        current = its()
        failed = [s for s in current if s.status == "failed"]
        if failed and fail_fast:
            for s in current:
                if s.status in ACTIVE:
                    out.emit(ev.StepCancelled(run_id=out.run_id, step_id=s.step_id, reason="fail_fast"))
            failures.step_failed(out, plan, loop_id, f"iteration {failed[0].step_id} failed: {failed[0].error}",
                                 "iteration_failed")
            return
        if out.state.status != "running":
            break  # paused: in-flight iterations finish, no new ones start
        active = sum(1 for s in current if s.status in ACTIVE)
        nxt = next((s.step_id for s in current if s.status == "pending"), None)
        if nxt is None or active >= max_concurrency:
            break
        start.start_unit(out, plan, nxt)
    current = its()
    if not all(s.status in FINISHED_STEP for s in current):
        return
    outputs = [s.output if s.status == "completed" else None for s in current]
    bad = [s for s in current if s.status != "completed"]
    if bad:
        failures.step_failed(out, plan, loop_id, f"{len(bad)} of {len(current)} iterations failed; first: "
                             f"{bad[0].step_id}: {bad[0].error}", "iteration_failed", output=outputs)
    else:
        out.emit(ev.StepCompleted(run_id=out.run_id, step_id=loop_id, attempt=max(loop.attempt, 1),
                                  output=outputs))
