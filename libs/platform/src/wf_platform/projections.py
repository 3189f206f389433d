"""Projection writers: one function per event family, used inline at append time and by rebuild.

Inline use keeps the REST API read-your-writes; rebuild (wfctl audit replay) runs the same
functions over the whole log, so the two can never drift apart.
"""
import psycopg

from wf_contracts import codec
from wf_contracts import events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.run_state import RunState, next_wakeup, run_view


def _json(value) -> str:
    return codec.encode(value).decode()


async def upsert_run(conn: psycopg.AsyncConnection, state: RunState, previous: RunState | None = None) -> None:
    """The run's projections, written in the transaction of every append to its stream.

    `previous` (the state before this append) lets the orchestrator skip the admission and
    timer rows when they did not change; without it (gateway, scheduler, rebuild) they are
    always written.
    """
    await conn.execute(
        "INSERT INTO runs (id, tenant, workflow_id, status, created_at, doc, stream_version, deleted)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET status = excluded.status, doc = excluded.doc,"
        " stream_version = excluded.stream_version, deleted = excluded.deleted"
        " WHERE runs.stream_version < excluded.stream_version",
        (state.run_id, state.tenant, state.workflow_id, state.status, state.created_at,
         _json(run_view(state)), state.version, state.deleted),
    )
    await upsert_run_schedule(conn, state, previous)


def _slot_phase(state: RunState) -> str:
    if state.deleted or state.finished:
        return "done"
    return "holding" if state.status in ("running", "paused") else "queued"


async def upsert_run_schedule(conn: psycopg.AsyncConnection, state: RunState,
                              previous: RunState | None = None) -> None:
    """The run's row in run_schedule (migration 006): admission phase and next durable timer.

    Both follow from the run's state alone: queued -> waiting for a slot; running or paused ->
    holding one; finished -> done; due_at = next_wakeup(state). Written with the run's own
    events, the row can never disagree with the log (no leaked slot, no lost timer); the
    stream_version guard makes a stale re-application (a rebuild racing live runs) a no-op.
    """
    phase, due = _slot_phase(state), next_wakeup(state)
    if previous is not None and previous.status != "new":
        if _slot_phase(previous) == phase and next_wakeup(previous) == due:
            return
    cap = state.definition.get("max_concurrent_runs")
    cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1 else None
    await conn.execute(
        "INSERT INTO run_schedule (run_id, tenant, workflow_id, phase, wf_cap, due_at, stream_version)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (run_id) DO UPDATE SET phase = excluded.phase, wf_cap = excluded.wf_cap,"
        " due_at = excluded.due_at, claimed_until = NULL, stream_version = excluded.stream_version"
        " WHERE run_schedule.stream_version < excluded.stream_version",
        (state.run_id, state.tenant, state.workflow_id, phase, cap, due, state.version),
    )


