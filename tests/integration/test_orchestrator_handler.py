"""The orchestrator's adapter against a real Postgres: replicas with stale caches, racing messages."""
import asyncio

from wf_contracts.messages import StepResult
from wf_contracts.run_state import fold
from wf_orchestrator.handler import RunHandler
from wf_orchestrator.messages import Kick
from wf_platform.eventlog import EventLog

from tests.integration.test_orchestrator_admission import T0, create_run, http_steps


def result_for(state, step_id: str, ok: bool = True) -> StepResult:
    s = state.steps[step_id]
    return StepResult(run_id=state.run_id, tenant="t1", step_id=step_id, attempt=s.attempt,
                      dispatch_id=s.dispatch_id, ok=ok, output={"v": 1})


async def test_a_replica_refused_a_slot_still_handles_a_result_for_the_run(pool):
    log = EventLog(pool)
    blocker, run_id = await create_run(log, http_steps()), await create_run(log, http_steps(2))
    a = RunHandler(log, clock=lambda: T0, max_running=1)
    b = RunHandler(log, clock=lambda: T0, max_running=1)
    await b.handle(blocker, Kick(blocker))
    assert await a.handle(run_id, Kick(run_id)) == []  # no slot: a caches the run as queued
    await b.handle(blocker, result_for(fold(await log.read_stream(blocker)), "s0"))  # blocker done
    await b.handle(run_id, Kick(run_id))  # b starts the run and dispatches s0
    state = fold(await log.read_stream(run_id))
    assert state.steps["s0"].status == "running"
    # the result lands on a, whose cache still says "queued"
    recs = await a.handle(run_id, result_for(state, "s0"))
    assert [r.type for r in recs] == ["step.completed", "step.dispatched"]


async def test_replicas_racing_on_one_result_record_it_once(pool):
    log = EventLog(pool)
    run_id = await create_run(log, http_steps(2))
    replicas = [RunHandler(log, clock=lambda: T0) for _ in range(4)]
    await replicas[0].handle(run_id, Kick(run_id))
    for h in replicas:  # every cache at the same version
        await h.load(run_id)
    r = result_for(fold(await log.read_stream(run_id)), "s0")
    await asyncio.gather(*(h.handle(run_id, r) for h in replicas for _ in range(3)))
    types = [rec.type for rec in await log.read_stream(run_id)]
    assert types.count("step.completed") == 1 and types.count("step.dispatched") == 2
