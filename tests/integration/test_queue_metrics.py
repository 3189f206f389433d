"""Queue-depth gauges (wf_platform.queue_metrics) against real nats-servers.

- the gauges follow a consumer's pending / ack-pending / redelivered / waiting-pull counts;
- a missing consumer or stream, a closed connection, a NATS restart: no exception,
  `wf_metrics_poll_ok{source="jetstream"}` says whether the figures are fresh, polling resumes by itself;
- the relay backlog is read from Postgres: right while no relay runs, back to 0 once one has caught up;
- real `wf-step-runner` and `wf-scheduler` processes serve the gauges on /metrics (run_service wires them);
- on a 3-node cluster built from deploy/nats/cluster.conf, run_service's runtime creates the WF
  stream with NATS_STREAM_REPLICAS=3 and `wf_stream_replicas_current` drops to 2 when a node stops.
"""
import asyncio
import re
import subprocess
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nats
import pytest
from nats.js import api as js_api

from wf_contracts import events as ev
from wf_contracts import subjects
from wf_contracts.envelope import NewEvent
from wf_contracts.ids import new_id
from wf_platform import bus, embedded, metrics
from wf_platform.eventlog import EventLog
from wf_platform.relay import Relay
from wf_platform.queue_metrics import CONSUMERS, QueueMetrics
from wf_platform.runtime import close_runtime, open_runtime
from wf_platform.settings import CommonSettings
from tests.support.infra import ServiceProcess, async_wait_for

ROOT = Path(__file__).resolve().parents[2]


def gauge(g, *labels) -> float | None:
    """Current value of a (labelled) gauge, None when the series does not exist."""
    name = g._name
    for fam in g.collect():
        for s in fam.samples:
            if s.name == name and tuple(s.labels.values()) == tuple(labels):
                return s.value
    return None


@pytest.fixture
async def private_stream(nats_server):
    """A stream and subjects of this test only, on the session NATS (the WF stream is left alone)."""
    tag = uuid.uuid4().hex[:8]
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream(timeout=5)
    name = f"QM_{tag}"
    await js.add_stream(js_api.StreamConfig(name=name, subjects=[f"qm{tag}.>"], storage=js_api.StorageType.FILE))
    yield nc, js, name, f"qm{tag}"
    try:
        await js.delete_stream(name)
    finally:
        await nc.close()


async def _pull_consumer(js, stream: str, durable: str, subject: str, ack_wait: float = 30):
    await js.add_consumer(stream, js_api.ConsumerConfig(
        durable_name=durable, ack_policy=js_api.AckPolicy.EXPLICIT, deliver_policy=js_api.DeliverPolicy.ALL,
        filter_subject=subject, ack_wait=ack_wait, max_deliver=10))
    return await js.pull_subscribe_bind(durable, stream=stream)


def test_the_polled_durables_are_the_services_durables():
    from wf_orchestrator.consumer import DURABLE as ORCHESTRATOR
    from wf_runner.worker import DURABLE as RUNNER

    assert set(CONSUMERS) == {ORCHESTRATOR, RUNNER}


async def test_gauges_follow_the_consumers(private_stream):
    nc, js, stream, prefix = private_stream
    work, idle = f"{stream}_work", f"{stream}_idle"
    sub = await _pull_consumer(js, stream, work, f"{prefix}.work")
    idle_sub = await _pull_consumer(js, stream, idle, f"{prefix}.other")
    for i in range(10):
        await js.publish(f"{prefix}.work", f"m{i}".encode())
    qm = QueueMetrics(js, nc, consumers=(work, idle), stream=stream)

    assert await qm.poll_once()
    assert gauge(metrics.METRICS_POLL_OK, "jetstream") == 1
    assert gauge(metrics.QUEUE_PENDING, work) == 10 and gauge(metrics.QUEUE_ACK_PENDING, work) == 0
    assert gauge(metrics.QUEUE_PENDING, idle) == 0
    assert gauge(metrics.STREAM_MESSAGES, stream) == 10 and gauge(metrics.STREAM_BYTES, stream) > 0
    assert gauge(metrics.STREAM_REPLICAS, stream) == 1 and gauge(metrics.STREAM_REPLICAS_CURRENT, stream) == 1

    # 4 delivered, 1 acked, 3 left unacked: 6 waiting, 3 in flight
    msgs = await sub.fetch(batch=4, timeout=2)
    assert len(msgs) == 4
    await msgs[0].ack_sync()
    await qm.poll_once()
    assert gauge(metrics.QUEUE_PENDING, work) == 6 and gauge(metrics.QUEUE_ACK_PENDING, work) == 3
    assert gauge(metrics.QUEUE_REDELIVERED, work) == 0

    # two handed back and delivered again: redelivered, still unacked. The server applies a nak
    # asynchronously, so a fetch may first get new messages: they are counted, not assumed away.
    for m in msgs[1:3]:
        await m.nak()
    again, fresh = [], []
    while len(again) < 2:
        for m in await sub.fetch(batch=1, timeout=2):
            (again if m.metadata.num_delivered == 2 else fresh).append(m)
    await qm.poll_once()
    assert gauge(metrics.QUEUE_REDELIVERED, work) == 2
    assert gauge(metrics.QUEUE_ACK_PENDING, work) == 3 + len(fresh)
    assert gauge(metrics.QUEUE_PENDING, work) == 6 - len(fresh)
    for m in [*again, *fresh, msgs[3]]:
        await m.ack_sync()
    await qm.poll_once()
    assert gauge(metrics.QUEUE_ACK_PENDING, work) == 0 and gauge(metrics.QUEUE_REDELIVERED, work) == 0

    # an idle replica's long poll shows up as a waiting pull request
    waiting = asyncio.create_task(idle_sub.fetch(batch=1, timeout=5))
    try:
        async def one_waiting():
            await qm.poll_once()
            return gauge(metrics.QUEUE_WAITING_PULLS, idle) == 1
        await async_wait_for(one_waiting, timeout=4, message="the idle pull to be counted")
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