async def apply_event(conn: psycopg.AsyncConnection, rec: Recorded) -> None:
    """Projections of non-run events (keys, workflows, idempotency records)."""
    e = rec.event
    match e:
        case ev.KeyCreated():
            await conn.execute(
                "INSERT INTO api_keys (key_id, tenant, name, scopes, key_hash, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key_id) DO NOTHING",
                (e.key_id, e.tenant, e.name, e.scopes, e.key_hash, rec.recorded_at),
            )
            await _idempotency(conn, rec, "key.create", e.idempotency_key, e.request_hash, e.key_id)
        case ev.KeyRevoked():
            await conn.execute("UPDATE api_keys SET revoked = true WHERE key_id = %s", (e.key_id,))
        case ev.WorkflowCreated():
            d = e.definition
            await conn.execute(
                "INSERT INTO workflows (id, tenant, name, description, version, status, trigger_type, tags,"
                " definition, created_at, updated_at, stream_version)"
                " VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                (e.workflow_id, rec.tenant, d.get("name", ""), d.get("description", "") or "", e.status,
                 e.trigger_type, e.tags, _json(d), rec.recorded_at, rec.recorded_at, rec.version),
            )
            await conn.execute(
                "INSERT INTO workflow_versions (workflow_id, version, definition, change_summary, created_at)"
                " VALUES (%s, 1, %s::jsonb, %s, %s)",
                (e.workflow_id, _json(d), e.change_summary, rec.recorded_at),
            )
            await _idempotency(conn, rec, e.idempotency_scope or "workflow.create", e.idempotency_key,
                               e.request_hash, e.workflow_id)
        case ev.WorkflowVersionAdded():
            d = e.definition
            await conn.execute(
                "UPDATE workflows SET version = %s, definition = %s::jsonb, name = %s, description = %s,"
                " trigger_type = coalesce(%s, trigger_type), tags = coalesce(%s, tags),"
                " updated_at = %s, stream_version = %s WHERE id = %s",
                (e.version, _json(d), d.get("name", ""), d.get("description", "") or "", e.trigger_type, e.tags,
                 rec.recorded_at, rec.version, e.workflow_id),
            )
            await conn.execute(
                "INSERT INTO workflow_versions (workflow_id, version, definition, change_summary, created_at)"
                " VALUES (%s, %s, %s::jsonb, %s, %s)",
                (e.workflow_id, e.version, _json(d), e.change_summary, rec.recorded_at),
            )
        case ev.WorkflowStatusChanged():
            await conn.execute(
                "UPDATE workflows SET status = %s, updated_at = %s, stream_version = %s WHERE id = %s",
                (e.status, rec.recorded_at, rec.version, e.workflow_id),
            )
        case ev.WorkflowDeleted():
            await conn.execute(
                "UPDATE workflows SET deleted = true, updated_at = %s, stream_version = %s WHERE id = %s",
                (rec.recorded_at, rec.version, e.workflow_id),
            )
        case ev.ScheduleCreated():
            await conn.execute(
                "INSERT INTO schedules (id, tenant, workflow_id, cron_expression, timezone, input_data, enabled,"
                " overlap, catchup, next_run_at, created_at, stream_version)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)",
                (e.schedule_id, rec.tenant, e.workflow_id, e.cron_expression, e.timezone, _json(e.input_data),
                 e.enabled, e.overlap, e.catchup, e.next_run_at, rec.recorded_at, rec.version),
            )
            await _idempotency(conn, rec, f"schedule:{e.workflow_id}", e.idempotency_key, e.request_hash,
                               e.schedule_id)
        case ev.ScheduleUpdated():
            # disabling drops a fire held back by buffer_one: a disabled schedule starts nothing
            await conn.execute(
                "UPDATE schedules SET cron_expression = %s, timezone = %s, input_data = %s::jsonb, enabled = %s,"
                " overlap = %s, catchup = %s, next_run_at = %s, stream_version = %s,"
                " buffered_fire_at = CASE WHEN %s THEN buffered_fire_at END WHERE id = %s",
                (e.cron_expression, e.timezone, _json(e.input_data), e.enabled, e.overlap, e.catchup,
                 e.next_run_at, rec.version, e.enabled, e.schedule_id),
            )
        case ev.ScheduleDeleted():
            await conn.execute("UPDATE schedules SET deleted = true, buffered_fire_at = NULL, stream_version = %s"
                               " WHERE id = %s", (rec.version, e.schedule_id))
        case ev.ScheduleFired():
            await conn.execute(
                "UPDATE schedules SET next_run_at = %s,"
                " last_run_at = CASE WHEN %s THEN %s::timestamptz ELSE last_run_at END,"
                " buffered_fire_at = CASE WHEN %s THEN %s::timestamptz ELSE buffered_fire_at END,"
                " stream_version = %s WHERE id = %s",
                (e.next_run_at, e.run_id is not None, e.fire_time, e.buffered, e.fire_time, rec.version,
                 e.schedule_id),
            )
        case ev.ScheduleMissed():
            await conn.execute("UPDATE schedules SET next_run_at = %s, stream_version = %s WHERE id = %s",
                               (e.next_run_at, rec.version, e.schedule_id))
        case ev.ScheduleBufferReleased():
            await conn.execute(
                "UPDATE schedules SET buffered_fire_at = NULL,"
                " last_run_at = CASE WHEN %s THEN %s::timestamptz ELSE last_run_at END,"
                " stream_version = %s WHERE id = %s",
                (e.run_id is not None, e.fire_time, rec.version, e.schedule_id),
            )
        case ev.TemplateAdded():
            await conn.execute(
                "INSERT INTO templates (id, tenant, name, description, category, definition, created_at,"
                " stream_version) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
                (e.template_id, rec.tenant, e.name, e.description, e.category, _json(e.definition),
                 rec.recorded_at, rec.version),
            )
            await _idempotency(conn, rec, "template.create", e.idempotency_key, e.request_hash, e.template_id)
        case ev.TemplateDeleted():
            await conn.execute("UPDATE templates SET deleted = true, stream_version = %s WHERE id = %s",
                               (rec.version, e.template_id))
        case ev.RunCreated():
            await _idempotency(conn, rec, f"run:{e.workflow_id}", e.idempotency_key, e.request_hash, e.run_id)


async def _idempotency(conn, rec: Recorded, scope: str, key: str | None, request_hash: str | None,
                       resource_id: str) -> None:
    if key is None:
        return
    # A key is remembered for 24 h (SPEC §1): an older record gives way to the new request. A record
    # still inside the window makes the INSERT fail (unique key), which the appender turns into a
    # concurrency conflict, so two racing requests with one key create one resource.
    await conn.execute(
        "DELETE FROM idempotency WHERE tenant = %s AND scope = %s AND key = %s"
        " AND created_at <= %s - interval '24 hours'",
        (rec.tenant, scope, key, rec.recorded_at),
    )
    await conn.execute(
        "INSERT INTO idempotency (tenant, scope, key, request_hash, resource_id, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (rec.tenant, scope, key, request_hash or "", resource_id, rec.recorded_at),
    )
