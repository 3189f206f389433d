"""The runner's bus mechanics against a real NATS JetStream (no mocks): results then acks, in-progress
acks for long steps, cancel events, concurrency, and draining on stop."""
import asyncio
import contextlib
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from tests.support.fake_agent import FakeAgent
from tests.support.infra import async_wait_for, nats_for_tests
from tests.unit.test_runner_execute import dispatch, recorded
from wf_contracts import codec, events as ev, subjects
from wf_platform import bus
from wf_runner.cancels import CancelWatch
from wf_runner.claims import Claims
from wf_runner.execute import Executor
from wf_runner.registry import build_registry
from wf_runner.worker import DURABLE, Worker


class Sleep:
    """A step type that sleeps `config.seconds`, stops on cancel, and counts what it does."""
    type = "sleep"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = self.peak = 0

    async def execute(self, ctx):
        self.started.append(ctx.step_id)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ctx.cancel.wait(), ctx.config["seconds"])
            return {"slept": ctx.config["seconds"], "cancelled": ctx.cancel.is_set()}
        finally:
            self.running -= 1


@pytest.fixture
async def nats(tmp_path):
    with nats_for_tests(tmp_path / "nats") as server:
        yield server


class Bus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list = []

    async def __aenter__(self) -> "Bus":
        self.nc = await bus.connect(self.url, "test")
        self.js = self.nc.jetstream()
        await bus.ensure_stream(self.js)

        async def collect(m):
            self.results.append(codec.decode_result(m.data))
        await self.nc.subscribe(subjects.RESULTS, cb=collect)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.nc.close()

    async def publish(self, rec) -> None:
        await self.js.publish(subjects.event_subject(rec.stream, rec.type), codec.encode(rec),
                              headers={"Nats-Msg-Id": rec.id})

    async def result(self, step_id: str, timeout: float = 10):
        return await async_wait_for(lambda: next((r for r in self.results if r.step_id == step_id), None),
                                    timeout=timeout, message=f"a result for {step_id}")

    async def consumer(self):
        return await self.js.consumer_info(subjects.STREAM, DURABLE)


@contextlib.asynccontextmanager
async def worker(url: str, registry: dict, **kw):
    nc = await bus.connect(url, "runner")
    js = nc.jetstream()
    await bus.ensure_stream(js)
    w = Worker(js, Executor(registry, kw.pop("secrets", {}), "w", max_result_bytes=nc.max_payload - 4096),
               concurrency=kw.pop("concurrency", 8), ack_wait=kw.pop("ack_wait", 30), max_deliver=5,
               drain_seconds=kw.pop("drain_seconds", 10), cancels=CancelWatch(nc, js),
               claims=Claims(js, kw.pop("instance", "w")))
    await w.setup()
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        yield SimpleNamespace(worker=w, stop=stop, task=task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await nc.close()


def _processes(cmdline: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").strip() == cmdline.encode():
                found.append(pid)
    return found


def real_registry() -> dict:
    return build_registry(SimpleNamespace(egress_allow="127.0.0.1", max_response_bytes=1 << 20, agents_file=None))


async def test_dispatch_runs_and_is_acked_after_the_result(nats):
    async with Bus(nats.url) as b, worker(nats.url, real_registry()):
        await b.publish(dispatch("script", {"language": "python", "code": "print('{\"n\": 1}')"}, step_id="p"))
        res = await b.result("p")
        assert res.ok and res.output["result"] == {"n": 1} and res.runner == "w"
        await async_wait_for(lambda: _settled(b), timeout=5, message="the dispatch to be acked")


async def _settled(b: Bus) -> bool:
    info = await b.consumer()
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_step_longer_than_ack_wait_is_not_redelivered(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}, ack_wait=1.0), \
            worker(nats.url, {"sleep": sleep}, ack_wait=1.0):
        await b.publish(dispatch("sleep", {"seconds": 3.5}, step_id="long"))
        res = await b.result("long", timeout=15)
        assert res.ok and sleep.started == ["long"]
        info = await b.consumer()
        assert info.num_redelivered == 0 and len(b.results) == 1


async def test_run_cancelled_stops_a_script_within_seconds(nats):
    async with Bus(nats.url) as b, worker(nats.url, real_registry()):
        marker = f"sleep 30.{uuid.uuid4().int % 10**6:06d}"
        await b.publish(dispatch("script", {"language": "shell", "code": marker}, run_id="run_c", step_id="s",
                                 seq=10))
        await async_wait_for(lambda: _processes(marker), timeout=5, message="the script to start")
        t0 = time.monotonic()
        await b.publish(recorded(ev.RunCancelled(run_id="run_c"), "run_c", seq=20))
        res = await b.result("s", timeout=5)
        assert res.error == "cancelled" and res.error_type == "cancelled" and time.monotonic() - t0 < 5
        await async_wait_for(lambda: not _processes(marker), timeout=5, message="the script to be killed")


async def test_step_cancelled_stops_only_that_step(nats, tmp_path):
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}):
        await b.publish(dispatch("sleep", {"seconds": 30}, run_id="run_s", step_id="a", seq=10))
        await b.publish(dispatch("sleep", {"seconds": 1}, run_id="run_s", step_id="b", seq=11))
        await async_wait_for(lambda: sleep.running == 2, timeout=5)
        await b.publish(recorded(ev.StepCancelled(run_id="run_s", step_id="a"), "run_s", seq=20))
        a = await b.result("a", timeout=5)
        b_res = await b.result("b", timeout=5)
        assert a.error == "cancelled" and b_res.ok and b_res.output == {"slept": 1, "cancelled": False}


