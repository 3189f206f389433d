"""Concurrency slots and durable timers against a real Postgres (issue 4).

Several handlers (as several orchestrator replicas would) race to start and finish runs; the
slot count is checked from the log itself, not from the projection under test.
"""
import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent, Recorded
from wf_contracts.ids import new_id
from wf_contracts.messages import StepResult
from wf_contracts.run_state import fold
from wf_orchestrator.admission import AdmissionSweeper
from wf_orchestrator.executor import RunExecutor
from wf_orchestrator.handler import RunHandler
from wf_orchestrator.messages import Kick, Tick
from wf_orchestrator.wakeups import TimerPoller
from wf_platform.eventlog import EventLog
from wf_platform.projections import upsert_run

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def http_steps(n: int = 1) -> list[dict]:
    return [{"id": f"s{i}", "type": "http_request", "config": {"url": "https://example.com"},
             **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(n)]


async def create_run(log: EventLog, steps: list[dict], wf_id: str = "wf_a", **defn) -> str:
    """What the gateway does on POST /run: run.created plus its projections, one transaction."""
    run_id = new_id("run")
    created = ev.RunCreated(run_id=run_id, workflow_id=wf_id, workflow_version=1,
                            definition={"name": "t", "steps": steps, **defn})

    async def project(conn, pending: list[Recorded]) -> None:
        await upsert_run(conn, fold(pending))

    await log.append(run_id, "t1", 0, [NewEvent(id=new_id("evt"), event=created, actor="test")], T0, project)
    return run_id


async def holding(pool) -> set[str]:
    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT run_id FROM run_schedule WHERE phase = 'holding'")).fetchall()
    return {r[0] for r in rows}


async def started_in_log(log: EventLog, run_ids) -> set[str]:
    out = set()
    for rid in run_ids:
        st = fold(await log.read_stream(rid))
        if st.status in ("running", "paused"):
            out.add(rid)
    return out


async def finish(handler: RunHandler, log: EventLog, run_id: str) -> None:
    st = fold(await log.read_stream(run_id))
    for sid, s in st.steps.items():
        if s.status == "running":
            await handler.handle(run_id, StepResult(run_id=run_id, tenant="t1", step_id=sid, attempt=s.attempt,
                                                    dispatch_id=s.dispatch_id, ok=True))


class Optimist(RunHandler):
    """Skips the pre-check, so only wf_admit inside the append stands between a run and a slot."""

    async def _may_start(self, run_id: str) -> bool:
        return True


async def start_order(pool, run_ids) -> list[str]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT stream FROM events WHERE type = 'run.started' AND stream = ANY(%s) ORDER BY seq",
            (list(run_ids),))).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("handler", [RunHandler, Optimist])
async def test_replicas_racing_never_exceed_the_limit_and_start_runs_in_arrival_order(pool, handler):
    log = EventLog(pool)
    runs = [await create_run(log, http_steps()) for _ in range(12)]
    replicas = [handler(log, clock=lambda: T0, max_running=5) for _ in range(3)]
    shuffled = runs[:]
    random.Random(7).shuffle(shuffled)
    # every replica tries to start every run at once, in a shuffled order
    await asyncio.gather(*(h.handle(r, Kick(r)) for h in replicas for r in shuffled))
    started = await started_in_log(log, runs)
    assert len(started) <= 5
    assert await holding(pool) == started
    # the sweeps of all replicas fill the free slots, in order
    sweepers = [AdmissionSweeper(pool, RunExecutor(h), limit=5) for h in replicas]
    await asyncio.gather(*(s.admit_in_order() for s in sweepers))
    assert await started_in_log(log, runs) == set(runs[:5])
    # finishing runs frees slots for the next in line, never more than the limit
    await finish(replicas[1], log, runs[0])
    await finish(replicas[2], log, runs[3])
    assert await sweepers[0].candidates() == runs[5:7]
    await asyncio.gather(*(h.handle(r, Kick(r)) for h in replicas for r in runs[5:]),
                         *(s.admit_in_order() for s in sweepers))
    started = await started_in_log(log, runs)
    assert started == {runs[1], runs[2], runs[4], runs[5], runs[6]}
    assert await holding(pool) == started
    assert await start_order(pool, runs) == runs[:7]  # run.started in the log, in arrival order


