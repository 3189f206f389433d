"""Gateway read side: answers come from projections, always scoped to the caller's tenant."""
from typing import Any

from wf_contracts.timefmt import iso_z

from .problems import Problem

_WF_COLS = "id, name, description, version, status, trigger_type, tags, definition, created_at, updated_at"


def _wf(row) -> dict[str, Any]:
    id_, name, desc, version, status, trig, tags, definition, created, updated = row
    return {"id": id_, "name": name, "description": desc, "version": version, "status": status,
            "trigger_type": trig, "tags": list(tags), "definition": definition,
            "created_at": iso_z(created), "updated_at": iso_z(updated)}


async def get_workflow(pool, tenant: str, wf_id: str) -> dict[str, Any]:
    return (await workflow_state(pool, tenant, wf_id))[0]


async def workflow_state(pool, tenant: str, wf_id: str) -> tuple[dict[str, Any], int]:
    """The workflow and its stream version (for an append that expects it)."""
    async with pool.connection() as conn:
        row = await (await conn.execute(
            f"SELECT {_WF_COLS}, stream_version FROM workflows WHERE id = %s AND tenant = %s AND NOT deleted",
            (wf_id, tenant),
        )).fetchone()
    if row is None:
        raise Problem(404, f"Workflow '{wf_id}' not found.")
    return _wf(row[:-1]), row[-1]


async def list_workflows(pool, tenant: str, status: str | None, trigger_type: str | None, tag: str | None,
                         limit: int, offset: int) -> tuple[list[dict], int]:
    where, args = ["tenant = %s", "NOT deleted"], [tenant]
    if status:
        where.append("status = %s"); args.append(status)
    if trigger_type:
        where.append("trigger_type = %s"); args.append(trigger_type)
    if tag:
        where.append("%s = ANY(tags)"); args.append(tag)
    cond = " AND ".join(where)
    async with pool.connection() as conn:
        total = (await (await conn.execute(f"SELECT count(*) FROM workflows WHERE {cond}", args)).fetchone())[0]
        rows = await (await conn.execute(
            f"SELECT {_WF_COLS} FROM workflows WHERE {cond} ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            [*args, limit, offset],
        )).fetchall()
    items = []
    for r in rows:
        w = _wf(r)
        w.pop("definition")
        items.append(w)
    return items, total


async def get_run(pool, tenant: str, run_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT doc FROM runs WHERE id = %s AND tenant = %s AND NOT deleted", (run_id, tenant)
        )).fetchone()
    if row is None:
        raise Problem(404, f"Run '{run_id}' not found.")
    return row[0]


async def list_runs(pool, tenant: str, wf_id: str, status: str | None, limit: int, offset: int):
    where, args = ["tenant = %s", "workflow_id = %s", "NOT deleted"], [tenant, wf_id]
    if status:
        where.append("status = %s"); args.append(status)
    cond = " AND ".join(where)
    async with pool.connection() as conn:
        total = (await (await conn.execute(f"SELECT count(*) FROM runs WHERE {cond}", args)).fetchone())[0]
        rows = await (await conn.execute(
            f"SELECT doc FROM runs WHERE {cond} ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            [*args, limit, offset],
        )).fetchall()
    return [r[0] for r in rows], total
