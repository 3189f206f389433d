"""Read side of workflow versions (SPEC §4), from the workflow_versions projection."""
from typing import Any

from wf_contracts.timefmt import iso_z

from .problems import Problem
from .queries import get_workflow


async def list_versions(pool, tenant: str, wf_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    wf = await get_workflow(pool, tenant, wf_id)  # 404 for unknown ids and other tenants'
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT version, change_summary, created_at FROM workflow_versions WHERE workflow_id = %s"
            " ORDER BY version DESC LIMIT %s OFFSET %s", (wf_id, limit, offset),
        )).fetchall()
    items = [{"version": v, "change_summary": s, "created_at": iso_z(c)} for v, s, c in rows]
    return items, wf["version"]


async def get_version(pool, tenant: str, wf_id: str, version: int) -> dict[str, Any]:
    await get_workflow(pool, tenant, wf_id)
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT version, definition, change_summary, created_at FROM workflow_versions"
            " WHERE workflow_id = %s AND version = %s", (wf_id, version),
        )).fetchone()
    if row is None:
        raise Problem(404, f"Workflow '{wf_id}' has no version {version}.")
    v, d, s, c = row
    return {"version": v, "definition": d, "change_summary": s, "created_at": iso_z(c)}
