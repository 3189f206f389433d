"""SSE endpoints: one run's events, and all runs of one workflow (for dashboards)."""
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from .. import queries
from ..auth import Reader
from ..problems import Problem
from ..sse import RunStream
from ..sse_workflow import WorkflowStream
from .params import RunId, WorkflowId

router = APIRouter(prefix="/api/workflows", tags=["stream"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def _last_id(header: str | None, query: int | None) -> int:
    raw = query if query is not None else header
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise Problem(422, "Last-Event-ID must be an integer event id from this stream.")
    if value < 0:
        raise Problem(422, "Last-Event-ID must not be negative.")
    return value


@router.get("/runs/{run_id:run_id}/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}})
async def stream_run(
    request: Request, p: Reader, run_id: RunId,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    last_event_id_q: Annotated[int | None, Query(alias="last_event_id", ge=0, le=2**31)] = None,
):
    rt = request.app.state.rt
    # auth and tenant checks happen here, before the first byte is sent
    await queries.get_run(rt.pool, p.tenant, run_id)
    stream = RunStream(request.app.state.run_feeds, rt.log, run_id, _last_id(last_event_id, last_event_id_q))
    return StreamingResponse(stream.events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/{workflow_id:wf_id}/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}})
async def stream_workflow(
    request: Request, p: Reader, workflow_id: WorkflowId,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    last_event_id_q: Annotated[int | None, Query(alias="last_event_id", ge=0, le=2**62)] = None,
):
    """Events of every run of this workflow, live; `id:` is the global seq, so Last-Event-ID resumes."""
    rt = request.app.state.rt
    await queries.get_workflow(rt.pool, p.tenant, workflow_id)
    stream = WorkflowStream(rt.nc, rt.pool, workflow_id, _last_id(last_event_id, last_event_id_q))
    return StreamingResponse(stream.events(), media_type="text/event-stream", headers=SSE_HEADERS)
