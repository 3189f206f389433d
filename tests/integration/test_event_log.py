"""The event log against a real Postgres: optimistic concurrency, global order, hash chain."""
import asyncio
import random
from datetime import datetime, timezone

import psycopg
import pytest

from wf_contracts import codec
from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent
from wf_contracts.ids import new_id
from wf_contracts.timefmt import iso_z
from wf_platform.audit import verify_log
from wf_platform.eventlog import ConcurrencyConflict, EventLog


def now():
    return datetime.now(timezone.utc)


def item(i=0):
    return NewEvent(id=new_id("evt"), event=ev.RunStarted(run_id=f"run_{i}"), actor="test")


async def test_append_and_read_back(pool):
    log = EventLog(pool)
    recs = await log.append("run_a", "t1", 0, [item(1), item(2)], now())
    assert [r.version for r in recs] == [1, 2]
    assert recs[0].seq + 1 == recs[1].seq
    back = await log.read_stream("run_a")
    assert [r.id for r in back] == [r.id for r in recs]
    assert back[0].event == recs[0].event and back[0].hash == recs[0].hash


async def test_expected_version_conflict(pool):
    log = EventLog(pool)
    await log.append("run_b", "t1", 0, [item()], now())
    with pytest.raises(ConcurrencyConflict):
        await log.append("run_b", "t1", 0, [item()], now())
    # two writers racing on the same version: exactly one wins
    results = await asyncio.gather(*(log.append("run_b", "t1", 1, [item()], now()) for _ in range(8)),
                                   return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, ConcurrencyConflict) for r in results if isinstance(r, Exception))


async def test_log_is_append_only(pool):
    log = EventLog(pool)
    await log.append("run_c", "t1", 0, [item()], now())
    async with pool.connection() as conn:
        with pytest.raises(psycopg.Error):
            await conn.execute("UPDATE events SET payload = '{}' WHERE stream = 'run_c'")
        with pytest.raises(psycopg.Error):
            await conn.execute("DELETE FROM events WHERE stream = 'run_c'")


async def _raw_append(dsn, stream, expected, hold: float, rollback: bool):
    """An appender that keeps its transaction open after appending, then commits or rolls back."""
    payload = codec.encode_event(ev.RunStarted(run_id=stream))
    wire = codec.encode([{"id": new_id("evt"), "type": "run.started", "payload": payload, "actor": "slow",
                          "causation_id": None, "correlation_id": None, "recorded_at": iso_z(now())}]).decode()
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute("SELECT * FROM wf_append(%s, %s, %s, %s::jsonb)", (stream, expected, "t1", wire))
        await conn.execute("SELECT pg_sleep(%s)", (hold,))
        if rollback:
            await conn.rollback()
        else:
            await conn.commit()


async def test_reader_following_global_order_never_skips_late_commits(pool, migrated_db):
    """Many concurrent appenders, some slow and some rolled back, while a reader follows seq."""
    log = EventLog(pool)
    stop = asyncio.Event()
    seen: list[int] = []
    seen_ids: list[str] = []

    async def reader():
        after = 0
        while True:
            batch = await log.read_all(after_seq=after, limit=500)
            for r in batch:
                seen.append(r.seq)
                seen_ids.append(r.id)
            if batch:
                after = batch[-1].seq
            elif stop.is_set():
                return
            else:
                await asyncio.sleep(0.001)

    async def fast_writer(w):
        for i in range(40):
            stream = f"run_w{w}_{i % 5}"
            while True:
                try:
                    cur = len(await log.read_stream(stream))
                    await log.append(stream, "t1", cur, [item(i) for _ in range(random.randint(1, 3))], now())
                    break
                except ConcurrencyConflict:
                    continue

    async def slow_writers():
        for k in range(6):
            await _raw_append(migrated_db, f"run_slow_{k}", 0, hold=0.05 * (k % 3), rollback=(k % 2 == 1))

    rd = asyncio.create_task(reader())
    await asyncio.gather(*(fast_writer(w) for w in range(12)), slow_writers())
    stop.set()
    await rd
    async with pool.connection() as conn:
        committed = [r[0] for r in await (await conn.execute("SELECT id FROM events ORDER BY seq")).fetchall()]
        head = (await (await conn.execute("SELECT seq FROM log_head")).fetchone())[0]
    assert seen == list(range(1, len(seen) + 1)), "seq must be gapless and read in order"
    assert seen_ids == committed, "the follower saw exactly the committed events, in commit order"
    assert head == len(committed)
    assert not any(i.startswith("run_slow_1") for i in committed)
    result = await verify_log(pool)
    assert result.ok and result.events_checked == len(committed)


