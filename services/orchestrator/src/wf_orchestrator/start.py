"""Starting one unit (a step or a loop iteration): render, then dispatch or execute inline.

`condition`, `wait` and `loop` run inside the orchestrator (no network hop); every other type
is dispatched to the step-runners with its config rendered. Secrets stay markers for the runner.
"""
from datetime import timedelta

from wf_contracts import events as ev
from wf_contracts.run_state import iteration_of
from wf_contracts.timefmt import iso_z
from wf_expr import ExpressionError, evaluate_bool, render

from . import failures, loops, waits
from .out import Out
from .plan import Plan, StepDef
from .variables import dispatch_context, variables

# A silent runner (crashed and never redelivered, or its result lost) must not leave an attempt
# running forever. With a step timeout the attempt ends a little after it (the runner's own
# timeout answer, which says more, normally arrives first); without one, after a generous
# backstop derived from the step type's own time limit.
TIMEOUT_GRACE_SECONDS = 5.0
_TYPE_TIMEOUTS = {"http_request": 30.0, "webhook": 10.0, "script": 60.0, "agent_task": 300.0}
BACKSTOP_FACTOR, BACKSTOP_EXTRA = 5.0, 30.0
INLINE_TYPES = ("condition", "wait", "loop")


def unit_type(sdef: StepDef, unit_id: str) -> tuple[str, dict]:
    return sdef.body if iteration_of(unit_id) else (sdef.type, sdef.config)


def start_unit(out: Out, plan: Plan, unit_id: str) -> None:
    sdef = plan.unit(unit_id)
    step_type, raw = unit_type(sdef, unit_id)
    attempt = out.state.steps[unit_id].attempt + 1 if unit_id in out.state.steps else 1
    values = variables(out.state, plan, unit_id)
    if step_type == "condition":
        out.emit(ev.StepStarted(run_id=out.run_id, step_id=unit_id, attempt=attempt, step_type=step_type))
        expr = raw.get("expression", "")
        try:
            result = evaluate_bool(expr, values)
        except ExpressionError as exc:
            failures.step_failed(out, plan, unit_id, str(exc), "expression_error")
            return
        branch = "then" if result else "else"
        out.emit(ev.StepCompleted(run_id=out.run_id, step_id=unit_id, attempt=attempt,
                                  output={"result": result, "branch": branch}))
    elif step_type == "wait":
        waits.start_wait(out, plan, unit_id, raw, values, attempt)
    elif step_type == "loop":
        loops.start_loop(out, plan, unit_id, sdef, values, attempt)
    else:
        _dispatch(out, plan, unit_id, sdef, step_type, raw, values, attempt)


def _dispatch(out: Out, plan: Plan, unit_id: str, sdef: StepDef, step_type: str, raw: dict, values: dict,
              attempt: int) -> None:
    try:
        config = render(raw, values, secret_placeholders=True)
    except ExpressionError as exc:
        # a template is deterministic: another attempt would fail the same way
        failures.step_failed(out, plan, unit_id, str(exc), "template_error", attempt=attempt)
        return
    out.emit(ev.StepDispatched(
        run_id=out.run_id, step_id=unit_id, attempt=attempt, step_type=step_type, config=config,
        timeout_seconds=sdef.timeout_seconds, context=dispatch_context(out.state, sdef, unit_id),
        deadline=iso_z(out.now + timedelta(seconds=attempt_limit(sdef, step_type, config))),
    ))


def attempt_limit(sdef: StepDef, step_type: str, config: dict) -> float:
    if sdef.timeout_seconds is not None:
        return sdef.timeout_seconds + TIMEOUT_GRACE_SECONDS
    own = config.get("timeout_seconds")
    numeric = isinstance(own, (int, float)) and not isinstance(own, bool)
    base = float(own) if numeric else _TYPE_TIMEOUTS.get(step_type, 60.0)
    if step_type == "webhook":
        tries = config.get("max_attempts", 5)
        base *= tries if isinstance(tries, int) and not isinstance(tries, bool) and tries > 0 else 5
    return base * BACKSTOP_FACTOR + BACKSTOP_EXTRA


def check_if(out: Out, plan: Plan, sdef: StepDef) -> bool | None:
    """The step-level `if`: True/False, or None when it failed (the step is then failed)."""
    if sdef.if_expr is None:
        return True
    try:
        return evaluate_bool(sdef.if_expr, variables(out.state, plan, sdef.id))
    except ExpressionError as exc:
        failures.step_failed(out, plan, sdef.id, f"'if' {exc}", "expression_error", attempt=1)
        return None
