"""State as it was right after a given event (?as_of=<seq>), folded from the log, never a snapshot."""
from typing import Any

from wf_contracts.run_state import fold, run_view
from wf_contracts.workflow_state import fold_workflow

from .eventlog import EVENT_COLUMNS, recorded_from_row


async def _stream_until(pool, stream: str, tenant: str, as_of: int) -> list:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = %s AND tenant = %s AND seq <= %s ORDER BY version",
            (stream, tenant, as_of),
        )
        return [recorded_from_row(r) for r in await cur.fetchall()]


async def run_as_of(pool, tenant: str, run_id: str, as_of: int) -> dict[str, Any] | None:
    recs = await _stream_until(pool, run_id, tenant, as_of)
    if not recs:
        return None
    state = fold(recs)
    return None if state.deleted or state.status == "new" else run_view(state)


async def workflow_as_of(pool, tenant: str, wf_id: str, as_of: int) -> dict[str, Any] | None:
    return fold_workflow(await _stream_until(pool, wf_id, tenant, as_of))