async def _tamper(pool, sql, *args):
    async with pool.connection() as conn:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
        await conn.execute(sql, args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_immutable")


async def _ten_events(pool):
    log = EventLog(pool)
    for i in range(10):
        await log.append(f"run_t{i % 3}", "t1", len(await log.read_stream(f"run_t{i % 3}")), [item(i)], now())
    assert (await verify_log(pool)).ok


async def test_verify_detects_changed_event(pool):
    await _ten_events(pool)
    await _tamper(pool, "UPDATE events SET payload = replace(payload, 'run_', 'rux_') WHERE seq = 4")
    res = await verify_log(pool)
    assert not res.ok and res.first_bad == 4


async def test_verify_detects_removed_event(pool):
    await _ten_events(pool)
    await _tamper(pool, "DELETE FROM events WHERE seq = 6")
    res = await verify_log(pool)
    assert not res.ok and res.first_bad == 7


async def test_verify_detects_removed_tail(pool):
    await _ten_events(pool)
    await _tamper(pool, "DELETE FROM events WHERE seq = 10")
    res = await verify_log(pool)
    assert not res.ok and res.first_bad == 10


async def test_verify_detects_swapped_events(pool):
    await _ten_events(pool)
    async with pool.connection() as conn:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
        async with conn.transaction():
            await conn.execute("UPDATE events SET seq = -3 WHERE seq = 3")
            await conn.execute("UPDATE events SET seq = 3 WHERE seq = 5")
            await conn.execute("UPDATE events SET seq = 5 WHERE seq = -3")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_immutable")
    res = await verify_log(pool)
    assert not res.ok and res.first_bad == 3


async def test_migrations_are_idempotent(migrated_db):
    from wf_platform.migrate import migrate

    assert migrate(migrated_db) == []


async def test_a_frozen_writer_cannot_hold_the_log_for_long(migrated_db, monkeypatch):
    """A process frozen inside a transaction that holds the log's head lock (SIGSTOP, GC pause)
    is cut off by Postgres (idle_in_transaction_session_timeout on every service connection), so
    the other writers carry on instead of stalling behind it."""
    from wf_platform import db

    monkeypatch.setattr(db, "IDLE_TX_MS", 1000)
    frozen_pool, pool = await db.open_pool(migrated_db, min_size=1, max_size=2), None
    try:
        pool = await db.open_pool(migrated_db, min_size=1, max_size=2)
        log_ = EventLog(pool)
        async with frozen_pool.connection() as frozen:
            await frozen.execute("BEGIN")
            await frozen.execute("SELECT * FROM log_head WHERE id = 1 FOR UPDATE")  # what wf_append locks
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            recs = await asyncio.wait_for(
                log_.append("run_frozen", "t1", 0, [item(1)], datetime.now(timezone.utc)), timeout=20)
            waited = loop.time() - t0
            assert len(recs) == 1 and 0.5 <= waited < 10, waited
            with pytest.raises(psycopg.Error):   # IdleInTransactionSessionTimeout: the session was ended
                await frozen.execute("SELECT 1")
    finally:
        await frozen_pool.close()
        if pool is not None:
            await pool.close()
