"""Postgres adapter for the event log: append with an expected version, read a stream, read all.

Projections that must be readable right after a write (read-your-writes for the REST API) are
written in the same transaction as the append, before it; wf_append takes the global head lock
last, so that lock is held only for the insert and the commit.
"""
from datetime import datetime
from typing import Awaitable, Callable, Sequence

import psycopg
from msgspec.structs import replace
from psycopg_pool import AsyncConnectionPool

from wf_contracts import codec
from wf_contracts.envelope import NewEvent, Recorded
from wf_contracts.timefmt import iso_z

from .chain import ChainRow

ProjectFn = Callable[[psycopg.AsyncConnection, list[Recorded]], Awaitable[None]]

# the events table's columns in the order recorded_from_row() and chain_row() read them
EVENT_COLUMNS = "seq, id, stream, version, tenant, type, payload, actor, causation_id, correlation_id, recorded_at, hash"


class ConcurrencyConflict(Exception):
    """Someone else appended to the stream first: reload and decide again."""


def recorded_from_row(row: tuple) -> Recorded:
    seq, id_, stream, version, tenant, type_, payload, actor, cause, corr, at, h = row
    return Recorded(
        id=id_, seq=seq, stream=stream, version=version, tenant=tenant, type=type_,
        event=codec.decode_event(payload), actor=actor, causation_id=cause, correlation_id=corr,
        recorded_at=at, hash=bytes(h).hex(),
    )


def chain_row(row: tuple) -> ChainRow:
    seq, id_, stream, version, tenant, type_, payload, actor, cause, corr, at, h = row
    return ChainRow(seq, id_, stream, version, tenant, type_, actor, cause, corr, at, payload, bytes(h))


def pending_records(stream: str, tenant: str, expected_version: int, items: Sequence[NewEvent],
                    now: datetime) -> list[Recorded]:
    """The events as they will be recorded, before the log assigns seq and hash (for projections)."""
    return [
        Recorded(id=item.id, seq=0, stream=stream, version=expected_version + i + 1, tenant=tenant,
                 type=type(item.event).__struct_config__.tag, event=item.event, actor=item.actor,
                 causation_id=item.causation_id, correlation_id=item.correlation_id, recorded_at=now, hash="")
        for i, item in enumerate(items)
    ]


def wire(items: Sequence[NewEvent], now: datetime) -> str:
    """wf_append's events argument (JSON text)."""
    return codec.encode([
        {"id": item.id, "type": type(item.event).__struct_config__.tag, "payload": codec.encode_event(item.event),
         "actor": item.actor, "causation_id": item.causation_id, "correlation_id": item.correlation_id,
         "recorded_at": iso_z(now)}
        for item in items
    ]).decode()


def is_conflict(exc: psycopg.Error) -> bool:
    """An expected-version mismatch (WF409) or a unique key that an inline projection guards."""
    return exc.sqlstate in ("WF409", "23505")


class EventLog:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def append(
        self,
        stream: str,
        tenant: str,
        expected_version: int,
        items: Sequence[NewEvent],
        now: datetime,
        project: ProjectFn | None = None,
    ) -> list[Recorded]:
        if not items:
            return []
        pending = pending_records(stream, tenant, expected_version, items, now)
        try:
            async with self.pool.connection() as conn:
                # BEGIN, the projection writes, wf_append and COMMIT go to the server in one
                # pipeline flush: wf_append takes the log's global head lock, and nothing between
                # it and COMMIT waits on this process, so a frozen or killed client can never sit
                # on that lock and stall every writer of the deployment.
                async with conn.pipeline():
                    async with conn.transaction():
                        if project is not None:
                            await project(conn, pending)
                        cur = await conn.execute(
                            "SELECT o_seq, o_hash FROM wf_append(%s, %s, %s, %s::jsonb)",
                            (stream, expected_version, tenant, wire(items, now)),
                        )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            if is_conflict(exc):
                raise ConcurrencyConflict(str(exc)) from exc
            raise
        return [replace(p, seq=seq, hash=bytes(h).hex()) for p, (seq, h) in zip(pending, rows)]

    async def read_stream(self, stream: str, after_version: int = 0) -> list[Recorded]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = %s AND version > %s ORDER BY version",
                (stream, after_version),
            )
            return [recorded_from_row(r) for r in await cur.fetchall()]

    async def read_all(self, after_seq: int = 0, limit: int = 1000, stream: str | None = None) -> list[Recorded]:
        async with self.pool.connection() as conn:
            if stream is None:
                cur = await conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, limit)
                )
            else:
                cur = await conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = %s AND seq > %s ORDER BY seq LIMIT %s",
                    (stream, after_seq, limit),
                )
            return [recorded_from_row(r) for r in await cur.fetchall()]

    async def head(self) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT seq FROM log_head WHERE id = 1")
            return (await cur.fetchone())[0]
