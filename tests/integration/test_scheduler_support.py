"""Helpers for the scheduler's integration tests (no tests here): seed workflows and schedules the
way the gateway does (event + projection in one transaction), finish runs the way the
orchestrator does, and read back what the scheduler recorded."""
import asyncio
from datetime import datetime, timezone

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent, Recorded
from wf_contracts.ids import new_id
from wf_contracts.run_state import fold
from wf_contracts.timefmt import iso_z
from wf_platform.eventlog import EventLog
from wf_platform.projections import apply_event, upsert_run

NOW = datetime(2026, 5, 4, 6, 0, tzinfo=timezone.utc)


async def _project(conn, pending: list[Recorded]) -> None:
    for rec in pending:
        await apply_event(conn, rec)


async def append(log: EventLog, stream: str, tenant: str, expected: int, *events) -> None:
    items = [NewEvent(id=new_id("evt"), event=e, actor="test") for e in events]
    await log.append(stream, tenant, expected, items, NOW, _project)


async def seed_workflow(log: EventLog, tenant: str = "t1", status: str = "active") -> str:
    wf_id = new_id("wf")
    definition = {"name": "scheduled", "steps": [{"id": "a", "type": "http_request", "config": {"url": "x"}}]}
    await append(log, wf_id, tenant, 0, ev.WorkflowCreated(workflow_id=wf_id, definition=definition, status=status))
    return wf_id


async def seed_schedule(log: EventLog, wf_id: str, next_run_at: datetime, cron: str = "* * * * *",
                        tenant: str = "t1", **fields) -> str:
    sched_id = new_id("sched")
    await append(log, sched_id, tenant, 0, ev.ScheduleCreated(
        schedule_id=sched_id, workflow_id=wf_id, cron_expression=cron, next_run_at=iso_z(next_run_at), **fields))
    return sched_id


async def seed_schedules(log: EventLog, wf_id: str, n: int, next_run_at: datetime, **fields) -> list[str]:
    sem = asyncio.Semaphore(16)

    async def one() -> str:
        async with sem:
            return await seed_schedule(log, wf_id, next_run_at, **fields)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def finish_run(log: EventLog, run_id: str) -> None:
    """What the orchestrator would record when the run ends (here: cancelled)."""
    history = await log.read_stream(run_id)
    state = fold(history)

    async def project(conn, pending: list[Recorded]) -> None:
        await upsert_run(conn, fold(pending, state))

    items = [NewEvent(id=new_id("evt"), event=ev.RunCancelled(run_id=run_id), actor="test")]
    await log.append(run_id, state.tenant, state.version, items, NOW, project)


async def schedule_events(pool, sched_id: str) -> list[ev.Event]:
    from wf_contracts import codec

    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT payload FROM events WHERE stream = %s ORDER BY version",
                                         (sched_id,))).fetchall()
    return [codec.decode_event(r[0]) for r in rows]


async def fired(pool, sched_id: str) -> list[ev.Event]:
    return [e for e in await schedule_events(pool, sched_id) if not isinstance(e, ev.ScheduleCreated)]


async def scheduled_runs(pool, sched_id: str) -> list[dict]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT id, status, doc->'metadata'->>'fire_time' FROM runs"
            " WHERE doc->'metadata'->>'schedule_id' = %s ORDER BY 3", (sched_id,))).fetchall()
    return [{"id": r[0], "status": r[1], "fire_time": r[2]} for r in rows]


async def schedule_row(pool, sched_id: str) -> dict:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT next_run_at, last_run_at, buffered_fire_at, enabled, deleted,"
                                 " stream_version FROM schedules WHERE id = %s", (sched_id,))
        r = await cur.fetchone()
    return dict(zip(("next_run_at", "last_run_at", "buffered_fire_at", "enabled", "deleted", "version"), r))
