"""A run's state as a pure fold over its events: evolve(state, event) -> state."""
from datetime import datetime
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
    version: int = 0  # stream version of the last folded event (optimistic concurrency)
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN

    def step_defs(self) -> list[dict[str, Any]]:
        return list(self.definition.get("steps", []))


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
            return _step(
                state, e.step_id, status="running", attempt=e.attempt, dispatch_id=event_id,
                started_at=at, completed_at=None, error=None, output=None,
            )
        case ev.StepCompleted() as e:
            return _step(state, e.step_id, status="completed", output=e.output, completed_at=at)
        case ev.StepFailed() as e:
            return _step(state, e.step_id, status="failed", error=e.error, completed_at=at)
        case ev.StepSkipped() as e:
            return _step(state, e.step_id, status="skipped", completed_at=at)
        case ev.StepCancelled() as e:
            return _step(state, e.step_id, status="cancelled", completed_at=at)
        case ev.RunCompleted():
            return replace(state, status="completed", completed_at=at)
        case ev.RunFailed() as e:
            return replace(state, status="failed", error=e.error, completed_at=at)
        case ev.RunCancelled():
            return replace(state, status="cancelled", completed_at=at)
        case ev.RunDeleted():
            return replace(state, deleted=True)
    return state


def fold(events: Iterable[Recorded], state: RunState | None = None) -> RunState:
    state = state or RunState()
    for rec in events:
        state = evolve(state, rec)
    return state


def _iso(t: datetime | None) -> str | None:
    return iso_z(t) if t is not None else None


def _duration(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a).total_seconds(), 6)


def run_view(state: RunState) -> dict[str, Any]:
    """The run object of SPEC §5, rendered from state. Projections store exactly this."""
    order = [s["id"] for s in state.step_defs()]
    step_runs = []
    for step_id in order + [k for k in state.steps if k not in order]:
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
