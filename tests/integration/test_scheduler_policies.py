"""Overlap, catch-up and workflow-status handling against a real Postgres (issue 7).

No orchestrator runs here, so a scheduled run stays `queued` (unfinished) until the test
finishes it the way the orchestrator would."""
from datetime import timedelta

from wf_contracts import events as ev
from wf_contracts.timefmt import iso_z
from wf_platform.eventlog import EventLog
from wf_platform.rebuild import rebuild
from wf_scheduler.clock import ManualClock
from wf_scheduler.decide import run_id_for
from wf_scheduler.firing import Firer

from tests.integration.test_scheduler_support import (
    NOW, append, finish_run, fired, schedule_row, scheduled_runs, seed_schedule, seed_workflow)

T0 = NOW + timedelta(minutes=1)


def at(minute: int, seconds: float = 0.5):
    return T0 + timedelta(minutes=minute, seconds=seconds)


async def _setup(pool, **fields):
    log = EventLog(pool)
    wf_id = await seed_workflow(log)
    sched = await seed_schedule(log, wf_id, T0, **fields)
    clock = ManualClock(NOW)
    return log, wf_id, sched, clock, Firer(pool, clock)


async def _tick_at(firer: Firer, clock: ManualClock, when) -> int:
    clock.set(when)
    return await firer.tick()


async def test_overlap_allow_starts_a_run_each_fire(pool):
    _, _, sched, clock, firer = await _setup(pool)
    for m in range(3):
        await _tick_at(firer, clock, at(m))
    runs = await scheduled_runs(pool, sched)
    assert [r["fire_time"] for r in runs] == [iso_z(T0 + timedelta(minutes=m)) for m in range(3)]


async def test_overlap_skip(pool):
    log, _, sched, clock, firer = await _setup(pool, overlap="skip")
    await _tick_at(firer, clock, at(0))
    await _tick_at(firer, clock, at(1))  # the first run is still queued: skipped
    [first] = await scheduled_runs(pool, sched)
    await finish_run(log, first["id"])
    await _tick_at(firer, clock, at(2))
    f = await fired(pool, sched)
    assert [(e.run_id is not None, e.skipped_reason) for e in f] == [
        (True, None), (False, "previous run still going (overlap: skip)"), (True, None)]
    assert len(await scheduled_runs(pool, sched)) == 2
    assert (await schedule_row(pool, sched))["last_run_at"] == T0 + timedelta(minutes=2)


async def test_overlap_buffer_one_holds_one_fire_until_the_run_finishes(pool):
    log, _, sched, clock, firer = await _setup(pool, overlap="buffer_one")
    await _tick_at(firer, clock, at(0))
    await _tick_at(firer, clock, at(1))  # held
    await _tick_at(firer, clock, at(2))  # one is held already: skipped
    assert (await schedule_row(pool, sched))["buffered_fire_at"] == T0 + timedelta(minutes=1)
    assert await _tick_at(firer, clock, at(2, 30)) == 0, "the held fire waits while the run goes on"
    [first] = await scheduled_runs(pool, sched)
    await finish_run(log, first["id"])
    assert await _tick_at(firer, clock, at(2, 40)) == 1, "the run finished: the held fire starts"
    events = await fired(pool, sched)
    assert [type(e).__name__ for e in events] == ["ScheduleFired"] * 3 + ["ScheduleBufferReleased"]
    assert events[1].buffered and events[2].skipped_reason.startswith("a fire is already waiting")
    released = events[3]
    assert released.fire_time == iso_z(T0 + timedelta(minutes=1))
    assert released.run_id == run_id_for(sched, T0 + timedelta(minutes=1))
    runs = await scheduled_runs(pool, sched)
    assert [r["fire_time"] for r in runs] == [iso_z(T0), iso_z(T0 + timedelta(minutes=1))]
    row = await schedule_row(pool, sched)
    assert row["buffered_fire_at"] is None and row["last_run_at"] == T0 + timedelta(minutes=1)


async def test_three_hour_outage_latest_fires_once_and_the_rest_is_missed(pool):
    _, _, sched, clock, firer = await _setup(pool)
    assert await _tick_at(firer, clock, at(180, 2)) == 1
    [f] = await fired(pool, sched)
    assert f.fire_time == iso_z(T0 + timedelta(hours=3)) and f.run_id is not None
    assert f.missed_since == iso_z(T0) and len(f.missed) == 100
    assert f.missed[-1] == iso_z(T0 + timedelta(minutes=179))
    assert len(await scheduled_runs(pool, sched)) == 1, "never a burst"
    assert (await schedule_row(pool, sched))["next_run_at"] == T0 + timedelta(minutes=181)


async def test_three_hour_outage_catchup_all_and_none(pool):
    log, wf_id, s_all, clock, firer = await _setup(pool, catchup="all")
    s_none = await seed_schedule(log, wf_id, T0, catchup="none")
    await _tick_at(firer, clock, at(180, 30))
    assert len(await scheduled_runs(pool, s_all)) == 50
    assert await scheduled_runs(pool, s_none) == []
    [missed] = await fired(pool, s_none)
    assert isinstance(missed, ev.ScheduleMissed) and missed.missed_since == iso_z(T0)
    # "none" starts again with the next fire on time
    await _tick_at(firer, clock, at(181))
    assert [r["fire_time"] for r in await scheduled_runs(pool, s_none)] == [iso_z(T0 + timedelta(minutes=181))]


async def test_fires_for_a_paused_workflow_are_skipped_and_a_deleted_workflow_retires_its_schedules(pool):
    log, wf_id, sched, clock, firer = await _setup(pool)
    await append(log, wf_id, "t1", 1, ev.WorkflowStatusChanged(workflow_id=wf_id, status="paused"))
    await _tick_at(firer, clock, at(0))
    [f] = await fired(pool, sched)
    assert f.run_id is None and f.skipped_reason == "workflow is paused"
    await append(log, wf_id, "t1", 2, ev.WorkflowDeleted(workflow_id=wf_id))
    await _tick_at(firer, clock, at(1))
    kinds = [type(e).__name__ for e in await fired(pool, sched)]
    assert kinds == ["ScheduleFired", "ScheduleFired", "ScheduleDeleted"]
    assert (await schedule_row(pool, sched))["deleted"]
    assert await _tick_at(firer, clock, at(2)) == 0


async def test_a_schedule_of_a_deleted_workflow_is_retired_before_it_is_due(pool):
    log, wf_id, sched, clock, firer = await _setup(pool)
    await append(log, wf_id, "t1", 1, ev.WorkflowDeleted(workflow_id=wf_id))
    assert await _tick_at(firer, clock, NOW) == 1  # not due: the sweep finds it
    assert [type(e).__name__ for e in await fired(pool, sched)] == ["ScheduleDeleted"]


async def test_projections_rebuild_identically_from_the_log(pool, migrated_db):
    log, _, sched, clock, firer = await _setup(pool, overlap="buffer_one")
    for m in range(3):
        await _tick_at(firer, clock, at(m))
    await finish_run(log, (await scheduled_runs(pool, sched))[0]["id"])
    await _tick_at(firer, clock, at(3, 1))
    report = await rebuild(migrated_db, schema="wf_sched_rebuild")
    assert report.identical, report.differences
