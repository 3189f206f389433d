"""Postgres side of firing: lock due schedules, read what decide() needs, write its events.

Everything happens in one transaction per batch. The due rows are locked FOR UPDATE SKIP LOCKED,
so replicas split the work instead of colliding, and read under that lock, so a decision is
never based on a stale row. The schedule's events and the runs they start are appended in the
same transaction (wf_append once per stream, with the expected version), so a fire and its run
commit together or not at all: a second replica, or a replica that wakes from a long pause with
an old transaction, can only lose. Projections are written first; wf_append takes the global log
lock, which is then held only for the inserts and the commit (docs/event-log.md).
"""
from datetime import datetime

import psycopg

from wf_contracts import codec
from wf_contracts.envelope import NewEvent
from wf_contracts.ids import new_id
from wf_contracts.run_state import fold
from wf_platform.eventlog import ConcurrencyConflict, is_conflict, pending_records, wire
from wf_platform.projections import apply_event, upsert_run

from .decide import Decision, ScheduleRow, WorkflowRow

ACTOR = "scheduler"
_COLS = ("s.id, s.tenant, s.workflow_id, s.cron_expression, s.timezone, s.input_data, s.overlap, s.catchup,"
         " s.next_run_at, s.buffered_fire_at, s.stream_version")
# must match the partial index runs_schedule_active (008_schedule_runs.sql) word for word
_UNFINISHED = "status NOT IN ('completed', 'failed', 'cancelled') AND NOT deleted"
_UNFINISHED_R = "r.status NOT IN ('completed', 'failed', 'cancelled') AND NOT r.deleted"


def _rows(rows) -> list[ScheduleRow]:
    return [ScheduleRow(*r) for r in rows]


async def lock_due(conn, now: datetime, limit: int) -> list[ScheduleRow]:
    cur = await conn.execute(
        f"SELECT {_COLS} FROM schedules s WHERE s.enabled AND NOT s.deleted AND s.next_run_at <= %s"
        " ORDER BY s.next_run_at LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit))
    return _rows(await cur.fetchall())


async def lock_ids(conn, ids: list[str]) -> list[ScheduleRow]:
    cur = await conn.execute(
        f"SELECT {_COLS} FROM schedules s WHERE s.id = ANY(%s) AND s.enabled AND NOT s.deleted"
        " FOR UPDATE SKIP LOCKED", (ids,))
    return _rows(await cur.fetchall())


async def lock_releasable(conn, limit: int, exclude: list[str]) -> list[ScheduleRow]:
    """Schedules holding a buffered fire whose previous run has finished."""
    cur = await conn.execute(
        f"SELECT {_COLS} FROM schedules s WHERE s.buffered_fire_at IS NOT NULL AND s.enabled AND NOT s.deleted"
        " AND NOT (s.id = ANY(%s)) AND NOT EXISTS (SELECT 1 FROM runs r"
        f" WHERE (r.doc->'metadata'->>'schedule_id') = s.id AND {_UNFINISHED_R})"
        " LIMIT %s FOR UPDATE OF s SKIP LOCKED", (exclude, limit))
    return _rows(await cur.fetchall())


async def lock_orphans(conn, limit: int, exclude: list[str]) -> list[ScheduleRow]:
    """Live schedules of deleted workflows (a schedule created while its workflow was deleted)."""
    cur = await conn.execute(
        f"SELECT {_COLS} FROM schedules s JOIN workflows w ON w.id = s.workflow_id"
        " WHERE NOT s.deleted AND w.deleted AND NOT (s.id = ANY(%s)) LIMIT %s FOR UPDATE OF s SKIP LOCKED",
        (exclude, limit))
    return _rows(await cur.fetchall())


async def workflows(conn, rows: list[ScheduleRow]) -> dict[str, WorkflowRow]:
    """Workflow per schedule id; another tenant's workflow counts as absent."""
    ids = sorted({r.workflow_id for r in rows})
    cur = await conn.execute(
        "SELECT id, tenant, status, version, definition, deleted FROM workflows WHERE id = ANY(%s)", (ids,))
    found = {r[0]: (r[1], WorkflowRow(*r[2:])) for r in await cur.fetchall()}
    out = {}
    for s in rows:
        tenant, wf = found.get(s.workflow_id, (None, None))
        if wf is not None and tenant == s.tenant:
            out[s.id] = wf
    return out


async def running(conn, schedule_ids: list[str]) -> set[str]:
    """The schedules among these that started a run which has not finished."""
    if not schedule_ids:
        return set()
    cur = await conn.execute(
        "SELECT DISTINCT doc->'metadata'->>'schedule_id' FROM runs"
        f" WHERE (doc->'metadata'->>'schedule_id') = ANY(%s) AND {_UNFINISHED}", (schedule_ids,))
    return {r[0] for r in await cur.fetchall()}


async def existing_runs(conn, run_ids: list[str]) -> set[str]:
    """Runs that exist already (e.g. started by an older scheduler that appended them separately)."""
    if not run_ids:
        return set()
    cur = await conn.execute("SELECT stream FROM events WHERE stream = ANY(%s) AND version = 1", (run_ids,))
    return {r[0] for r in await cur.fetchall()}


async def write(conn, now: datetime, decisions: list[Decision], existing: set[str]) -> int:
    """Project and append every decision's events; returns how many events were appended."""
    appends: list[tuple[str, int, str, list[NewEvent]]] = []
    for d in decisions:
        s = d.schedule
        for run in d.runs:
            if run.run_id in existing:
                continue
            item = NewEvent(id=new_id("evt"), event=run, actor=ACTOR, correlation_id=s.id)
            recs = pending_records(run.run_id, s.tenant, 0, [item], now)
            await apply_event(conn, recs[0])
            await upsert_run(conn, fold(recs))
            appends.append((run.run_id, 0, s.tenant, [item]))
        if d.events:
            items = [NewEvent(id=new_id("evt"), event=e, actor=ACTOR, correlation_id=s.id) for e in d.events]
            for rec in pending_records(s.id, s.tenant, s.version, items, now):
                await apply_event(conn, rec)
            appends.append((s.id, s.version, s.tenant, items))
    if appends:
        # one statement for the whole batch: wf_append once per stream, in order (fewer round trips,
        # and the global log lock is taken by this statement only, right before the commit)
        batch = [{"n": n, "stream": st, "expected": ex, "tenant": te, "events": wire(items, now)}
                 for n, (st, ex, te, items) in enumerate(appends)]
        await conn.execute(
            "SELECT a.o_seq FROM jsonb_to_recordset(%s::jsonb)"
            " AS x(n integer, stream text, expected integer, tenant text, events text),"
            " LATERAL wf_append(x.stream, x.expected, x.tenant, x.events::jsonb) a ORDER BY x.n",
            (codec.encode(batch).decode(),))
    return sum(len(a[3]) for a in appends)


def conflict(exc: psycopg.Error) -> ConcurrencyConflict | None:
    return ConcurrencyConflict(str(exc)) if is_conflict(exc) else None
