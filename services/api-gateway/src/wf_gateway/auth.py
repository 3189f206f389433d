"""Bearer API keys with scopes, per tenant (SPEC §2). Only sha256 hashes are stored.

Every request looks the key up in Postgres, so a revocation on one replica holds on all of them
at once (no per-replica cache to go stale).
"""
import hashlib
import secrets as pysecrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .problems import Problem

SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    scopes: frozenset[str]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "wfk_" + pysecrets.token_urlsafe(32)


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Missing bearer API key.", headers={"WWW-Authenticate": "Bearer"})
    pool = request.app.state.rt.pool
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT key_id, tenant, scopes FROM api_keys WHERE key_hash = %s AND NOT revoked",
            (hash_key(token.strip()),),
        )
        row = await cur.fetchone()
    if row is None:
        raise Problem(401, "Unknown or revoked API key.", headers={"WWW-Authenticate": "Bearer"})
    return Principal(row[0], row[1], frozenset(row[2]))


def require(scope: str):
    async def dep(p: Annotated[Principal, Depends(authenticate)]) -> Principal:
        # admin implies write implies read
        have = p.scopes
        ok = scope in have or "admin" in have or (scope == "read" and "write" in have)
        if not ok:
            raise Problem(403, f"This API key lacks the '{scope}' scope.")
        return p

    return dep


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
