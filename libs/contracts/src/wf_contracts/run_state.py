"""A run's state as a pure fold over its events: evolve(state, event) -> state.

Loop iterations are units of their own in ``steps``, keyed ``"<loop_id>[<index>]"``.
``next_wakeup`` derives the run's next durable timer from the state alone, so the timers
projection written beside every append can always be rebuilt from the log.
"""
from datetime import datetime, timedelta
from typing import Any, Iterable

import msgspec
from msgspec.structs import replace

from . import events as ev
from .envelope import Recorded
from .timefmt import iso_z

# Allowed run status moves are data, not scattered ifs (SPEC §5).
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"queued"}),
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"completed", "failed", "cancelled", "paused"}),
    "paused": frozenset({"running", "cancelled", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
FINISHED_RUN = frozenset({"completed", "failed", "cancelled"})
FINISHED_STEP = frozenset({"completed", "failed", "skipped", "cancelled"})


def can_move(current: str, target: str) -> bool:
    return target in RUN_TRANSITIONS.get(current, frozenset())


class StepState(msgspec.Struct, frozen=True, kw_only=True):
    step_id: str
    status: str = "pending"
    attempt: int = 0
    dispatch_id: str | None = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    wait: str | None = None             # while waiting: duration | until | condition | approval | retry
    wake_at: datetime | None = None     # durable timer of a waiting step
    timeout_at: datetime | None = None  # condition waits give up here
    deadline: datetime | None = None    # a running attempt without a result by then has timed out
    items: list[Any] | None = None      # loops: the rendered items


class RunState(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str = ""
    tenant: str = ""
    workflow_id: str = ""
    workflow_version: int = 0
    definition: dict[str, Any] = {}
    status: str = "new"
    trigger: str = "manual"
    input_data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    steps: dict[str, StepState] = {}
    deleted: bool = False
    cancel_requested: bool = False
    resume_request: dict[str, Any] | None = None  # {"id", "from_step"} until a run.resumed answers it
    paused_step: str | None = None
    pause_reason: str | None = None
    version: int = 0  # stream version of the last folded event (optimistic concurrency)
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN

    def step_defs(self) -> list[dict[str, Any]]:
        return list(self.definition.get("steps", []))


def iteration_id(loop_id: str, index: int) -> str:
    return f"{loop_id}[{index}]"


def iteration_of(unit_id: str) -> tuple[str, int] | None:
    """(loop id, index) for a loop iteration's id, None for a step id."""
    if not unit_id.endswith("]") or "[" not in unit_id:
        return None
    loop_id, _, rest = unit_id.partition("[")
    try:
        return loop_id, int(rest[:-1])
    except ValueError:
        return None


def _ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _step(state: RunState, step_id: str, **changes: Any) -> RunState:
    current = state.steps.get(step_id) or StepState(step_id=step_id)
    steps = dict(state.steps)
    steps[step_id] = replace(current, **changes)
    return replace(state, steps=steps)


def evolve(state: RunState, rec: Recorded) -> RunState:
    state = apply(state, rec.event, rec.recorded_at, rec.id, rec.tenant)
    return replace(state, version=rec.version, last_seq=rec.seq)


def apply(state: RunState, event: ev.Event, at: datetime, event_id: str, tenant: str = "") -> RunState:
    """One event's effect on the state; evolve() adds the log position."""
    match event:
        case ev.RunCreated() as e:
            steps = {s["id"]: StepState(step_id=s["id"]) for s in e.definition.get("steps", [])}
            return replace(
                state,
                run_id=e.run_id,
                tenant=tenant,
                workflow_id=e.workflow_id,
                workflow_version=e.workflow_version,
                definition=e.definition,
                status="queued",
                trigger=e.trigger,
                input_data=e.input_data,
                metadata=e.metadata,
                created_at=at,
                steps=steps,
            )
        case ev.RunStarted():
            return replace(state, status="running", started_at=state.started_at or at)
        case ev.StepDispatched() as e:
            prev = state.steps.get(e.step_id)
            # a retry keeps the step's first start, so duration covers every attempt
            keep = prev is not None and prev.wait == "retry" and prev.started_at is not None
            return _step(
                state, e.step_id, status="running", attempt=e.attempt, dispatch_id=event_id,
                started_at=prev.started_at if keep else at, completed_at=None, error=None, output=None,
                wait=None, wake_at=None, timeout_at=None, deadline=_ts(e.deadline),
            )
        case ev.StepStarted() as e:
            if e.items is not None:
                state = _reset_iterations(state, e.step_id, len(e.items))
            prev = state.steps.get(e.step_id)
            keep = prev is not None and prev.wait == "retry" and prev.started_at is not None
            return _step(
                state, e.step_id, status="running", attempt=e.attempt, dispatch_id=None,
                started_at=prev.started_at if keep else at, completed_at=None, error=None, output=None,
                wait=None, wake_at=None, timeout_at=None, deadline=None, items=e.items,
            )
        case ev.StepWaiting() as e:
            prev = state.steps.get(e.step_id)
            return _step(state, e.step_id, status="waiting", attempt=e.attempt, wait=e.reason,
                         wake_at=_ts(e.wake_at), timeout_at=_ts(e.timeout_at), deadline=None,
                         started_at=(prev.started_at if prev and prev.started_at else at))
        case ev.StepRetrying() as e:
            return _step(state, e.step_id, status="waiting", wait="retry", wake_at=_ts(e.retry_at),
                         error=e.error, dispatch_id=None, deadline=None, timeout_at=None)
        case ev.StepCompleted() as e:
            return _step(state, e.step_id, status="completed", output=e.output, completed_at=at,
                         attempt=max(e.attempt, _attempt(state, e.step_id)), **_CLEAR)
        case ev.StepFailed() as e:
            return _step(state, e.step_id, status="failed", error=e.error, output=e.output, completed_at=at,
                         attempt=max(e.attempt, _attempt(state, e.step_id)), **_CLEAR)
        case ev.StepSkipped() as e:
            return _step(state, e.step_id, status="skipped", completed_at=at, **_CLEAR)
        case ev.StepCancelled() as e:
            return _step(state, e.step_id, status="cancelled", completed_at=at, **_CLEAR)
        case ev.RunPaused() as e:
            return replace(state, status="paused", paused_step=e.step_id, pause_reason=e.reason,
                           resume_request=None)
        case ev.RunResumed() as e:
            for sid in e.reset:
                state = _reset_unit(state, sid)
            return replace(state, status="running", paused_step=None, pause_reason=None, resume_request=None)
        case ev.RunCancelRequested():
            return replace(state, cancel_requested=True)
        case ev.RunResumeRequested() as e:
            return replace(state, resume_request={"id": event_id, "from_step": e.from_step})
        case ev.RunCompleted():
            return replace(state, status="completed", completed_at=at)
        case ev.RunFailed() as e:
            return replace(state, status="failed", error=e.error, completed_at=at)
        case ev.RunCancelled():
            return replace(state, status="cancelled", completed_at=at)
        case ev.RunDeleted():
            return replace(state, deleted=True)
    return state


def _attempt(state: RunState, unit_id: str) -> int:
    s = state.steps.get(unit_id)
    return s.attempt if s is not None else 0


_CLEAR = {"wait": None, "wake_at": None, "timeout_at": None, "deadline": None}


def _reset_unit(state: RunState, unit_id: str) -> RunState:
    """Back to pending for another run of it; the attempt count goes on so keys never repeat."""
    prev = state.steps.get(unit_id) or StepState(step_id=unit_id)
    steps = dict(state.steps)
    steps[unit_id] = StepState(step_id=unit_id, attempt=prev.attempt)
    prefix = unit_id + "["
    for sid, s in state.steps.items():
        if sid.startswith(prefix):
            steps[sid] = StepState(step_id=sid, attempt=s.attempt)
    return replace(state, steps=steps)


def _reset_iterations(state: RunState, loop_id: str, count: int) -> RunState:
    """A loop (re)starts: earlier iterations go back to pending (attempts kept), extra ones go."""
    steps = dict(state.steps)
    for sid, s in state.steps.items():
        it = iteration_of(sid)
        if it is None or it[0] != loop_id:
            continue
        if it[1] < count:
            steps[sid] = StepState(step_id=sid, attempt=s.attempt)
        else:
            del steps[sid]
    return replace(state, steps=steps)


def fold(events: Iterable[Recorded], state: RunState | None = None) -> RunState:
    state = state or RunState()
    for rec in events:
        state = evolve(state, rec)
    return state


def run_deadline(state: RunState) -> datetime | None:
    """The whole-run deadline (definition timeout_seconds), counted from the start."""
    limit = state.definition.get("timeout_seconds")
    if state.started_at is None or not isinstance(limit, (int, float)) or isinstance(limit, bool):
        return None
    return state.started_at + timedelta(seconds=float(limit))


def next_wakeup(state: RunState) -> datetime | None:
    """When the orchestrator must look at this run again without any message arriving.

    Mirrors what decide() acts on for a tick: the run deadline, attempt deadlines, wait timers
    and, only while running, retry timers (a paused run starts no new attempt).
    """
    if state.status not in ("running", "paused") or state.deleted:
        return None
    times: list[datetime] = []
    deadline = run_deadline(state)
    if deadline is not None:
        times.append(deadline)
    for s in state.steps.values():
        if s.status == "running" and s.deadline is not None:
            times.append(s.deadline)
        elif s.status == "waiting" and s.wake_at is not None:
            if s.wait != "retry" or state.status == "running":
                times.append(s.wake_at)
    return min(times) if times else None


def _iso(t: datetime | None) -> str | None:
    return iso_z(t) if t is not None else None


def _duration(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a).total_seconds(), 6)


def run_view(state: RunState) -> dict[str, Any]:
    """The run object of SPEC §5, rendered from state. Projections store exactly this."""
    order: list[str] = []
    iterations: dict[str, list[tuple[int, str]]] = {}
    for sid in state.steps:
        it = iteration_of(sid)
        if it is not None:
            iterations.setdefault(it[0], []).append((it[1], sid))
    for sid in [s["id"] for s in state.step_defs()] + [k for k in state.steps]:
        if sid in order or iteration_of(sid) is not None:
            continue
        order.append(sid)
        order.extend(unit for _, unit in sorted(iterations.get(sid, [])))  # iterations follow their loop
    step_runs = []
    for step_id in order:
        s = state.steps.get(step_id)
        if s is None:
            continue
        step_runs.append(
            {
                "step_id": s.step_id,
                "status": s.status,
                "attempt": s.attempt,
                "output": s.output,
                "error": s.error,
                "started_at": _iso(s.started_at),
                "completed_at": _iso(s.completed_at),
                "duration_seconds": _duration(s.started_at, s.completed_at),
            }
        )
    return {
        "id": state.run_id,
        "workflow_id": state.workflow_id,
        "workflow_version": state.workflow_version,
        "status": state.status,
        "trigger": state.trigger,
        "input_data": state.input_data,
        "metadata": state.metadata,
        "created_at": _iso(state.created_at),
        "started_at": _iso(state.started_at),
        "completed_at": _iso(state.completed_at),
        "duration_seconds": _duration(state.started_at, state.completed_at),
        "error": state.error,
        "step_runs": step_runs,
    }
