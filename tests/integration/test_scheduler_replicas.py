"""Exactly one run per schedule per fire time with two scheduler replicas on a real Postgres
(issue 7). Time is a ManualClock both replicas share: the test moves it a minute at a time."""
import asyncio
from datetime import timedelta

from wf_contracts.timefmt import iso_z
from wf_platform.audit import verify_log
from wf_platform.db import open_pool
from wf_platform.eventlog import EventLog
from wf_scheduler.clock import ManualClock
from wf_scheduler.decide import run_id_for
from wf_scheduler.firing import Firer

from tests.integration.test_scheduler_support import NOW, fired, seed_schedule, seed_schedules, seed_workflow

SCHEDULES, MINUTES = 500, 4


async def test_two_replicas_500_per_minute_schedules_one_run_each_per_minute(migrated_db):
    pools = [await open_pool(migrated_db, min_size=2, max_size=6) for _ in range(2)]
    try:
        log = EventLog(pools[0])
        wf_id = await seed_workflow(log)
        t0 = NOW + timedelta(minutes=1)
        await seed_schedules(log, wf_id, SCHEDULES, t0)
        clock = ManualClock(NOW)
        replicas = [Firer(p, clock, batch=40) for p in pools]
        for minute in range(MINUTES):
            clock.set(t0 + timedelta(minutes=minute, seconds=0.4))
            # two replicas, two workers each, all at once: they contend for the same due rows
            handled = await asyncio.gather(*(r.tick() for r in replicas for _ in range(2)))
            assert sum(handled) == SCHEDULES, f"minute {minute}: each due schedule is handled exactly once"
            # a replica that comes late (or again) finds nothing left to do
            assert await replicas[0].tick() == 0 and await replicas[1].tick() == 0

        async with pools[0].connection() as conn:
            created = await (await conn.execute(
                "SELECT stream, payload::jsonb->'metadata' FROM events WHERE type = 'run.created'")).fetchall()
            fires = await (await conn.execute(
                "SELECT stream, payload::jsonb->>'fire_time', payload::jsonb->>'run_id' FROM events"
                " WHERE type = 'schedule.fired'")).fetchall()
            per_schedule = await (await conn.execute(
                "SELECT doc->'metadata'->>'schedule_id', count(*), count(DISTINCT doc->'metadata'->>'fire_time')"
                " FROM runs GROUP BY 1")).fetchall()
        total = SCHEDULES * MINUTES
        assert len(created) == total and len({s for s, _ in created}) == total
        assert len(fires) == total and len({(s, t) for s, t, _ in fires}) == total
        expected_times = {iso_z(t0 + timedelta(minutes=m)) for m in range(MINUTES)}
        assert {t for _, t, _ in fires} == expected_times
        # the run each fire names is the one derived from (schedule, fire time), and it exists
        assert all(r == run_id_for(s, _parse(t)) for s, t, r in fires)
        assert {r for _, _, r in fires} == {s for s, _ in created}
        assert len(per_schedule) == SCHEDULES and all(n == MINUTES == d for _, n, d in per_schedule)
        assert (await verify_log(pools[0])).ok
    finally:
        for p in pools:
            await p.close()


async def test_a_run_that_already_exists_is_not_created_again(pool):
    """An older scheduler appended runs separately from the fire: the fire just names that run."""
    from wf_scheduler.decide import ScheduleRow  # noqa: F401 (documents what the row holds)
    from wf_contracts import events as ev
    from tests.integration.test_scheduler_support import append

    log = EventLog(pool)
    wf_id = await seed_workflow(log)
    t0 = NOW + timedelta(minutes=1)
    sched = await seed_schedule(log, wf_id, t0)
    rid = run_id_for(sched, t0)
    await append(log, rid, "t1", 0, ev.RunCreated(run_id=rid, workflow_id=wf_id, workflow_version=1,
                                                  definition={"name": "x", "steps": []}, trigger="schedule"))
    firer = Firer(pool, ManualClock(t0 + timedelta(seconds=1)))
    assert await firer.tick() == 1
    [f] = await fired(pool, sched)
    assert f.run_id == rid
    async with pool.connection() as conn:
        n = (await (await conn.execute("SELECT count(*) FROM events WHERE stream = %s", (rid,))).fetchone())[0]
    assert n == 1


def _parse(s: str):
    from datetime import datetime

    return datetime.fromisoformat(s.replace("Z", "+00:00"))


async def test_a_schedule_whose_stream_moved_on_does_not_hold_back_the_others(pool):
    """If a schedule's stream was appended to without its projection (it must not be, but), its
    fire conflicts; the batch is retried one schedule at a time, so the others still fire."""
    from wf_contracts import events as ev
    from wf_contracts.envelope import NewEvent
    from wf_contracts.ids import new_id

    log = EventLog(pool)
    wf_id = await seed_workflow(log)
    t0 = NOW + timedelta(minutes=1)
    good = [await seed_schedule(log, wf_id, t0) for _ in range(3)]
    bad = await seed_schedule(log, wf_id, t0)
    await log.append(bad, "t1", 1, [NewEvent(id=new_id("evt"), event=ev.ScheduleDeleted(schedule_id=bad),
                                             actor="test")], NOW)  # no projection: the row still says version 1
    firer = Firer(pool, ManualClock(t0 + timedelta(seconds=1)))
    await firer.tick()
    for s in good:
        assert [f.run_id for f in await fired(pool, s)] == [run_id_for(s, t0)]
    async with pool.connection() as conn:
        runs = (await (await conn.execute("SELECT count(*) FROM runs")).fetchone())[0]
    assert runs == 3, "the conflicting schedule's run was rolled back with its fire"
