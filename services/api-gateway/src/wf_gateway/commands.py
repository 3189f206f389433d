"""Gateway write side: turn an accepted request into events, with inline projections."""
import hashlib
from datetime import datetime, timezone
from typing import Any

from wf_contracts import codec
from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent, Recorded
from wf_contracts.ids import new_id
from wf_contracts.run_state import fold
from wf_platform import faults, metrics
from wf_platform.eventlog import ConcurrencyConflict, EventLog  # noqa: F401 (re-exported)
from wf_platform.projections import apply_event, upsert_run

from .auth import Principal, hash_key
from .problems import Problem


def now() -> datetime:
    return datetime.now(timezone.utc)


def request_hash(body: Any) -> str:
    return hashlib.sha256(codec.encode(body)).hexdigest()


async def _project_events(conn, pending: list[Recorded]) -> None:
    for rec in pending:
        await apply_event(conn, rec)


async def append_new_stream(log: EventLog, stream: str, tenant: str, actor: str, event: ev.Event,
                            project=_project_events) -> Recorded:
    recs = await log.append(stream, tenant, 0, [NewEvent(id=new_id("evt"), event=event, actor=actor,
                                                          correlation_id=stream)], now(), project)
    metrics.EVENTS_APPENDED.labels("api-gateway").inc(len(recs))
    return recs[0]


async def ensure_bootstrap_key(log: EventLog, pool, secret: str) -> None:
    h = hash_key(secret)
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT 1 FROM api_keys WHERE key_hash = %s", (h,))).fetchone()
    if row:
        return
    key_id = new_id("key")
    try:
        await append_new_stream(log, key_id, "default", "bootstrap",
                                ev.KeyCreated(key_id=key_id, name="bootstrap", scopes=["admin", "read", "write"],
                                              tenant="default", key_hash=h))
    except ConcurrencyConflict:
        pass  # another replica created it first (unique key_hash)


async def find_idempotent(pool, tenant: str, scope: str, key: str, req_hash: str) -> str | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT request_hash, resource_id FROM idempotency WHERE tenant = %s AND scope = %s AND key = %s",
            (tenant, scope, key),
        )).fetchone()
    if row is None:
        return None
    if row[0] != req_hash:
        raise Problem(409, "This Idempotency-Key was already used with a different request body.")
    return row[1]


async def create_workflow(log: EventLog, p: Principal, definition: dict, status: str, trigger_type: str,
                          tags: list[str], idem_key: str | None, req_hash: str | None) -> str:
    wf_id = new_id("wf")
    await append_new_stream(
        log, wf_id, p.tenant, p.key_id,
        ev.WorkflowCreated(workflow_id=wf_id, definition=definition, status=status, trigger_type=trigger_type,
                           tags=tags, idempotency_key=idem_key, request_hash=req_hash),
    )
    return wf_id


async def start_run(log: EventLog, p: Principal, wf: dict, input_data: dict, trigger: str,
                    idem_key: str | None, req_hash: str | None) -> str:
    if wf["status"] != "active":
        raise Problem(409, f"Workflow is {wf['status']}; runs start only for active workflows.")
    run_id = new_id("run")
    event = ev.RunCreated(run_id=run_id, workflow_id=wf["id"], workflow_version=wf["version"],
                          definition=wf["definition"], input_data=input_data, trigger=trigger,
                          idempotency_key=idem_key, request_hash=req_hash)

    async def project(conn, pending: list[Recorded]) -> None:
        await _project_events(conn, pending)
        await upsert_run(conn, fold(pending))

    await append_new_stream(log, run_id, p.tenant, p.key_id, event, project)
    # crash point for the fault test: committed to the log, nothing published yet
    faults.crash_point("gateway_after_append")
    return run_id
