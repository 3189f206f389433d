"""Workflow commands (SPEC §3-4): create, update, status, delete, rollback. Events only; the
projections are written in the same transaction. Validation happens before any of these."""
from typing import Any

from wf_contracts import events as ev
from wf_contracts.ids import new_id
from wf_platform.eventlog import EventLog

from . import queries
from .auth import Principal
from .commands import append, append_new_stream, retrying
from .domain.diff import strict_equal, summarize
from .problems import Problem

FINISHED_RUN = ("completed", "failed", "cancelled")


async def create(log: EventLog, p: Principal, definition: dict, status: str, trigger_type: str, tags: list[str],
                 idem_key: str | None, req_hash: str | None, *, scope: str | None = None,
                 template_id: str | None = None) -> str:
    wf_id = new_id("wf")
    await append_new_stream(
        log, wf_id, p.tenant, p.key_id,
        ev.WorkflowCreated(workflow_id=wf_id, definition=definition, status=status, trigger_type=trigger_type,
                           tags=tags, idempotency_key=idem_key, request_hash=req_hash, idempotency_scope=scope,
                           template_id=template_id),
    )
    return wf_id


async def update(log: EventLog, pool, p: Principal, wf_id: str, definition: dict, change_summary: str | None,
                 trigger_type: str | None, tags: list[str] | None) -> None:
    """A new version when the definition or a label changed; an identical PUT changes nothing."""
    async def attempt() -> None:
        wf, version = await queries.workflow_state(pool, p.tenant, wf_id)
        new_trigger = trigger_type if trigger_type not in (None, wf["trigger_type"]) else None
        new_tags = tags if tags is not None and tags != wf["tags"] else None
        same_definition = strict_equal(wf["definition"], definition)
        if same_definition and new_trigger is None and new_tags is None:
            return
        summary = change_summary or (summarize(wf["definition"], definition) if not same_definition
                                     else "Changed labels")
        await append(log, wf_id, p.tenant, p.key_id, version, [ev.WorkflowVersionAdded(
            workflow_id=wf_id, version=wf["version"] + 1, definition=definition, change_summary=summary,
            trigger_type=new_trigger, tags=new_tags)])

    await retrying(attempt)


async def rollback(log: EventLog, pool, p: Principal, wf_id: str, target: int, definition: dict) -> None:
    async def attempt() -> None:
        wf, version = await queries.workflow_state(pool, p.tenant, wf_id)
        await append(log, wf_id, p.tenant, p.key_id, version, [ev.WorkflowVersionAdded(
            workflow_id=wf_id, version=wf["version"] + 1, definition=definition,
            change_summary=f"Rolled back to version {target}")])

    await retrying(attempt)


async def change_status(log: EventLog, pool, p: Principal, wf_id: str, status: str) -> None:
    async def attempt() -> None:
        wf, version = await queries.workflow_state(pool, p.tenant, wf_id)
        if wf["status"] != status:  # any status may move to any other (SPEC §3)
            await append(log, wf_id, p.tenant, p.key_id, version,
                         [ev.WorkflowStatusChanged(workflow_id=wf_id, status=status)])

    await retrying(attempt)


async def delete(log: EventLog, pool, p: Principal, wf_id: str) -> None:
    """409 while the workflow has unfinished runs; its schedules are deleted first."""
    async def attempt() -> None:
        _, version = await queries.workflow_state(pool, p.tenant, wf_id)
        if await _has_unfinished_runs(pool, p.tenant, wf_id):
            raise Problem(409, "The workflow has runs that are not finished; cancel them or wait.")
        for sched_id, sched_version in await _schedules(pool, p.tenant, wf_id):
            await append(log, sched_id, p.tenant, p.key_id, sched_version,
                         [ev.ScheduleDeleted(schedule_id=sched_id)])
        await append(log, wf_id, p.tenant, p.key_id, version, [ev.WorkflowDeleted(workflow_id=wf_id)])

    await retrying(attempt)


async def _has_unfinished_runs(pool, tenant: str, wf_id: str) -> bool:
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT 1 FROM runs WHERE workflow_id = %s AND tenant = %s AND NOT deleted"
            " AND status <> ALL(%s) LIMIT 1", (wf_id, tenant, list(FINISHED_RUN)),
        )).fetchone()
    return row is not None


async def _schedules(pool, tenant: str, wf_id: str) -> list[tuple[str, int]]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT id, stream_version FROM schedules WHERE workflow_id = %s AND tenant = %s AND NOT deleted",
            (wf_id, tenant),
        )).fetchall()
    return [(r[0], r[1]) for r in rows]


def named(definition: dict[str, Any], name: str | None) -> dict[str, Any]:
    return {**definition, "name": name} if name else dict(definition)
