"""/api/keys (admin): create (the secret is shown once), list, revoke (SPEC §2)."""
from fastapi import APIRouter, Request, Response

from .. import idempotency, keys
from ..auth import Admin
from ..models_keys import ApiKeyCreated, ApiKeyList, KeyCreate
from .params import IdempotencyKey, KeyId, Limit, Offset

router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_key(request: Request, p: Admin, body: KeyCreate, idempotency_key: IdempotencyKey = None):
    rt = request.app.state.rt
    tenant = keys.target_tenant(p, body.tenant)
    secret: str | None = None

    async def create(key, h):
        nonlocal secret
        key_id, secret = await keys.create(rt.log, p, body.name, body.scopes, tenant, key, h)
        return key_id

    # the record lives with the new key, in its tenant
    key_id, _ = await idempotency.create_once(rt.pool, tenant, "key.create", idempotency_key, body.model_dump(),
                                              create)
    # a repeat cannot show the secret again: only its hash was kept
    return {**await keys.get(rt.pool, p, key_id), "secret": secret}


@router.get("", response_model=ApiKeyList)
async def list_keys(request: Request, p: Admin, limit: Limit = 50, offset: Offset = 0):
    """The caller's tenant's keys, revoked ones included; never their secrets."""
    items, total = await keys.list_keys(request.app.state.rt.pool, p.tenant, limit, offset)
    return {"keys": items, "total": total}


@router.delete("/{key_id:key_id}", status_code=204, response_class=Response)
async def revoke_key(request: Request, p: Admin, key_id: KeyId):
    """Revoked at once on every gateway replica: each request looks its key up in Postgres."""
    rt = request.app.state.rt
    await keys.revoke(rt.log, rt.pool, p, key_id)
    return Response(status_code=204)

