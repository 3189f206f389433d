"""Audit API (admin scope): page through the log in seq order; verify every hash chain."""
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from wf_contracts import codec
from wf_contracts.timefmt import iso_z
from wf_platform.audit import verify_log

from ..auth import Admin

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEvent(BaseModel):
    id: str
    seq: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    actor: str
    causation_id: str | None
    correlation_id: str | None
    recorded_at: str
    hash: str


class AuditPage(BaseModel):
    events: list[AuditEvent]
    next_after: int | None


class VerifyAnswer(BaseModel):
    ok: bool
    events_checked: int
    first_bad: int | None = None
    reason: str | None = None


@router.get("/events", response_model=AuditPage)
async def audit_events(
    request: Request, p: Admin,
    stream: Annotated[str | None, Query(pattern=r"^[a-z]+_[A-Za-z0-9_-]{1,64}$")] = None,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    where, args = ["tenant = %s", "seq > %s"], [p.tenant, after]
    if stream:
        where.append("stream = %s")
        args.append(stream)
    async with request.app.state.rt.pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT id, seq, stream, version, type, payload, actor, causation_id, correlation_id, recorded_at, hash"
            f" FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s", [*args, limit],
        )).fetchall()
    events = []
    for id_, seq, st, version, type_, payload, actor, cause, corr, at, h in rows:
        data = codec.decode_json(payload)
        data.pop("type", None)
        events.append({"id": id_, "seq": seq, "stream": st, "version": version, "type": type_, "data": data,
                       "actor": actor, "causation_id": cause, "correlation_id": corr,
                       "recorded_at": iso_z(at), "hash": bytes(h).hex()})
    return {"events": events, "next_after": events[-1]["seq"] if len(events) == limit else None}


@router.get("/verify", response_model=VerifyAnswer, response_model_exclude_none=True)
async def audit_verify(request: Request, p: Admin):
    r = await verify_log(request.app.state.rt.pool)
    return {"ok": r.ok, "events_checked": r.events_checked, "first_bad": r.first_bad, "reason": r.reason}
