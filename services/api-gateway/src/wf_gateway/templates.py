"""Templates (SPEC §7): builtin ones are data (domain/builtin_templates.py), visible to every
tenant; a tenant's own are events on stream tpl_<id>, read from the templates projection."""
import copy
from typing import Any

from wf_contracts import events as ev
from wf_contracts.ids import new_id
from wf_contracts.timefmt import iso_z
from wf_platform.eventlog import EventLog

from .auth import Principal
from .commands import append_new_stream
from .domain.builtin_templates import BUILTIN_BY_ID, builtin_templates
from .problems import Problem

_COLS = "id, name, description, category, definition, created_at"


def _tpl(row) -> dict[str, Any]:
    id_, name, desc, category, definition, created = row
    return {"id": id_, "name": name, "description": desc, "category": category, "is_builtin": False,
            "definition": definition, "created_at": iso_z(created)}


async def add(log: EventLog, p: Principal, name: str, description: str, category: str, definition: dict,
              idem_key: str | None, req_hash: str | None) -> str:
    tpl_id = new_id("tpl")
    await append_new_stream(log, tpl_id, p.tenant, p.key_id, ev.TemplateAdded(
        template_id=tpl_id, name=name, description=description, category=category, definition=definition,
        idempotency_key=idem_key, request_hash=req_hash))
    return tpl_id


async def get(pool, tenant: str, tpl_id: str) -> dict[str, Any]:
    if tpl_id in BUILTIN_BY_ID:
        return copy.deepcopy(BUILTIN_BY_ID[tpl_id])
    async with pool.connection() as conn:
        row = await (await conn.execute(
            f"SELECT {_COLS} FROM templates WHERE id = %s AND tenant = %s AND NOT deleted", (tpl_id, tenant),
        )).fetchone()
    if row is None:
        raise Problem(404, f"Template '{tpl_id}' not found.")
    return _tpl(row)


async def list_templates(pool, tenant: str, category: str | None, is_builtin: bool | None, limit: int,
                         offset: int) -> tuple[list[dict], int]:
    """Builtin templates first (by category, name), then the tenant's own, newest first."""
    builtins = [] if is_builtin is False else [
        copy.deepcopy(t) for t in builtin_templates() if category is None or t["category"] == category]
    items = builtins[offset:offset + limit]
    own_total = 0
    if is_builtin is not True:
        where, args = "tenant = %s AND NOT deleted", [tenant]
        if category is not None:
            where += " AND category = %s"
            args.append(category)
        own_offset = max(0, offset - len(builtins))
        async with pool.connection() as conn:
            own_total = (await (await conn.execute(f"SELECT count(*) FROM templates WHERE {where}", args)
                                ).fetchone())[0]
            if len(items) < limit:
                rows = await (await conn.execute(
                    f"SELECT {_COLS} FROM templates WHERE {where} ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                    [*args, limit - len(items), own_offset],
                )).fetchall()
                items += [_tpl(r) for r in rows]
    return items, len(builtins) + own_total
