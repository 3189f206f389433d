"""The `wait` step (SPEC §6): a durable timer in the log, a condition, or an approval.

A duration/until wait records step.waiting with wake_at; the timers projection (next_wakeup)
brings a tick at that time, from whichever replica is alive, after any restart. A condition can
only read run state (input, steps, run), which changes only through this run's own events, so
it is re-evaluated on every decision for the run (at least as often as any poll would notice a
change); its only timer is the optional timeout. Approval pauses the run until resume.
"""
from datetime import datetime, timedelta
from typing import Any

from wf_contracts import events as ev
from wf_contracts.timefmt import iso_z
from wf_expr import ExpressionError, evaluate_bool, render

from . import failures
from .out import Out
from .plan import Plan
from .variables import variables


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def _instant(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        t = datetime.fromisoformat(v.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def start_wait(out: Out, plan: Plan, unit_id: str, raw: dict, values: dict, attempt: int) -> None:
    out.emit(ev.StepStarted(run_id=out.run_id, step_id=unit_id, attempt=attempt, step_type="wait"))
    timed = {k: v for k, v in raw.items() if k != "condition"}  # the condition is CEL, not a template
    try:
        cfg = render(timed, values)
    except ExpressionError as exc:
        failures.step_failed(out, plan, unit_id, str(exc), "template_error")
        return
    if cfg.get("approval") is True:
        out.emit(ev.StepWaiting(run_id=out.run_id, step_id=unit_id, attempt=attempt, reason="approval"))
        if out.state.status == "running":
            out.emit(ev.RunPaused(run_id=out.run_id, step_id=unit_id, reason="approval"))
        return
    if "duration_seconds" in cfg or "until" in cfg:
        if "duration_seconds" in cfg:
            seconds = _number(cfg["duration_seconds"])
            if seconds is None:
                failures.step_failed(out, plan, unit_id, "wait 'duration_seconds' must be a number >= 0",
                                     "invalid_config")
                return
            reason, wake = "duration", out.now + timedelta(seconds=seconds)
        else:
            wake = _instant(cfg["until"])
            if wake is None:
                failures.step_failed(out, plan, unit_id, "wait 'until' must be an RFC 3339 time with a time zone",
                                     "invalid_config")
                return
            reason = "until"
        if wake <= out.now:
            complete(out, unit_id)
        else:
            out.emit(ev.StepWaiting(run_id=out.run_id, step_id=unit_id, attempt=attempt, reason=reason,
                                    wake_at=iso_z(wake)))
        return
    if isinstance(raw.get("condition"), str):
        limit = _number(cfg.get("timeout_seconds"))
        timeout_at = iso_z(out.now + timedelta(seconds=limit)) if limit is not None else None
        try:
            ok = evaluate_bool(raw["condition"], values)
        except ExpressionError as exc:
            failures.step_failed(out, plan, unit_id, str(exc), "expression_error")
            return
        if ok:
            complete(out, unit_id)
        else:
            out.emit(ev.StepWaiting(run_id=out.run_id, step_id=unit_id, attempt=attempt, reason="condition",
                                    wake_at=timeout_at, timeout_at=timeout_at))
        return
    failures.step_failed(out, plan, unit_id, "wait needs one of 'duration_seconds', 'until', 'condition' "
                         "or 'approval: true'", "invalid_config")


def complete(out: Out, unit_id: str) -> None:
    s = out.state.steps[unit_id]
    waited = (out.now - s.started_at).total_seconds() if s.started_at else 0.0
    out.emit(ev.StepCompleted(run_id=out.run_id, step_id=unit_id, attempt=max(s.attempt, 1),
                              output={"waited_seconds": round(max(waited, 0.0), 3)}))


def check_condition(out: Out, plan: Plan, unit_id: str) -> None:
    """Evaluate a waiting condition: complete when true, fail at its timeout, else keep waiting."""
    sdef = plan.unit(unit_id)
    raw = sdef.body[1] if unit_id != sdef.id else sdef.config
    expr = raw.get("condition", "")
    try:
        ok = evaluate_bool(expr, variables(out.state, plan, unit_id))
    except ExpressionError as exc:
        failures.step_failed(out, plan, unit_id, str(exc), "expression_error")
        return
    if ok:
        complete(out, unit_id)
        return
    s = out.state.steps[unit_id]
    if s.timeout_at is not None and out.now >= s.timeout_at:
        limit = (s.timeout_at - s.started_at).total_seconds() if s.started_at else 0.0
        failures.step_failed(out, plan, unit_id, f"wait condition '{expr}' was not met within {limit:g}s",
                             "timeout")


def on_timer(out: Out, plan: Plan, unit_id: str) -> None:
    """A waiting unit whose wake_at has passed."""
    s = out.state.steps[unit_id]
    if s.wait in ("duration", "until"):
        complete(out, unit_id)
    elif s.wait == "condition":
        check_condition(out, plan, unit_id)