async def test_missing_consumer_stream_or_connection_never_raise(private_stream, nats_server):
    nc, js, stream, prefix = private_stream
    present, missing = f"{stream}_present", f"{stream}_missing"
    await _pull_consumer(js, stream, present, f"{prefix}.work")
    # a series left from an earlier poll disappears when its consumer is gone (no stale value)
    metrics.QUEUE_PENDING.labels(missing).set(42)
    qm = QueueMetrics(js, nc, consumers=(present, missing), stream=stream)
    assert await qm.poll_once()
    assert gauge(metrics.QUEUE_PENDING, present) == 0
    assert gauge(metrics.QUEUE_PENDING, missing) is None

    # no such stream (e.g. the store was lost and no service re-created it yet)
    assert not await QueueMetrics(js, nc, stream=f"{stream}_NOPE").poll_once()
    assert gauge(metrics.METRICS_POLL_OK, "jetstream") == 0

    # a closed connection: not even a request is attempted
    other = await nats.connect(nats_server.url)
    await other.close()
    assert not await QueueMetrics(other.jetstream(timeout=1), other, stream=stream).poll_once()
    assert gauge(metrics.METRICS_POLL_OK, "jetstream") == 0

    # the loop never lets an unexpected error out and stops promptly
    class Broken(QueueMetrics):
        async def poll_once(self):
            raise RuntimeError("boom")

    stop = asyncio.Event()
    task = asyncio.create_task(Broken(js, nc, interval=0.05).run(stop))
    await asyncio.sleep(0.2)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, timeout=2)


async def test_polling_resumes_after_a_nats_restart(tmp_path):
    server = embedded.start_nats(tmp_path / "nats")
    try:
        nc = await bus.connect(server.url, "qm-test")
        js = nc.jetstream(timeout=2)
        await bus.ensure_stream(js)
        await bus.ensure_consumer(js, "step-runner", [subjects.DISPATCHES], 30, 5)
        qm = QueueMetrics(js, nc, interval=0.1, consumers=("step-runner",))
        stop = asyncio.Event()
        task = asyncio.create_task(qm.run(stop))
        await async_wait_for(lambda: qm.polls >= 2, timeout=10)

        server.stop()
        await async_wait_for(lambda: gauge(metrics.METRICS_POLL_OK, "jetstream") == 0, timeout=10,
                             message="the poller to notice NATS is gone")
        assert not task.done()
        server.start()
        before = qm.polls
        await async_wait_for(lambda: qm.polls > before + 1 and gauge(metrics.METRICS_POLL_OK, "jetstream") == 1, timeout=20,
                             message="polling to resume after the restart")
        await nc.publish(subjects.event_subject("run_x", "step.dispatched"), b"{}")  # core publish: stored too
        await nc.flush()
        await async_wait_for(lambda: gauge(metrics.QUEUE_PENDING, "step-runner") == 1, timeout=5)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await nc.close()
    finally:
        server.stop()


