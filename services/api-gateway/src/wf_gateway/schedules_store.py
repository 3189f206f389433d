"""Schedules: reads from the projection, writes as events (SPEC §7).

next_run_at is computed here, from the gateway's clock, with the scheduler's own fire-time code
(wf_scheduler.crontime), so the API and the scheduler can never disagree on when a schedule
fires. Changes append with the schedule stream's version; when the scheduler fired meanwhile the
append conflicts and `retrying` reads again.
"""
from typing import Any

from wf_contracts import events as ev
from wf_contracts.ids import new_id
from wf_contracts.timefmt import iso_z
from wf_platform.eventlog import EventLog
from wf_scheduler.crontime import ScheduleError, check, next_fire, zone

from .auth import Principal
from .commands import append, append_new_stream, now, retrying
from .problems import Problem

_COLS = ("s.id, s.workflow_id, s.cron_expression, s.timezone, s.input_data, s.enabled, s.next_run_at,"
         " s.last_run_at, s.created_at, s.overlap, s.catchup, s.stream_version")
# a schedule is visible while it and its workflow live (a deleted workflow takes its schedules along)
_LIVE = ("FROM schedules s JOIN workflows w ON w.id = s.workflow_id AND w.tenant = s.tenant"
         " WHERE s.tenant = %s AND NOT s.deleted AND NOT w.deleted")
MUTABLE = ("enabled", "cron_expression", "timezone", "input_data", "overlap", "catchup")


def _iso(t) -> str | None:
    return iso_z(t) if t is not None else None


def _view(row) -> tuple[dict[str, Any], int]:
    id_, wf, cron, tz, data, enabled, nxt, last, created, overlap, catchup, version = row
    return ({"id": id_, "workflow_id": wf, "cron_expression": cron, "timezone": tz, "input_data": data,
             "enabled": enabled, "next_run_at": _iso(nxt), "last_run_at": _iso(last), "created_at": iso_z(created),
             "overlap": overlap, "catchup": catchup}, version)


async def get(pool, tenant: str, sched_id: str) -> tuple[dict[str, Any], int]:
    async with pool.connection() as conn:
        row = await (await conn.execute(f"SELECT {_COLS} {_LIVE} AND s.id = %s", (tenant, sched_id))).fetchone()
    if row is None:
        raise Problem(404, f"Schedule '{sched_id}' not found.")
    return _view(row)


async def list_for(pool, tenant: str, wf_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    async with pool.connection() as conn:
        total = (await (await conn.execute(f"SELECT count(*) {_LIVE} AND s.workflow_id = %s",
                                           (tenant, wf_id))).fetchone())[0]
        rows = await (await conn.execute(
            f"SELECT {_COLS} {_LIVE} AND s.workflow_id = %s ORDER BY s.created_at, s.id LIMIT %s OFFSET %s",
            (tenant, wf_id, limit, offset))).fetchall()
    return [_view(r)[0] for r in rows], total


def next_run(cron: str, tz: str, enabled: bool) -> str | None:
    """422 with the reason when the cron expression or zone is wrong; None while disabled."""
    reasons = []
    try:
        check(cron, "UTC")
    except ScheduleError as exc:
        reasons.append(str(exc))
    try:
        zone(tz)
    except ScheduleError as exc:
        reasons.append(str(exc))
    if not reasons:
        try:
            first = next_fire(cron, tz, now())
        except ScheduleError as exc:
            reasons.append(str(exc))
    if reasons:
        raise Problem(422, "; ".join(reasons), errors=reasons)
    return iso_z(first) if enabled else None


async def create(log: EventLog, p: Principal, wf_id: str, body: dict, idem_key: str | None,
                 req_hash: str | None) -> str:
    nxt = next_run(body["cron_expression"], body["timezone"], body["enabled"])
    sched_id = new_id("sched")
    await append_new_stream(log, sched_id, p.tenant, p.key_id, ev.ScheduleCreated(
        schedule_id=sched_id, workflow_id=wf_id, next_run_at=nxt, idempotency_key=idem_key, request_hash=req_hash,
        **{k: body[k] for k in MUTABLE}))
    return sched_id


async def patch(log: EventLog, pool, p: Principal, sched_id: str, changes: dict) -> dict[str, Any]:
    async def attempt() -> dict[str, Any]:
        cur, version = await get(pool, p.tenant, sched_id)
        new = {k: changes.get(k, cur[k]) for k in MUTABLE}
        if new == {k: cur[k] for k in MUTABLE}:
            return cur
        timing = any(new[k] != cur[k] for k in ("enabled", "cron_expression", "timezone"))
        # a new timing starts from now: fires "missed" under the old one are not caught up
        nxt = next_run(new["cron_expression"], new["timezone"], new["enabled"]) if timing else cur["next_run_at"]
        await append(log, sched_id, p.tenant, p.key_id, version,
                     [ev.ScheduleUpdated(schedule_id=sched_id, next_run_at=nxt, **new)])
        return (await get(pool, p.tenant, sched_id))[0]

    return await retrying(attempt)


async def delete(log: EventLog, pool, p: Principal, sched_id: str) -> None:
    async def attempt() -> None:
        _, version = await get(pool, p.tenant, sched_id)
        await append(log, sched_id, p.tenant, p.key_id, version, [ev.ScheduleDeleted(schedule_id=sched_id)])

    await retrying(attempt)
