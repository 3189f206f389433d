"""Bus-level fault handling against a real NATS (no mocks): a redelivered dispatch whose result is
already on the bus is not run again; a result is held through a broker restart; consumers and the
stream come back by themselves after the broker lost its store; the test-only redelivery layer."""
import asyncio
import json
import shutil
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.test_runner_worker import Bus, Sleep, worker
from tests.support.infra import async_wait_for
from tests.unit.test_runner_execute import dispatch
from wf_contracts import codec, subjects
from wf_platform import bus, embedded, faults
from wf_platform.embedded import free_port
from wf_runner.claims import BUCKET


@pytest.fixture
def nats(tmp_path):
    server = embedded.start_nats(tmp_path / "nats", free_port())
    yield server
    server.stop()


async def test_redelivered_dispatch_with_a_result_on_the_bus_is_not_run_again(nats, monkeypatch):
    # bus_redeliver hands every first delivery back after the result is published: the second
    # delivery must find that result and not run the step again
    monkeypatch.setitem(faults._ARMED, "bus_redeliver", 1.0)
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}):
        for i in range(5):
            await b.publish(dispatch("sleep", {"seconds": 0.01}, step_id=f"s{i}"))
        await async_wait_for(lambda: len(b.results) >= 5, timeout=15, message="five results")

        async def settled():
            info = await b.consumer()
            # the consumer's delivery sequence counts redeliveries too: 5 dispatches, 10 deliveries
            return (info.num_ack_pending == 0 and info.num_pending == 0 and info.delivered.consumer_seq >= 10
                    or None)
        await async_wait_for(settled, timeout=20, message="every dispatch redelivered once, then acked")
        assert sorted(sleep.started) == [f"s{i}" for i in range(5)], "a redelivery ran a step again"


async def test_reconciled_dispatch_runs_only_without_a_result(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}):
        rec = dispatch("sleep", {"seconds": 0.01}, step_id="once")
        await b.publish(rec)
        await b.result("once")
        # the sweep re-publishes the same dispatch (with an id of its own) marked as reconciled: its
        # result exists, so it is acked without running
        await b.js.publish(subjects.event_subject(rec.stream, rec.type), codec.encode(rec),
                           headers={"Nats-Msg-Id": rec.id + ":reconcile:1", bus.RECONCILED_HEADER: "1"})
        fresh = dispatch("sleep", {"seconds": 0.01}, step_id="never-answered")
        await b.js.publish(subjects.event_subject(fresh.stream, fresh.type), codec.encode(fresh),
                           headers={"Nats-Msg-Id": fresh.id, bus.RECONCILED_HEADER: "1"})
        await b.result("never-answered")

        async def settled():
            info = await b.consumer()
            return info.num_ack_pending == 0 and info.num_pending == 0 or None
        await async_wait_for(settled, timeout=10, message="both acked")
        assert sleep.started == ["once", "never-answered"]
        # the answered one was not run again, but its result was published again for the sweep
        await async_wait_for(lambda: sum(r.step_id == "once" for r in b.results) == 2, timeout=10,
                             message="the stored result re-published")


async def test_result_is_held_through_a_broker_restart(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}):
        d = dispatch("sleep", {"seconds": 2.0}, step_id="long")
        b.published = [d.id]
        await b.publish(d)
        await async_wait_for(lambda: sleep.started == ["long"] or None, timeout=10, message="the step to start")
        rec_id = b.published[-1]
        nats.kill()                     # the result is ready while the broker is down
        await asyncio.sleep(2.5)        # the fault's shape: the broker stays away past the step's end
        nats.start()

        async def stored():
            # read from the stream, not from the core subscription: that one is at-most-once and
            # may still be re-subscribing when the runner's retry lands
            try:
                raw = await b.js.get_last_msg(subjects.STREAM, subjects.result_subject("run_x", rec_id))
                return codec.decode_result(raw.data)
            except Exception:  # noqa: BLE001 - not there yet, or still reconnecting
                return None
        res = await async_wait_for(stored, timeout=60, message="the held result in the stream")
        assert res.ok and res.step_id == "long" and sleep.started == ["long"]


