"""Runs: start, get, list."""
from fastapi import APIRouter, Request

from wf_platform.timetravel import run_as_of

from .. import commands, idempotency, queries
from ..auth import Reader, Writer
from ..problems import Problem
from ..models import RunAccepted, RunEnvelope, RunList, RunRequest
from .params import AsOf, IdempotencyKey, Label, Limit, Offset, RunId, WorkflowId

router = APIRouter(prefix="/api/workflows", tags=["runs"])


@router.post("/{workflow_id:wf_id}/run", status_code=202, response_model=RunAccepted)
async def run_workflow(request: Request, p: Writer, workflow_id: WorkflowId, body: RunRequest | None = None,
                       idempotency_key: IdempotencyKey = None):
    rt = request.app.state.rt
    body = body or RunRequest()
    wf = await queries.get_workflow(rt.pool, p.tenant, workflow_id)
    commands.check_input(wf["definition"], body.input_data)

    async def create(key, h):
        return await commands.start_run(rt.log, p, wf, body.input_data, body.trigger, key, h)

    run_id, _ = await idempotency.create_once(rt.pool, p.tenant, f"run:{workflow_id}", idempotency_key,
                                              body.model_dump(), create)
    return {"run_id": run_id}


@router.get("/runs/{run_id:run_id}", response_model=RunEnvelope)
async def get_run(request: Request, p: Reader, run_id: RunId, as_of: AsOf = None):
    pool = request.app.state.rt.pool
    if as_of is not None:
        run = await run_as_of(pool, p.tenant, run_id, as_of)
        if run is None:
            raise Problem(404, f"Run '{run_id}' did not exist as of event {as_of}.")
        return {"run": run}
    return {"run": await queries.get_run(pool, p.tenant, run_id)}


@router.get("/{workflow_id:wf_id}/runs", response_model=RunList)
async def list_runs(request: Request, p: Reader, workflow_id: WorkflowId, status: Label = None, limit: Limit = 50,
                    offset: Offset = 0):
    pool = request.app.state.rt.pool
    await queries.get_workflow(pool, p.tenant, workflow_id)
    runs, total = await queries.list_runs(pool, p.tenant, workflow_id, status, limit, offset)
    return {"runs": runs, "total": total}
