"""Runs: start, get, list."""
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from .. import commands, queries
from ..auth import Reader, Writer
from ..models import RunAccepted, RunEnvelope, RunList, RunRequest
from ..problems import Problem

router = APIRouter(prefix="/api/workflows", tags=["runs"])


@router.post("/{workflow_id}/run", status_code=202, response_model=RunAccepted)
async def run_workflow(
    request: Request, p: Writer, workflow_id: str, body: RunRequest | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    rt = request.app.state.rt
    body = body or RunRequest()
    wf = await queries.get_workflow(rt.pool, p.tenant, workflow_id)
    scope = f"run:{workflow_id}"
    req_hash = commands.request_hash(body.model_dump()) if idempotency_key else None
    if idempotency_key:
        existing = await commands.find_idempotent(rt.pool, p.tenant, scope, idempotency_key, req_hash)
        if existing:
            return JSONResponse({"run_id": existing}, status_code=202)
    try:
        run_id = await commands.start_run(rt.log, p, wf, body.input_data, body.trigger, idempotency_key, req_hash)
    except commands.ConcurrencyConflict:
        existing = await commands.find_idempotent(rt.pool, p.tenant, scope, idempotency_key or "", req_hash or "")
        if not existing:
            raise Problem(409, "Concurrent update; retry.")
        run_id = existing
    return {"run_id": run_id}


@router.get("/runs/{run_id}", response_model=RunEnvelope)
async def get_run(request: Request, p: Reader, run_id: str):
    return {"run": await queries.get_run(request.app.state.rt.pool, p.tenant, run_id)}


@router.get("/{workflow_id}/runs", response_model=RunList)
async def list_runs(
    request: Request, p: Reader, workflow_id: str, status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
):
    pool = request.app.state.rt.pool
    await queries.get_workflow(pool, p.tenant, workflow_id)
    runs, total = await queries.list_runs(pool, p.tenant, workflow_id, status, limit, offset)
    return {"runs": runs, "total": total}
