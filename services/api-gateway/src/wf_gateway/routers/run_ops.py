"""Run operations: cancel, resume, delete (SPEC §5).

Cancel and resume are recorded as requests on the run's stream (with its expected version); the
orchestrator reacts and records run.cancelled / run.resumed. The answer waits briefly for that,
so it normally shows the run already cancelled or resumed (200); if the orchestrator is slow it
answers 202 with the run as it is, and the change follows.
"""
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from .. import commands, queries
from ..auth import Writer
from ..models import RunEnvelope
from .params import RunId

router = APIRouter(prefix="/api/workflows", tags=["runs"])


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_step: str | None = Field(default=None, min_length=1, max_length=64,
                                  description="Re-run this step and everything downstream of it.")


async def _answer(request: Request, response: Response, p, run_id: str, after: int, event_type: str):
    rt = request.app.state.rt
    if not await commands.await_run_event(rt.pool, run_id, after, event_type):
        response.status_code = 202
    return {"run": await queries.get_run(rt.pool, p.tenant, run_id)}


@router.post("/runs/{run_id:run_id}/cancel", response_model=RunEnvelope,
             responses={202: {"model": RunEnvelope, "description": "Cancellation recorded, not applied yet"}})
async def cancel_run(request: Request, response: Response, p: Writer, run_id: RunId):
    version = await commands.request_cancel(request.app.state.rt.log, p, run_id)
    return await _answer(request, response, p, run_id, version, "run.cancelled")


@router.post("/runs/{run_id:run_id}/resume", response_model=RunEnvelope,
             responses={202: {"model": RunEnvelope, "description": "Resume recorded, not applied yet"}})
async def resume_run(request: Request, response: Response, p: Writer, run_id: RunId,
                     body: ResumeRequest | None = None):
    body = body or ResumeRequest()
    version = await commands.request_resume(request.app.state.rt.log, p, run_id, body.from_step)
    return await _answer(request, response, p, run_id, version, "run.resumed")


@router.delete("/runs/{run_id:run_id}", status_code=204)
async def delete_run(request: Request, p: Writer, run_id: RunId):
    await commands.delete_run(request.app.state.rt.log, p, run_id)
    return Response(status_code=204)
