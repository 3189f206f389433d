"""Given a schedule, its workflow and the time: which events to record (pure, no I/O, no clock).

A fire's run id is derived from (schedule id, nominal fire time), so whoever decides a fire
names the same run; the adapter appends the run and the schedule's events in one transaction
with the schedule stream's expected version, so a fire is recorded, with its run, exactly once.
"""
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wf_contracts import events as ev
from wf_contracts.timefmt import iso_z

from .crontime import ScheduleError
from .plan import overlap_actions, plan

WORKFLOW_DELETED = "workflow deleted"


def run_id_for(schedule_id: str, fire_time: datetime) -> str:
    digest = hashlib.sha256(f"{schedule_id}|{iso_z(fire_time)}".encode()).hexdigest()
    return f"run_{digest[:24]}"


@dataclass(frozen=True)
class ScheduleRow:
    id: str
    tenant: str
    workflow_id: str
    cron_expression: str
    timezone: str
    input_data: dict[str, Any]
    overlap: str
    catchup: str
    next_run_at: datetime | None
    buffered_fire_at: datetime | None
    version: int


@dataclass(frozen=True)
class WorkflowRow:
    status: str
    version: int
    definition: dict[str, Any]
    deleted: bool


@dataclass
class Decision:
    schedule: ScheduleRow
    events: list[ev.Event] = field(default_factory=list)       # for the schedule's stream, in order
    runs: list[ev.RunCreated] = field(default_factory=list)    # each opens its own run stream
    started: list[datetime] = field(default_factory=list)      # nominal times of fires that ran now


def _blocked(wf: WorkflowRow | None) -> str | None:
    if wf is None or wf.deleted:
        return WORKFLOW_DELETED
    return None if wf.status == "active" else f"workflow is {wf.status}"


def _run(s: ScheduleRow, wf: WorkflowRow, fire_time: datetime) -> ev.RunCreated:
    return ev.RunCreated(
        run_id=run_id_for(s.id, fire_time), workflow_id=s.workflow_id, workflow_version=wf.version,
        definition=wf.definition, input_data=s.input_data, trigger="schedule",
        metadata={"schedule_id": s.id, "fire_time": iso_z(fire_time)},
    )


def decide(s: ScheduleRow, wf: WorkflowRow | None, running: bool, now: datetime) -> Decision:
    """running: a run this schedule started earlier has not finished yet."""
    d = Decision(s)
    blocked = _blocked(wf)
    buffered = s.buffered_fire_at is not None
    # a held fire goes first, once the run it waited for has finished
    if buffered and not running:
        t = s.buffered_fire_at
        if blocked:
            d.events.append(ev.ScheduleBufferReleased(schedule_id=s.id, fire_time=iso_z(t), run_id=None,
                                                      skipped_reason=blocked))
        else:
            d.runs.append(_run(s, wf, t))
            d.events.append(ev.ScheduleBufferReleased(schedule_id=s.id, fire_time=iso_z(t),
                                                      run_id=run_id_for(s.id, t)))
            running = True
        buffered = False
    try:
        p = plan(s.cron_expression, s.timezone, s.next_run_at, now, s.catchup) if s.next_run_at else None
    except ScheduleError as exc:
        # e.g. a zone that a tzdata update removed: park the schedule (no next_run_at) and say why;
        # a PATCH with a working cron or zone sets it going again
        d.events.append(ev.ScheduleFired(schedule_id=s.id, fire_time=iso_z(s.next_run_at), run_id=None,
                                         next_run_at=None, skipped_reason=f"schedule cannot fire: {exc}"))
        p = None
    if p is not None:
        missed = {"missed": [iso_z(t) for t in p.missed],
                  "missed_since": iso_z(p.missed_since) if p.missed_since else None}
        nxt = iso_z(p.next_run_at)
        if not p.run:
            d.events.append(ev.ScheduleMissed(schedule_id=s.id, next_run_at=nxt, **missed))
        for i, a in enumerate(overlap_actions(p.run, s.overlap, running, buffered)):
            extra = missed if i == 0 else {}  # the gap is told once, on the first fire after it
            t = iso_z(a.fire_time)
            if blocked:
                d.events.append(ev.ScheduleFired(schedule_id=s.id, fire_time=t, run_id=None, next_run_at=nxt,
                                                 skipped_reason=blocked, **extra))
            elif a.kind == "run":
                d.runs.append(_run(s, wf, a.fire_time))
                d.started.append(a.fire_time)
                d.events.append(ev.ScheduleFired(schedule_id=s.id, fire_time=t, run_id=run_id_for(s.id, a.fire_time),
                                                 next_run_at=nxt, **extra))
            elif a.kind == "buffer":
                d.events.append(ev.ScheduleFired(schedule_id=s.id, fire_time=t, run_id=None, next_run_at=nxt,
                                                 buffered=True, **extra))
            else:
                d.events.append(ev.ScheduleFired(schedule_id=s.id, fire_time=t, run_id=None, next_run_at=nxt,
                                                 skipped_reason=a.reason, **extra))
    if blocked == WORKFLOW_DELETED:
        # SPEC §3: a workflow's schedules go with it; the gateway deletes them, this catches stragglers
        d.events.append(ev.ScheduleDeleted(schedule_id=s.id, reason=WORKFLOW_DELETED))
    return d
