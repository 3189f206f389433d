"""Outbox relay: follows the event log in seq order and publishes each event to JetStream.

Runs inside every gateway and orchestrator replica; a lease row makes one of them active at a
time (the others stand by and take over when the lease lapses). The checkpoint is written only
after NATS acknowledged the batch, so a crash anywhere re-publishes at most one batch, which
JetStream drops by Nats-Msg-Id (the event id). Order per stream holds because one relay
publishes in seq order and awaits the acks before moving on.
"""
import asyncio
import logging

import msgspec
import nats.errors
import psycopg
from nats.js import JetStreamContext
from psycopg_pool import AsyncConnectionPool

from wf_contracts import codec, subjects

from . import bus, metrics

log = logging.getLogger(__name__)


class _Wire(msgspec.Struct):
    id: str
    seq: int
    stream: str
    version: int
    tenant: str
    type: str
    event: msgspec.Raw
    actor: str
    causation_id: str | None
    correlation_id: str | None
    recorded_at: str
    hash: str


BUS_COLUMNS = ("seq, id, stream, version, tenant, type, payload, actor, causation_id, correlation_id,"
               " recorded_at, hash")


def bus_message(row: tuple) -> tuple[str, bytes, str]:
    """(subject, body, Nats-Msg-Id) of an events row selected with BUS_COLUMNS: what the relay
    publishes, and what the reconciliation sweep re-publishes byte for byte."""
    seq, id_, stream, version, tenant, type_, payload, actor, cause, corr, at, h = row
    body = codec.encode(_Wire(id_, seq, stream, version, tenant, type_, msgspec.Raw(payload.encode()), actor,
                              cause, corr, at.isoformat(), bytes(h).hex()))
    return subjects.event_subject(stream, type_), body, id_


class Relay:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        js: JetStreamContext,
        dsn: str,
        holder: str,
        lease_seconds: float = 5.0,
        batch: int = 500,
    ) -> None:
        self.pool, self.js, self.dsn, self.holder = pool, js, dsn, holder
        self.lease_seconds = lease_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self.active = False
        self.pos = 0  # last seq published and checkpointed while active
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        loop = asyncio.get_running_loop()
        renew_at = 0.0
        try:
            while not stop.is_set():
                try:
                    # The lease is renewed every lease/3 seconds, not on every batch: renewing is a
                    # commit (an fsync) that would otherwise sit in front of every publish.
                    if not self.active or loop.time() >= renew_at:
                        pos = await self._lease()
                        if pos is None:
                            self.active = False
                            await _wait(stop, self.lease_seconds / 2)
                            continue
                        self.active, self.pos = True, pos
                        renew_at = loop.time() + self.lease_seconds / 3
                    # cleared before reading, so a commit notified while we pump wakes the next round
                    self._wake.clear()
                    n = await self._pump()
                    if n < self.batch:
                        await _wait_any(stop, self._wake, max(0.05, min(1.0, renew_at - loop.time())))
                except (psycopg.Error, OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001
                    if stop.is_set():
                        break
                    log.warning("relay error, retrying: %r", exc)
                    self.active = False
                    if isinstance(exc, nats.errors.NoRespondersError):
                        # nobody answers for the stream's subjects: the broker lost its store
                        await _recreate_stream(self.js)
                    await _wait(stop, 0.5)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self._release()

    async def _lease(self) -> int | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE relay_checkpoint SET holder = %s, lease_until = now() + make_interval(secs => %s)"
                " WHERE name = 'nats' AND (holder IS NULL OR holder = %s OR lease_until < now())"
                " RETURNING seq",
                (self.holder, self.lease_seconds, self.holder),
            )
            row = await cur.fetchone()
            return row[0] if row else None

    async def _release(self) -> None:
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute(
                    "UPDATE relay_checkpoint SET holder = NULL, lease_until = NULL"
                    " WHERE name = 'nats' AND holder = %s",
                    (self.holder,),
                )
        except Exception:  # noqa: BLE001 - best effort at shutdown; the lease lapses anyway
            pass

    async def _pump(self) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {BUS_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (self.pos, self.batch))
            rows = await cur.fetchall()
        if not rows:
            metrics.RELAY_LAG.set(0)
            return 0
        futures = []
        for row in rows:
            subject, body, msg_id = bus_message(row)
            futures.append(await self.js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id}))
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
        last = rows[-1][0]
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE relay_checkpoint SET seq = greatest(seq, %s) WHERE name = 'nats' AND holder = %s"
                " RETURNING (SELECT seq FROM log_head WHERE id = 1)",
                (last, self.holder),
            )
            head = await cur.fetchone()
        self.published += len(rows)
        metrics.RELAY_PUBLISHED.inc(len(rows))
        if head is None:
            # the lease lapsed and another relay holds it: what we published is de-duplicated by id
            self.active = False
            return 0
        self.pos = last
        metrics.RELAY_LAG.set(max(0, head[0] - last))
        return len(rows)

    async def _listen(self, stop: asyncio.Event) -> None:
        # LISTEN wakes the relay at commit time instead of polling; a poll every second covers
        # notifications lost while the connection was down.
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute("LISTEN wf_events")
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.debug("relay listener reconnecting: %r", exc)
                await _wait(stop, 1.0)


async def _recreate_stream(js: JetStreamContext) -> None:
    try:
        await bus.ensure_stream(js, bus._replicas_hint)
    except Exception as exc:  # noqa: BLE001 - broker still away: the next round tries again
        log.warning("re-creating the stream failed: %r", exc)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    tasks = [asyncio.create_task(stop.wait()), asyncio.create_task(other.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
