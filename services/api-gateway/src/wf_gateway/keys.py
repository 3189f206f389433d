"""API keys (SPEC §2): create, list, revoke. Events on stream key_<id>; the secret never leaves
this module except in the one answer that creates it, and only its hash is stored."""
from typing import Any

from wf_contracts import events as ev
from wf_contracts.ids import new_id
from wf_contracts.timefmt import iso_z
from wf_platform.eventlog import EventLog

from .auth import Principal, hash_key, new_secret
from .commands import append, append_new_stream, retrying
from .problems import Problem

OPERATOR_TENANT = "default"
_COLS = "key_id, name, tenant, scopes, created_at, revoked"


def is_operator(p: Principal) -> bool:
    """An admin key of tenant 'default' manages keys of every tenant; other admins only their own."""
    return p.tenant == OPERATOR_TENANT and "admin" in p.scopes


def target_tenant(p: Principal, tenant: str | None) -> str:
    if tenant is None or tenant == p.tenant:
        return p.tenant
    if not is_operator(p):
        raise Problem(403, f"Only an admin key of tenant '{OPERATOR_TENANT}' may create keys for other tenants.")
    return tenant


async def create(log: EventLog, p: Principal, name: str, scopes: list[str], tenant: str,
                 idem_key: str | None, req_hash: str | None) -> tuple[str, str]:
    key_id, secret = new_id("key"), new_secret()
    await append_new_stream(log, key_id, tenant, p.key_id, ev.KeyCreated(
        key_id=key_id, name=name, scopes=sorted(set(scopes)), tenant=tenant, key_hash=hash_key(secret),
        idempotency_key=idem_key, request_hash=req_hash))
    return key_id, secret


async def revoke(log: EventLog, pool, p: Principal, key_id: str) -> None:
    async def attempt() -> None:
        key, version = await _state(pool, p, key_id)
        if not key["revoked"]:
            await append(log, key_id, key["tenant"], p.key_id, version, [ev.KeyRevoked(key_id=key_id)])

    await retrying(attempt)


def _key(row) -> dict[str, Any]:
    key_id, name, tenant, scopes, created, revoked = row
    return {"id": key_id, "name": name, "tenant": tenant, "scopes": list(scopes), "created_at": iso_z(created),
            "revoked": revoked}


async def get(pool, p: Principal, key_id: str) -> dict[str, Any]:
    return (await _state(pool, p, key_id))[0]


async def _state(pool, p: Principal, key_id: str) -> tuple[dict[str, Any], int]:
    async with pool.connection() as conn:
        row = await (await conn.execute(
            f"SELECT {_COLS}, (SELECT max(version) FROM events WHERE stream = key_id) FROM api_keys"
            " WHERE key_id = %s", (key_id,),
        )).fetchone()
    if row is None or (row[2] != p.tenant and not is_operator(p)):
        raise Problem(404, f"API key '{key_id}' not found.")
    return _key(row[:-1]), row[-1]


async def list_keys(pool, tenant: str, limit: int, offset: int) -> tuple[list[dict], int]:
    async with pool.connection() as conn:
        total = (await (await conn.execute("SELECT count(*) FROM api_keys WHERE tenant = %s", (tenant,))
                        ).fetchone())[0]
        rows = await (await conn.execute(
            f"SELECT {_COLS} FROM api_keys WHERE tenant = %s ORDER BY created_at DESC, key_id LIMIT %s OFFSET %s",
            (tenant, limit, offset),
        )).fetchall()
    return [_key(r) for r in rows], total
