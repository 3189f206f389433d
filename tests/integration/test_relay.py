"""Outbox relay against real Postgres and NATS: order, de-duplication, resume, one active relay."""
import asyncio
import uuid
from datetime import datetime, timezone

import nats
import pytest
from nats.js import api as js_api

from wf_contracts import codec, subjects
from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent
from wf_contracts.ids import new_id
from wf_platform import bus
from wf_platform.eventlog import EventLog
from wf_platform.relay import Relay
from tests.support.infra import async_wait_for


@pytest.fixture
async def js(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    # each test gets a clean stream: the relay publishes into the shared WF stream name
    try:
        await js.delete_stream(subjects.STREAM)
    except Exception:
        pass
    await bus.ensure_stream(js)
    yield js
    await nc.close()


async def _append(log, stream, n, start=0):
    for i in range(n):
        await log.append(stream, "t1", start + i,
                         [NewEvent(id=new_id("evt"), event=ev.RunStarted(run_id=stream), actor="t")],
                         datetime.now(timezone.utc))


async def _collect(js, stream_name):
    sub = await js.pull_subscribe(subjects.stream_events(stream_name), durable=None,
                                  config=js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.ALL,
                                                               ack_policy=js_api.AckPolicy.NONE))
    out = []
    while True:
        try:
            msgs = await sub.fetch(batch=500, timeout=0.5)
        except asyncio.TimeoutError:
            break
        out.extend(codec.decode_recorded(m.data) for m in msgs)
    await sub.unsubscribe()
    return out


async def test_relay_publishes_in_order_and_resumes_from_checkpoint(pool, migrated_db, js):
    log = EventLog(pool)
    await _append(log, "run_r1", 30)
    stop = asyncio.Event()
    relay = Relay(pool, js, migrated_db, holder="relay-a", lease_seconds=2)
    task = asyncio.create_task(relay.run(stop))
    await async_wait_for(lambda: relay.published >= 30, timeout=30)
    stop.set()
    await task
    # committed while no relay runs: nothing is lost, the next relay resumes at the checkpoint
    await _append(log, "run_r1", 20, start=30)
    stop2 = asyncio.Event()
    relay2 = Relay(pool, js, migrated_db, holder="relay-b", lease_seconds=2)
    task2 = asyncio.create_task(relay2.run(stop2))
    await async_wait_for(lambda: relay2.published >= 20, timeout=30)
    stop2.set()
    await task2
    got = await _collect(js, "run_r1")
    assert [r.version for r in got] == list(range(1, 51))


async def test_republished_batch_is_dropped_by_msg_id(pool, migrated_db, js):
    log = EventLog(pool)
    await _append(log, "run_r2", 10)
    stop = asyncio.Event()
    relay = Relay(pool, js, migrated_db, holder="relay-a", lease_seconds=2)
    task = asyncio.create_task(relay.run(stop))
    await async_wait_for(lambda: relay.published >= 10, timeout=30)
    stop.set()
    await task
    # simulate a crash between publish and checkpoint: rewind the checkpoint and publish again
    async with pool.connection() as conn:
        await conn.execute("UPDATE relay_checkpoint SET seq = 0, holder = NULL WHERE name = 'nats'")
    stop = asyncio.Event()
    relay = Relay(pool, js, migrated_db, holder="relay-c", lease_seconds=2)
    task = asyncio.create_task(relay.run(stop))
    await async_wait_for(lambda: relay.published >= 10, timeout=30)
    stop.set()
    await task
    got = await _collect(js, "run_r2")
    assert [r.version for r in got] == list(range(1, 11))


async def test_only_one_relay_is_active(pool, migrated_db, js):
    log = EventLog(pool)
    stop = asyncio.Event()
    relays = [Relay(pool, js, migrated_db, holder=f"relay-{i}", lease_seconds=2) for i in range(3)]
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    await _append(log, "run_r3", 40)
    await async_wait_for(lambda: sum(r.published for r in relays) >= 40, timeout=30)
    assert sum(1 for r in relays if r.published) == 1
    stop.set()
    await asyncio.gather(*tasks)
    got = await _collect(js, "run_r3")
    assert [r.version for r in got] == list(range(1, 41))