async def test_relay_backlog_comes_from_postgres(pool, migrated_db, tmp_path):
    """Committed, not yet published: counted and aged from the log itself, relay running or not."""
    server = embedded.start_nats(tmp_path / "nats")
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await bus.ensure_stream(js)
        qm = QueueMetrics(js, nc, pool, consumers=())
        assert await qm.poll_once()
        assert gauge(metrics.RELAY_BACKLOG) == 0 and gauge(metrics.RELAY_BACKLOG_AGE) == 0
        assert gauge(metrics.RELAY_LEASE_HELD) == 0 and gauge(metrics.METRICS_POLL_OK, "postgres") == 1

        log = EventLog(pool)
        old = datetime.now(timezone.utc) - timedelta(seconds=30)
        for i in range(5):
            await log.append("run_backlog", "t1", i,
                             [NewEvent(id=new_id("evt"), event=ev.RunStarted(run_id="run_backlog"), actor="t")], old)
        assert await qm.poll_once()
        assert gauge(metrics.RELAY_BACKLOG) == 5 and 29 <= gauge(metrics.RELAY_BACKLOG_AGE) < 300
        assert gauge(metrics.RELAY_LEASE_HELD) == 0  # nobody relays: the alert "backlog and no lease"

        stop = asyncio.Event()
        relay = Relay(pool, js, migrated_db, holder="qm-relay", lease_seconds=2)
        task = asyncio.create_task(relay.run(stop))
        try:
            async def caught_up():
                await qm.poll_once()
                return gauge(metrics.RELAY_BACKLOG) == 0 and gauge(metrics.RELAY_LEASE_HELD) == 1
            await async_wait_for(caught_up, timeout=15, message="the relay to publish the backlog")
            assert gauge(metrics.RELAY_BACKLOG_AGE) == 0
        finally:
            stop.set()
            await task
        await nc.close()
    finally:
        server.stop()

    # Postgres away (here: a closed pool) is reported, never raised
    await pool.close()
    assert not await QueueMetrics(js, None, pool, consumers=()).poll_log()
    assert gauge(metrics.METRICS_POLL_OK, "postgres") == 0


def _metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return r.read().decode()