async def test_workflow_cap_and_a_newer_run_of_another_workflow(pool):
    log = EventLog(pool)
    capped = [await create_run(log, http_steps(), wf_id="wf_capped", max_concurrent_runs=1) for _ in range(3)]
    other = await create_run(log, http_steps(), wf_id="wf_free")
    h = RunHandler(log, clock=lambda: T0, max_running=10)
    for r in [*capped, other]:
        await h.handle(r, Kick(r))
    # one of the capped workflow, and the newer run of another workflow is not held back by it
    assert await started_in_log(log, [*capped, other]) == {capped[0], other}
    await finish(h, log, capped[0])
    sweeper = AdmissionSweeper(pool, RunExecutor(h), limit=10)
    assert await sweeper.candidates() == [capped[1]]  # the next of its workflow, not both
    assert await sweeper.admit_in_order() == 1


async def test_cancel_of_a_running_run_frees_its_slot_in_the_same_transaction(pool):
    log = EventLog(pool)
    a, b = await create_run(log, http_steps()), await create_run(log, http_steps())
    h = RunHandler(log, clock=lambda: T0, max_running=1)
    await h.handle(a, Kick(a))
    assert await h.handle(b, Kick(b)) == []  # no slot: nothing appended, b stays queued
    assert fold(await log.read_stream(b)).status == "queued"
    st = fold(await log.read_stream(a))
    await log.append(a, "t1", st.version, [NewEvent(id=new_id("evt"), event=ev.RunCancelRequested(run_id=a),
                                                    actor="test")], T0)
    await h.handle(a, Kick(a))
    assert fold(await log.read_stream(a)).status == "cancelled"
    assert await holding(pool) == set()
    await h.handle(b, Kick(b))
    assert fold(await log.read_stream(b)).status == "running"


async def test_due_timers_are_claimed_once_and_ticked(pool):
    log = EventLog(pool)
    wait = [{"id": "w", "type": "wait", "config": {"duration_seconds": 30}}]
    run_id = await create_run(log, wait)
    now = {"t": T0}
    h = RunHandler(log, clock=lambda: now["t"], max_running=10)
    await h.handle(run_id, Kick(run_id))
    async with pool.connection() as conn:
        due = (await (await conn.execute("SELECT due_at FROM run_schedule WHERE run_id = %s",
                                          (run_id,))).fetchone())[0]
    assert due == T0 + timedelta(seconds=30)
    ex = RunExecutor(h)
    p1 = TimerPoller(pool, ex, lambda: now["t"])
    p2 = TimerPoller(pool, ex, lambda: now["t"])
    assert await p1.claim() == []  # not due yet
    now["t"] = T0 + timedelta(seconds=30)
    first, second = await asyncio.gather(p1.claim(), p2.claim())
    assert sorted(first + second) == [run_id]  # one replica claimed it
    await h.handle(run_id, Tick(run_id))
    st = fold(await log.read_stream(run_id))
    assert st.status == "completed" and st.steps["w"].output == {"waited_seconds": 30.0}
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT phase, due_at FROM run_schedule WHERE run_id = %s",
                                        (run_id,))).fetchone()
    assert row == ("done", None)


async def test_a_stale_projection_write_never_takes_a_slot_back(pool):
    """A rebuild (or any late writer) applying an older state is ignored by the version guard."""
    log = EventLog(pool)
    run_id = await create_run(log, http_steps())
    h = RunHandler(log, clock=lambda: T0, max_running=10)
    await h.handle(run_id, Kick(run_id))
    running = fold(await log.read_stream(run_id))
    await finish(h, log, run_id)
    assert await holding(pool) == set()
    async with pool.connection() as conn:
        await upsert_run(conn, running)
    assert await holding(pool) == set()
