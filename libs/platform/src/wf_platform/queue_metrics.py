"""Queue-depth and relay-backlog gauges: how much work waits, cluster-wide.

Every orchestrator, step-runner and scheduler replica runs one QueueMetrics (started by
runtime.run_service). Every `interval` seconds it reads
- from JetStream: the WF stream's info and the consumer info of the `orchestrator` and `step-runner`
  durables (three small API requests): wf_queue_*{consumer}, wf_stream_*{stream};
- from Postgres, where the service has a database (not the runner): the log head, the relay
  checkpoint and lease (one small query that takes no lock): wf_relay_backlog_*, wf_relay_lease_held.
It only reads: it never creates a stream or a consumer, never writes a row.

The figures are cluster-wide, so every replica reports the same numbers: aggregate with max().
NATS or Postgres away, a consumer not created yet, a slow answer: logged at debug,
`wf_metrics_poll_ok{source}` goes to 0, and the next round tries again; nothing here can stop the
service.
"""
import asyncio
import logging

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from psycopg_pool import AsyncConnectionPool

from wf_contracts import subjects

from . import metrics

log = logging.getLogger(__name__)

# The durables of wf_orchestrator.consumer.DURABLE and wf_runner.worker.DURABLE (the platform does
# not import the services; tests/integration/test_queue_metrics.py checks that the names agree).
CONSUMERS = ("orchestrator", "step-runner")

# Plain reads: log_head is locked FOR UPDATE by appends, which never blocks a reader (MVCC).
BACKLOG_SQL = (
    "SELECT h.seq - c.seq,"
    " coalesce(extract(epoch FROM clock_timestamp() - e.recorded_at), 0)::float8,"
    " coalesce(c.holder IS NOT NULL AND c.lease_until > now(), false)"
    " FROM log_head h CROSS JOIN relay_checkpoint c LEFT JOIN events e ON e.seq = c.seq + 1"
    " WHERE h.id = 1 AND c.name = 'nats'"
)


class QueueMetrics:
    def __init__(self, js: JetStreamContext, nc: NATS | None = None, pool: AsyncConnectionPool | None = None,
                 interval: float = 5.0, consumers: tuple[str, ...] = CONSUMERS, stream: str = subjects.STREAM) -> None:
        self.js, self.nc, self.pool = js, nc, pool
        self.interval = interval
        self.consumers, self.stream = consumers, stream
        self.polls = 0  # rounds in which every source answered, for tests

    async def poll_once(self) -> bool:
        """Refresh every gauge once. True when every source answered (a missing consumer is an answer)."""
        ok = await self.poll_bus()
        if self.pool is not None:
            ok = await self.poll_log() and ok
        if ok:
            self.polls += 1
        return ok

    async def poll_bus(self) -> bool:
        if self.nc is not None and not self.nc.is_connected:
            # while reconnecting, a request would only sit in the client's pending buffer
            metrics.METRICS_POLL_OK.labels("jetstream").set(0)
            return False
        try:
            info = await self.js.stream_info(self.stream)
        except Exception as exc:  # noqa: BLE001 - NATS away, stream not created yet (store lost), timeout
            log.debug("queue metrics: stream info failed: %r", exc)
            metrics.METRICS_POLL_OK.labels("jetstream").set(0)
            return False
        metrics.STREAM_MESSAGES.labels(self.stream).set(info.state.messages)
        metrics.STREAM_BYTES.labels(self.stream).set(info.state.bytes)
        metrics.STREAM_REPLICAS.labels(self.stream).set(info.config.num_replicas or 1)
        metrics.STREAM_REPLICAS_CURRENT.labels(self.stream).set(_current_replicas(info))
        ok = True
        for durable in self.consumers:
            try:
                ci = await self.js.consumer_info(self.stream, durable)
            except NotFoundError:
                # not created yet (no replica of that service has started) or lost with the store:
                # no series rather than a stale one (alert on absent())
                log.debug("queue metrics: consumer %s not found", durable)
                _forget(durable)
                continue
            except Exception as exc:  # noqa: BLE001
                log.debug("queue metrics: consumer info %s failed: %r", durable, exc)
                ok = False
                continue
            metrics.QUEUE_PENDING.labels(durable).set(ci.num_pending or 0)
            metrics.QUEUE_ACK_PENDING.labels(durable).set(ci.num_ack_pending or 0)
            metrics.QUEUE_REDELIVERED.labels(durable).set(ci.num_redelivered or 0)
            metrics.QUEUE_WAITING_PULLS.labels(durable).set(ci.num_waiting or 0)
        metrics.METRICS_POLL_OK.labels("jetstream").set(1 if ok else 0)
        return ok

    async def poll_log(self) -> bool:
        try:
            async with self.pool.connection(timeout=2) as conn:
                row = await (await conn.execute(BACKLOG_SQL)).fetchone()
        except Exception as exc:  # noqa: BLE001 - Postgres away, pool exhausted, not migrated yet
            log.debug("queue metrics: relay backlog query failed: %r", exc)
            metrics.METRICS_POLL_OK.labels("postgres").set(0)
            return False
        if row is not None:
            backlog, age, held = row
            metrics.RELAY_BACKLOG.set(max(0, backlog))
            metrics.RELAY_BACKLOG_AGE.set(max(0.0, age) if backlog > 0 else 0.0)
            metrics.RELAY_LEASE_HELD.set(1 if held else 0)
        metrics.METRICS_POLL_OK.labels("postgres").set(1)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set. Never raises (run_service would take that for a crash)."""
        while not stop.is_set():
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - belt and braces: a bug here must not end the service
                log.debug("queue metrics poll failed: %r", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass


def _current_replicas(info) -> int:
    """The leader plus the followers that are online and caught up (1 on a single server)."""
    cluster = info.cluster
    if cluster is None:
        return 1
    n = 1 if cluster.leader else 0
    for peer in cluster.replicas or []:
        if peer.current and not peer.offline:
            n += 1
    return n


def _forget(durable: str) -> None:
    for gauge in (metrics.QUEUE_PENDING, metrics.QUEUE_ACK_PENDING, metrics.QUEUE_REDELIVERED,
                  metrics.QUEUE_WAITING_PULLS):
        try:
            gauge.remove(durable)
        except KeyError:
            pass
