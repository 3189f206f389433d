"""Gateway write side: turn an accepted request into events, with inline projections.

Every event's actor is the calling key's id. Changes to an existing stream append with the
stream version read from its projection; a conflict means someone else changed it first, and
`retrying` re-reads and decides again.
"""
from datetime import datetime, timezone
from typing import Awaitable, Callable, TypeVar

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent, Recorded
from wf_contracts.ids import new_id
from wf_contracts.run_state import fold
from wf_platform import faults, metrics
from wf_platform.eventlog import ConcurrencyConflict, EventLog
from wf_platform.projections import apply_event, upsert_run

from .auth import Principal, hash_key
from .problems import Problem

T = TypeVar("T")
ATTEMPTS = 5


def now() -> datetime:
    return datetime.now(timezone.utc)


async def project_events(conn, pending: list[Recorded]) -> None:
    for rec in pending:
        await apply_event(conn, rec)


async def append(log: EventLog, stream: str, tenant: str, actor: str, expected: int, events: list[ev.Event],
                 project=project_events) -> list[Recorded]:
    items = [NewEvent(id=new_id("evt"), event=e, actor=actor, correlation_id=stream) for e in events]
    recs = await log.append(stream, tenant, expected, items, now(), project)
    metrics.EVENTS_APPENDED.labels("api-gateway").inc(len(recs))
    return recs


async def append_new_stream(log: EventLog, stream: str, tenant: str, actor: str, event: ev.Event,
                            project=project_events) -> Recorded:
    return (await append(log, stream, tenant, actor, 0, [event], project))[0]


async def retrying(decide_and_append: Callable[[], Awaitable[T]]) -> T:
    """Run a read-decide-append step again when another writer got to the stream first."""
    for _ in range(ATTEMPTS - 1):
        try:
            return await decide_and_append()
        except ConcurrencyConflict:
            continue
    try:
        return await decide_and_append()
    except ConcurrencyConflict:
        raise Problem(409, "The resource changed concurrently; retry the request.")


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


async def start_run(log: EventLog, p: Principal, wf: dict, input_data: dict, trigger: str,
                    idem_key: str | None, req_hash: str | None) -> str:
    if wf["status"] != "active":
        raise Problem(409, f"Workflow is {wf['status']}; runs start only for active workflows.")
    run_id = new_id("run")
    event = ev.RunCreated(run_id=run_id, workflow_id=wf["id"], workflow_version=wf["version"],
                          definition=wf["definition"], input_data=input_data, trigger=trigger,
                          idempotency_key=idem_key, request_hash=req_hash)

    async def project(conn, pending: list[Recorded]) -> None:
        await project_events(conn, pending)
        await upsert_run(conn, fold(pending))

    await append_new_stream(log, run_id, p.tenant, p.key_id, event, project)
    # crash point for the fault test: committed to the log, nothing published yet
    faults.crash_point("gateway_after_append")
    return run_id


# --- run operations (issue 4): recorded as requests on the run stream; the orchestrator reacts ---

def check_input(definition: dict, input_data: dict) -> None:
    """input_data against the pinned definition's input_schema (SPEC §3): 422 with every problem."""
    schema = definition.get("input_schema")
    if schema is None:
        return
    from jsonschema import Draft202012Validator

    problems = []
    try:
        errors = sorted(Draft202012Validator(schema).iter_errors(input_data), key=lambda e: list(map(str, e.path)))
    except Exception as exc:  # an exotic schema (say, an unresolvable $ref) must not become a 500
        raise Problem(422, f"input_data could not be checked against the workflow's input_schema: "
                           f"{type(exc).__name__}") from None
    for err in errors:
        where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.path)
        problems.append(f"input_data{where}: {err.message}")
    if problems:
        raise Problem(422, "input_data does not match the workflow's input_schema.", problems[:50])


async def _run_state(log: EventLog, tenant: str, run_id: str):
    state = fold(await log.read_stream(run_id))
    if state.status == "new" or state.tenant != tenant or state.deleted:
        raise Problem(404, f"Run '{run_id}' not found.")
    return state


async def _append_run(log: EventLog, p: Principal, state, event: ev.Event) -> int:
    async def project(conn, pending: list[Recorded]) -> None:
        await upsert_run(conn, fold(pending, state))

    recs = await append(log, state.run_id, state.tenant, p.key_id, state.version, [event], project)
    return recs[-1].version


async def request_cancel(log: EventLog, p: Principal, run_id: str) -> int:
    """Records run.cancel_requested; answers the stream version after which to look for run.cancelled."""
    async def attempt() -> int:
        state = await _run_state(log, p.tenant, run_id)
        if state.finished:
            raise Problem(409, f"Run is {state.status}; only queued, running or paused runs can be cancelled.")
        if state.cancel_requested:
            return state.version  # already asked: the same answer again
        return await _append_run(log, p, state, ev.RunCancelRequested(run_id=run_id))
    return await retrying(attempt)


async def request_resume(log: EventLog, p: Principal, run_id: str, from_step: str | None) -> int:
    async def attempt() -> int:
        state = await _run_state(log, p.tenant, run_id)
        if state.status != "paused":
            raise Problem(409, f"Run is {state.status}; only paused runs can be resumed.")
        if state.resume_request is not None:
            raise Problem(409, "A resume of this run is already under way.")
        if from_step is not None and from_step not in {s.get("id") for s in state.step_defs()}:
            raise Problem(422, f"Step '{from_step}' is not a step of this run's workflow.",
                          [f"from_step: unknown step '{from_step}'"])
        return await _append_run(log, p, state, ev.RunResumeRequested(run_id=run_id, from_step=from_step))
    return await retrying(attempt)


async def delete_run(log: EventLog, p: Principal, run_id: str) -> None:
    async def attempt() -> None:
        state = await _run_state(log, p.tenant, run_id)
        if not state.finished:
            raise Problem(409, f"Run is {state.status}; only finished runs can be deleted.")
        await _append_run(log, p, state, ev.RunDeleted(run_id=run_id))
    await retrying(attempt)


async def await_run_event(pool, run_id: str, after_version: int, event_type: str, timeout: float = 3.0) -> bool:
    """Wait (briefly) for the orchestrator to record `event_type` on the run after a request."""
    import asyncio
    import time

    end = time.monotonic() + timeout
    while True:
        async with pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT 1 FROM events WHERE stream = %s AND version > %s AND type = %s LIMIT 1",
                (run_id, after_version, event_type),
            )).fetchone()
        if row is not None:
            return True
        if time.monotonic() >= end:
            return False
        await asyncio.sleep(0.02)


from .idempotency import request_hash  # noqa: E402,F401 (re-exported for older callers)