async def test_consumers_and_stream_come_back_after_the_store_is_lost(nats, tmp_path):
    recreated = asyncio.Event()
    nc = await bus.connect(nats.url, "t")
    js = nc.jetstream()
    await bus.ensure_stream(js)
    before = await bus.stream_epoch(js)

    async def on_recreated():
        recreated.set()
    c = bus.PullConsumer(js, "heal-test", ["wf.test.>"], ack_wait=5, max_deliver=3, check_every=0.5,
                         on_recreated=on_recreated)
    await c.setup()
    try:
        nats.kill()
        shutil.rmtree(nats.store_dir / "jetstream", ignore_errors=True)
        nats.start()

        async def healed():
            try:
                await c.fetch(1, timeout=0.3)
            except Exception:  # noqa: BLE001 - timeouts and reconnect errors while it heals
                pass
            return recreated.is_set() or None
        await async_wait_for(healed, timeout=30, message="the consumer to be re-created")
        assert await bus.stream_epoch(js) != before
        await bus.publish_until_acked(js, "wf.test.x", b"hi", "m1", give_up_after=10)
        msgs = await c.fetch(1, timeout=5)
        assert msgs[0].data == b"hi"
    finally:
        await nc.close()


async def _publish_copy(b, rec, suffix: str) -> None:
    """Another message carrying the same dispatch (what a broker that lost its delivery state sends)."""
    await b.js.publish(subjects.event_subject(rec.stream, rec.type), codec.encode(rec),
                       headers={"Nats-Msg-Id": f"{rec.id}:{suffix}"})


async def test_a_second_copy_waits_for_the_runner_still_running_it(nats):
    # runner A is running a step when another copy of its dispatch reaches runner B (an old
    # dispatch, so B looks first): B sees A's live claim, waits, then finds A's result; one run
    old = datetime.now(timezone.utc) - timedelta(seconds=30)
    sleep_a, sleep_b = Sleep(), Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep_a}, instance="A", ack_wait=3):
        rec = dispatch("sleep", {"seconds": 2.5}, step_id="long", at=old)
        await b.publish(rec)
        await async_wait_for(lambda: sleep_a.started == ["long"] or None, timeout=10, message="A to start")
        await async_wait_for(lambda: _claimed(b, rec.id), timeout=10, message="A's claim")
        async with worker(nats.url, {"sleep": sleep_b}, instance="B", ack_wait=3):
            await _publish_copy(b, rec, "copy")
            await b.result("long", timeout=20)

            async def settled():
                info = await b.consumer()
                return info.num_ack_pending == 0 and info.num_pending == 0 or None
            await async_wait_for(settled, timeout=20, message="both copies acked")
        assert sleep_a.started == ["long"] and sleep_b.started == []
        assert sum(r.step_id == "long" for r in b.results) == 1


async def test_a_stale_claim_does_not_stop_a_copy_from_running(nats):
    # the claim's holder died (no heartbeat for longer than the ack wait): the copy runs
    old = datetime.now(timezone.utc) - timedelta(seconds=30)
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}, instance="B", ack_wait=3):
        rec = dispatch("sleep", {"seconds": 0.01}, step_id="orphan", at=old)
        kv = await b.js.key_value(BUCKET)
        await kv.put(rec.id, json.dumps({"by": "dead-runner", "at": time.time() - 60}).encode())
        await b.publish(rec)
        await b.result("orphan", timeout=10)
        assert sleep.started == ["orphan"]


async def test_two_copies_at_one_runner_run_once(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}):
        rec = dispatch("sleep", {"seconds": 1.0}, step_id="twice")
        await b.publish(rec)
        await _publish_copy(b, rec, "copy")
        await b.result("twice")

        async def settled():
            info = await b.consumer()
            return info.num_ack_pending == 0 and info.num_pending == 0 or None
        await async_wait_for(settled, timeout=15, message="both copies acked")
        assert sleep.started == ["twice"]


async def _claimed(b, dispatch_id: str) -> bool | None:
    try:
        return (await (await b.js.key_value(BUCKET)).get(dispatch_id)) is not None or None
    except Exception:  # noqa: BLE001 - not yet
        return None
