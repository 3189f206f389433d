"""/api/workflows: create, list, get."""
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request

from .. import commands, queries
from ..auth import Reader, Writer
from ..models import WorkflowCreate, WorkflowCreated, WorkflowList, Workflow
from ..problems import Problem
from ..validation_gate import check_definition

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", response_model=WorkflowList)
async def list_workflows(
    request: Request, p: Reader,
    status: str | None = None, trigger_type: str | None = None, tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
):
    items, total = await queries.list_workflows(request.app.state.rt.pool, p.tenant, status, trigger_type, tag,
                                                limit, offset)
    return {"workflows": items, "total": total}


@router.post("", status_code=201, response_model=WorkflowCreated)
async def create_workflow(
    request: Request, p: Writer, body: WorkflowCreate,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
):
    rt = request.app.state.rt
    check_definition(body.definition)
    req_hash = commands.request_hash(body.model_dump()) if idempotency_key else None
    if idempotency_key:
        existing = await commands.find_idempotent(rt.pool, p.tenant, "workflow.create", idempotency_key, req_hash)
        if existing:
            return {"id": existing, "workflow": await queries.get_workflow(rt.pool, p.tenant, existing)}
    try:
        wf_id = await commands.create_workflow(rt.log, p, body.definition, body.status, body.trigger_type,
                                               body.tags, idempotency_key, req_hash)
    except commands.ConcurrencyConflict:
        # the same Idempotency-Key raced us and won: answer with its result
        existing = await commands.find_idempotent(rt.pool, p.tenant, "workflow.create", idempotency_key or "",
                                                  req_hash or "")
        if not existing:
            raise Problem(409, "Concurrent update; retry.")
        wf_id = existing
    return {"id": wf_id, "workflow": await queries.get_workflow(rt.pool, p.tenant, wf_id)}


@router.get("/{workflow_id}", response_model=Workflow)
async def get_workflow(request: Request, p: Reader, workflow_id: str):
    return await queries.get_workflow(request.app.state.rt.pool, p.tenant, workflow_id)