async def test_an_http_call_is_aborted_on_cancel(nats):
    with FakeAgent() as up:
        async with Bus(nats.url) as b, worker(nats.url, real_registry()):
            await b.publish(dispatch("http_request", {"url": f"{up.url}/slow"}, run_id="run_h", step_id="h", seq=10))
            await async_wait_for(lambda: up.calls["/slow"] == 1, timeout=5, message="the call to arrive")
            t0 = time.monotonic()
            await b.publish(recorded(ev.RunCancelled(run_id="run_h"), "run_h", seq=20))
            res = await b.result("h", timeout=5)
            assert res.error == "cancelled" and time.monotonic() - t0 < 5


async def test_a_dispatch_older_than_its_cancel_is_stopped_by_a_runner_that_missed_it(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b:
        await b.publish(recorded(ev.RunCancelled(run_id="run_old"), "run_old", seq=20))   # nobody listening
        past = datetime.now(timezone.utc) - timedelta(minutes=1)
        await b.publish(dispatch("sleep", {"seconds": 30}, run_id="run_old", step_id="x", seq=10, at=past))
        async with worker(nats.url, {"sleep": sleep}):
            res = await b.result("x", timeout=5)
        assert res.error == "cancelled"


async def test_concurrency_per_runner_is_capped(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b, worker(nats.url, {"sleep": sleep}, concurrency=2):
        for i in range(5):
            await b.publish(dispatch("sleep", {"seconds": 0.3}, run_id="run_k", step_id=f"k{i}"))
        for i in range(5):
            assert (await b.result(f"k{i}")).ok
        assert sleep.peak == 2


async def test_stop_lets_in_flight_steps_finish(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b:
        async with worker(nats.url, {"sleep": sleep}, drain_seconds=10) as w:
            await b.publish(dispatch("sleep", {"seconds": 1}, step_id="d"))
            await async_wait_for(lambda: sleep.running == 1, timeout=5)
            w.stop.set()
            await asyncio.wait_for(w.task, 5)
        res = await b.result("d", timeout=1)
        assert res.ok and res.output["cancelled"] is False
        await async_wait_for(lambda: _settled(b), timeout=5, message="the dispatch to be acked")


async def test_a_step_past_the_grace_period_goes_to_another_runner_at_once(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b:
        async with worker(nats.url, {"sleep": sleep}, drain_seconds=0.3) as w:
            await b.publish(dispatch("sleep", {"seconds": 2}, step_id="g"))
            await async_wait_for(lambda: sleep.running == 1, timeout=5)
            w.stop.set()
            await asyncio.wait_for(w.task, 5)
        assert b.results == []                      # abandoned, not reported as cancelled
        t0 = time.monotonic()
        async with worker(nats.url, {"sleep": sleep}):  # ack_wait is 30 s: only the nak makes this quick
            res = await b.result("g", timeout=10)
        assert res.ok and res.output["cancelled"] is False and sleep.started == ["g", "g"]
        assert time.monotonic() - t0 < 10


async def test_stop_while_every_slot_is_busy_starts_draining_at_once(nats):
    sleep = Sleep()
    async with Bus(nats.url) as b:
        async with worker(nats.url, {"sleep": sleep}, concurrency=1, drain_seconds=0.3) as w:
            await b.publish(dispatch("sleep", {"seconds": 30}, step_id="full"))
            await async_wait_for(lambda: sleep.running == 1, timeout=5)
            t0 = time.monotonic()
            w.stop.set()
            await asyncio.wait_for(w.task, 10)
            assert time.monotonic() - t0 < 5      # grace 0.3 s + stop: not the step's 30 s
        assert b.results == []