def _sample(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


async def test_a_service_process_serves_the_queue_gauges(tmp_path):
    """wf-step-runner (NATS only, no database) as a real process: the gauges are on its /metrics."""
    from wf_orchestrator.consumer import DURABLE, filter_subjects

    server = embedded.start_nats(tmp_path / "nats")
    port = embedded.free_port()
    runner = ServiceProcess("wf-step-runner", {"NATS_URL": server.url, "OPS_PORT": str(port),
                                               "WORKFLOW_QUEUE_METRICS_SECONDS": "0.2", "LOG_LEVEL": "INFO"},
                            tmp_path / "logs", name="runner")
    try:
        with runner:
            runner.wait_ready(f"http://127.0.0.1:{port}/readyz", deadline=30)
            # the orchestrators' consumer, with one step result waiting in it
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await bus.ensure_consumer(js, DURABLE, filter_subjects(), 5, 200)
            await js.publish(subjects.result_subject("run_x", "dsp_1"), b"{}")

            def scraped():
                text = _metrics_text(port)
                return text if _sample(text, "wf_queue_pending_messages", '{consumer="orchestrator"}') == 1 else None

            text = await async_wait_for(scraped, timeout=10, message="the runner's /metrics to show the result")
            assert _sample(text, "wf_metrics_poll_ok", '{source="jetstream"}') == 1
            assert _sample(text, "wf_metrics_poll_ok", '{source="postgres"}') is None  # the runner has no database
            assert _sample(text, "wf_queue_pending_messages", '{consumer="step-runner"}') == 0
            assert _sample(text, "wf_queue_ack_pending_messages", '{consumer="orchestrator"}') == 0
            # the runner itself long-polls its consumer
            assert _sample(text, "wf_queue_waiting_pulls", '{consumer="step-runner"}') >= 1
            assert _sample(text, "wf_stream_messages", '{stream="WF"}') == 1
            assert _sample(text, "wf_stream_replicas", '{stream="WF"}') == 1  # NATS_STREAM_REPLICAS unset
            await nc.close()
            code = runner.terminate(timeout=15)
        assert code == 0, runner.log_tail()
    finally:
        server.stop()


async def test_a_service_with_a_database_serves_the_relay_backlog(migrated_db, tmp_path):
    """wf-scheduler (relay on, as by default) as a real process: backlog from Postgres, lease held."""
    server = embedded.start_nats(tmp_path / "nats")
    port = embedded.free_port()
    scheduler = ServiceProcess("wf-scheduler", {"NATS_URL": server.url, "DATABASE_URL": migrated_db,
                                                "OPS_PORT": str(port), "WORKFLOW_QUEUE_METRICS_SECONDS": "0.2"},
                               tmp_path / "logs", name="scheduler")
    try:
        with scheduler:
            scheduler.wait_ready(f"http://127.0.0.1:{port}/readyz", deadline=60)

            def scraped():
                text = _metrics_text(port)
                return text if _sample(text, "wf_relay_lease_held") == 1 else None

            text = await async_wait_for(scraped, timeout=20, message="the scheduler's relay to hold the lease")
            assert _sample(text, "wf_metrics_poll_ok", '{source="postgres"}') == 1
            assert _sample(text, "wf_metrics_poll_ok", '{source="jetstream"}') == 1
            assert _sample(text, "wf_relay_backlog_events") == 0
            assert _sample(text, "wf_relay_backlog_age_seconds") == 0
            code = scheduler.terminate(timeout=15)
        assert code == 0, scheduler.log_tail()
    finally:
        server.stop()


# --------------------------------------------------------------------------- 3-node cluster

def _cluster_conf(ports: list[tuple[int, int, int]], i: int, store: Path) -> str:
    """deploy/nats/cluster.conf for node i on loopback: the same file, only addresses and store moved."""
    client, route, http = ports[i]
    text = (ROOT / "deploy" / "nats" / "cluster.conf").read_text()
    for old, new in ((r"listen:\s*0\.0\.0\.0:4222", f"listen: 127.0.0.1:{client}"),
                     (r"http:\s*0\.0\.0\.0:8222", f"http: 127.0.0.1:{http}"),
                     (r"listen:\s*0\.0\.0\.0:6222", f"listen: 127.0.0.1:{route}"),
                     (r"store_dir:\s*/data", f'store_dir: "{store}"')):
        text, n = re.subn(old, new, text)
        assert n == 1, old
    text, n = re.subn(r"nats-route://nats-(\d):6222",
                      lambda m: f"nats-route://127.0.0.1:{ports[int(m.group(1)) - 1][1]}", text)
    assert n == 3
    return text


async def test_r3_stream_on_a_cluster_from_the_deploy_config(tmp_path):
    binary = embedded.find_nats_server()
    ports = [(embedded.free_port(), embedded.free_port(), embedded.free_port()) for _ in range(3)]
    procs = []
    try:
        for i in range(3):
            conf = tmp_path / f"nats-{i + 1}.conf"
            conf.write_text(_cluster_conf(ports, i, tmp_path / f"store-{i + 1}"))
            procs.append(subprocess.Popen([binary, "-c", str(conf), "--server_name", f"nats-{i + 1}"],
                                          stdout=open(tmp_path / f"nats-{i + 1}.log", "wb"),
                                          stderr=subprocess.STDOUT, start_new_session=True))
        await async_wait_for(lambda: all(embedded.jetstream_ready("127.0.0.1", p) for p, _, _ in ports),
                             timeout=30, message="the three nodes' JetStream")
        settings = CommonSettings(database_url="", nats_url=f"nats://127.0.0.1:{ports[0][0]}", ops_host="127.0.0.1",
                                  ops_port=0, log_level="WARNING", instance="qm-cluster", relay=False,
                                  db_pool_max=1, nats_stream_replicas=3)
        rt = await open_runtime("qm-test", settings, needs_db=False)
        try:
            info = await rt.js.stream_info(subjects.STREAM)
            assert info.config.num_replicas == 3 and info.cluster.name == "wf"
            await bus.ensure_consumer(rt.js, "step-runner", [subjects.DISPATCHES], 30, 5)
            qm = QueueMetrics(rt.nc.jetstream(timeout=2), rt.nc, consumers=("step-runner",))

            async def current(n: int):
                return await qm.poll_once() and gauge(metrics.STREAM_REPLICAS_CURRENT, subjects.STREAM) == n

            await async_wait_for(lambda: current(3), timeout=15, interval=0.2)
            assert gauge(metrics.STREAM_REPLICAS, subjects.STREAM) == 3

            # one node (not the stream leader) goes away: two current replicas, still writable
            leader = (await rt.js.stream_info(subjects.STREAM)).cluster.leader
            victim = next(i for i in (2, 1) if f"nats-{i + 1}" != leader)  # not the node we dialled
            procs[victim].terminate()
            procs[victim].wait(15)
            await async_wait_for(lambda: current(2), timeout=20, interval=0.2,
                                 message="the stopped node to count as not current")
            await rt.js.publish(subjects.event_subject("run_x", "step.dispatched"), b"{}")

            async def one_pending():
                return await current(2) and gauge(metrics.QUEUE_PENDING, "step-runner") == 1

            await async_wait_for(one_pending, timeout=5, interval=0.2)
        finally:
            await close_runtime(rt)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
