"""Schedules (SPEC §7): list and create under a workflow; get, change, delete by schedule id.

Included before the workflows router; `/schedules/{id}` only matches `sched_…` ids, so no other
path is taken for a schedule and a malformed id is a plain 404.
"""

from fastapi import APIRouter, Request, Response

from .. import idempotency, queries, schedules_store
from ..auth import Reader, Writer
from ..schedules_models import Schedule, ScheduleCreate, ScheduleCreated, ScheduleList, SchedulePatch
from .params import IdempotencyKey, Limit, Offset, ScheduleId, WorkflowId

router = APIRouter(prefix="/api/workflows", tags=["schedules"])


@router.get("/{workflow_id:wf_id}/schedules", response_model=ScheduleList)
async def list_schedules(request: Request, p: Reader, workflow_id: WorkflowId, limit: Limit = 50,
                         offset: Offset = 0):
    pool = request.app.state.rt.pool
    await queries.get_workflow(pool, p.tenant, workflow_id)
    items, total = await schedules_store.list_for(pool, p.tenant, workflow_id, limit, offset)
    return {"schedules": items, "total": total}


@router.post("/{workflow_id:wf_id}/schedules", status_code=201, response_model=ScheduleCreated)
async def create_schedule(request: Request, p: Writer, workflow_id: WorkflowId, body: ScheduleCreate,
                          idempotency_key: IdempotencyKey = None):
    rt = request.app.state.rt
    await queries.get_workflow(rt.pool, p.tenant, workflow_id)  # 404 before 422 for someone else's id
    schedules_store.next_run(body.cron_expression, body.timezone, body.enabled)  # 422 before a key is spent

    async def create(key, h):
        return await schedules_store.create(rt.log, p, workflow_id, body.model_dump(), key, h)

    sched_id, _ = await idempotency.create_once(rt.pool, p.tenant, f"schedule:{workflow_id}", idempotency_key,
                                                body.model_dump(), create)
    return {"schedule_id": sched_id}


@router.get("/schedules/{schedule_id:sched_id}", response_model=Schedule)
async def get_schedule(request: Request, p: Reader, schedule_id: ScheduleId):
    return (await schedules_store.get(request.app.state.rt.pool, p.tenant, schedule_id))[0]


@router.patch("/schedules/{schedule_id:sched_id}", response_model=Schedule)
async def patch_schedule(request: Request, p: Writer, schedule_id: ScheduleId, body: SchedulePatch):
    """Enable/disable, or change cron, zone, input, overlap or catchup. A new timing counts from now."""
    rt = request.app.state.rt
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await schedules_store.patch(rt.log, rt.pool, p, schedule_id, changes)


@router.delete("/schedules/{schedule_id:sched_id}", status_code=204, response_class=Response)
async def delete_schedule(request: Request, p: Writer, schedule_id: ScheduleId):
    rt = request.app.state.rt
    await schedules_store.delete(rt.log, rt.pool, p, schedule_id)
    return Response(status_code=204)
