"""Idempotency-Key on creating POSTs (SPEC §1): same key and body within 24 h → the first result.

The record is a projection of the creating event (it carries the key and a hash of the request),
so it commits with the resource. Two racing requests with one key: the second append fails on
the record's unique key and answers with the winner's result.
"""
import hashlib
from typing import Any, Awaitable, Callable

from wf_contracts import codec
from wf_platform.eventlog import ConcurrencyConflict

from .problems import Problem

WINDOW = "24 hours"


def request_hash(body: Any) -> str:
    return hashlib.sha256(codec.encode(body)).hexdigest()


async def find(pool, tenant: str, scope: str, key: str, req_hash: str) -> str | None:
    """The resource a key already created within the window; 409 when the body was different."""
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT request_hash, resource_id FROM idempotency WHERE tenant = %s AND scope = %s AND key = %s"
            f" AND created_at > now() - interval '{WINDOW}'",
            (tenant, scope, key),
        )).fetchone()
    if row is None:
        return None
    if row[0] != req_hash:
        raise Problem(409, "This Idempotency-Key was already used with a different request body.")
    return row[1]


async def create_once(pool, tenant: str, scope: str, key: str | None, body: Any,
                      create: Callable[[str | None, str | None], Awaitable[str]]) -> tuple[str, bool]:
    """``(resource id, created now?)``. ``create(key, hash)`` appends the event carrying the key."""
    if not key:
        return await create(None, None), True
    h = request_hash(body)
    existing = await find(pool, tenant, scope, key, h)
    if existing:
        return existing, False
    try:
        return await create(key, h), True
    except ConcurrencyConflict:
        existing = await find(pool, tenant, scope, key, h)
        if not existing:
            raise Problem(409, "A concurrent request conflicted with this one; retry it.")
        return existing, False
