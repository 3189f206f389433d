"""/api/workflows/{id}/versions, /diff, /rollback (SPEC §4)."""
from typing import Annotated

from fastapi import APIRouter, Query, Request

from .. import queries, queries_versions, workflow_commands
from ..auth import Reader, Writer
from ..domain.diff import diff_definitions
from ..models import MAX_INT, Diff, RollbackRequest, VersionDetail, VersionList, Workflow
from ..validation_gate import check_definition
from .params import Limit, Offset, Version, WorkflowId

router = APIRouter(prefix="/api/workflows", tags=["versions"])
VersionQuery = Annotated[int, Query(ge=1, le=MAX_INT)]


@router.get("/{workflow_id:wf_id}/versions", response_model=VersionList)
async def list_versions(request: Request, p: Reader, workflow_id: WorkflowId, limit: Limit = 50, offset: Offset = 0):
    """Newest first; version 1's summary is 'Initial version'."""
    items, total = await queries_versions.list_versions(request.app.state.rt.pool, p.tenant, workflow_id, limit,
                                                        offset)
    return {"versions": items, "total": total}


@router.get("/{workflow_id:wf_id}/versions/{version}", response_model=VersionDetail)
async def get_version(request: Request, p: Reader, workflow_id: WorkflowId, version: Version):
    return await queries_versions.get_version(request.app.state.rt.pool, p.tenant, workflow_id, version)


@router.get("/{workflow_id:wf_id}/diff", response_model=Diff)
async def diff_versions(request: Request, p: Reader, workflow_id: WorkflowId, v1: VersionQuery, v2: VersionQuery):
    """`diff` applied to v1's definition gives v2's exactly; `summary` matches steps by id."""
    pool = request.app.state.rt.pool
    a = await queries_versions.get_version(pool, p.tenant, workflow_id, v1)
    b = await queries_versions.get_version(pool, p.tenant, workflow_id, v2)
    patch, summary = diff_definitions(a["definition"], b["definition"])
    return {"diff": patch, "summary": summary, "v1": v1, "v2": v2}


@router.post("/{workflow_id:wf_id}/rollback", response_model=Workflow)
async def rollback(request: Request, p: Writer, workflow_id: WorkflowId, body: RollbackRequest):
    """A new version whose definition equals the old one's: 'Rolled back to version N'."""
    rt = request.app.state.rt
    old = await queries_versions.get_version(rt.pool, p.tenant, workflow_id, body.version)
    check_definition(old["definition"])  # the rules may have tightened since that version
    await workflow_commands.rollback(rt.log, rt.pool, p, workflow_id, body.version, old["definition"])
    return await queries.get_workflow(rt.pool, p.tenant, workflow_id)
