"""/api/workflows: list, create, get, update, delete, status, validate (SPEC §3)."""
from fastapi import APIRouter, Request, Response

from wf_platform.timetravel import workflow_as_of

from .. import idempotency, queries, workflow_commands
from ..auth import Reader, Writer
from ..domain.validation import validate_definition
from ..models import (StatusChange, TriggerType, ValidateRequest, ValidationResult, Workflow, WorkflowCreate,
                      WorkflowCreated, WorkflowList, WorkflowStatus, WorkflowUpdate)
from ..problems import Problem
from ..validation_gate import check_definition
from .params import AsOf, IdempotencyKey, Label, Limit, Offset, WorkflowId

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", response_model=WorkflowList)
async def list_workflows(request: Request, p: Reader, status: WorkflowStatus | None = None,
                         trigger_type: TriggerType | None = None, tag: Label = None, limit: Limit = 50,
                         offset: Offset = 0):
    items, total = await queries.list_workflows(request.app.state.rt.pool, p.tenant, status, trigger_type, tag,
                                                limit, offset)
    return {"workflows": items, "total": total}


@router.post("", status_code=201, response_model=WorkflowCreated)
async def create_workflow(request: Request, p: Writer, body: WorkflowCreate, idempotency_key: IdempotencyKey = None):
    rt = request.app.state.rt
    check_definition(body.definition)

    async def create(key, h):
        return await workflow_commands.create(rt.log, p, body.definition, body.status, body.trigger_type,
                                              body.tags, key, h)

    wf_id, _ = await idempotency.create_once(rt.pool, p.tenant, "workflow.create", idempotency_key,
                                             body.model_dump(), create)
    return {"id": wf_id, "workflow": await queries.get_workflow(rt.pool, p.tenant, wf_id)}


@router.post("/validate", response_model=ValidationResult)
async def validate_workflow(p: Reader, body: ValidateRequest):
    """Check a definition without creating anything: every problem at once, one sentence each."""
    errors = validate_definition(body.definition)
    return {"valid": not errors, "errors": errors}


@router.get("/{workflow_id:wf_id}", response_model=Workflow)
async def get_workflow(request: Request, p: Reader, workflow_id: WorkflowId, as_of: AsOf = None):
    pool = request.app.state.rt.pool
    if as_of is not None:
        # folded from the log up to that event, not read from a snapshot
        wf = await workflow_as_of(pool, p.tenant, workflow_id, as_of)
        if wf is None:
            raise Problem(404, f"Workflow '{workflow_id}' did not exist as of event {as_of}.")
        return wf
    return await queries.get_workflow(pool, p.tenant, workflow_id)


@router.put("/{workflow_id:wf_id}", response_model=Workflow)
async def update_workflow(request: Request, p: Writer, workflow_id: WorkflowId, body: WorkflowUpdate):
    """A changed definition (or trigger_type/tags) makes a new version; an identical one changes nothing."""
    rt = request.app.state.rt
    await queries.get_workflow(rt.pool, p.tenant, workflow_id)  # 404 before 422 for someone else's id
    check_definition(body.definition)
    await workflow_commands.update(rt.log, rt.pool, p, workflow_id, body.definition, body.change_summary,
                                   body.trigger_type, body.tags)
    return await queries.get_workflow(rt.pool, p.tenant, workflow_id)


@router.delete("/{workflow_id:wf_id}", status_code=204, response_class=Response)
async def delete_workflow(request: Request, p: Writer, workflow_id: WorkflowId):
    rt = request.app.state.rt
    await workflow_commands.delete(rt.log, rt.pool, p, workflow_id)
    return Response(status_code=204)


@router.patch("/{workflow_id:wf_id}/status", response_model=Workflow)
async def change_status(request: Request, p: Writer, workflow_id: WorkflowId, body: StatusChange):
    rt = request.app.state.rt
    await workflow_commands.change_status(rt.log, rt.pool, p, workflow_id, body.status)
    return await queries.get_workflow(rt.pool, p.tenant, workflow_id)
