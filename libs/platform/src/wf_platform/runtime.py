"""What every service does at start and stop: migrations, pool, NATS, relay, ops, SIGTERM drain.

Each service's main() builds its settings, then hands its own components to run_service().
"""
import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from psycopg_pool import AsyncConnectionPool

from . import bus, logs
from .db import open_pool
from .eventlog import EventLog
from .migrate import migrate
from .ops import serve_ops
from .queue_metrics import QueueMetrics
from .relay import Relay
from .settings import CommonSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    name: str
    settings: CommonSettings
    pool: AsyncConnectionPool | None
    nc: NATS
    js: JetStreamContext
    log: EventLog | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def ready(self) -> bool:
        if not self.nc.is_connected:
            return False
        if self.pool is None:
            return True
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001
            return False


async def open_runtime(name: str, settings: CommonSettings, needs_db: bool = True) -> Runtime:
    pool = None
    if needs_db:
        # several replicas may start at once: migrate() serializes on an advisory lock
        await _retry(lambda: asyncio.to_thread(migrate, settings.database_url), "postgres")
        pool = await open_pool(settings.database_url, max_size=settings.db_pool_max, name=name)
    nc = await _retry(lambda: bus.connect(settings.nats_url, settings.instance), "nats")
    js = nc.jetstream(timeout=10)
    # retried: on a fresh cluster JetStream answers only once its nodes have elected a meta leader
    await _retry(lambda: bus.ensure_stream(js, settings.nats_stream_replicas), "jetstream stream")
    return Runtime(name, settings, pool, nc, js, EventLog(pool) if pool else None)


async def close_runtime(rt: Runtime) -> None:
    # Components have already finished their in-flight messages; drain() would wait on pull
    # subscriptions' internal queues (nats-py never marks fetched messages done), so flush + close.
    try:
        await asyncio.wait_for(rt.nc.flush(), timeout=2)
    except Exception:  # noqa: BLE001
        pass
    try:
        await rt.nc.close()
    except Exception:  # noqa: BLE001
        pass
    if rt.pool is not None:
        await rt.pool.close()


async def _retry(fn, what: str, attempts: int = 60):
    for i in range(attempts):
        try:
            return await fn()
        except Exception as exc:  # noqa: BLE001 - dependency not up yet at boot
            if i == attempts - 1:
                raise
            log.warning("waiting for %s: %r", what, exc)
            await asyncio.sleep(min(0.2 * (i + 1), 2.0))


Component = Callable[[Runtime], Awaitable[None]]


async def run_service(name: str, settings: CommonSettings, components: list[Component],
                      ops: bool = True, relay: bool | None = None, needs_db: bool = True) -> None:
    logs.setup(name, settings.log_level)
    rt = await open_runtime(name, settings, needs_db)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.stop.set)
    tasks = [asyncio.create_task(c(rt)) for c in components]
    if needs_db and (relay if relay is not None else settings.relay):
        r = Relay(rt.pool, rt.js, settings.database_url, settings.instance)
        tasks.append(asyncio.create_task(r.run(rt.stop)))
    if ops:
        tasks.append(asyncio.create_task(serve_ops(settings.ops_host, settings.ops_port, rt.ready, rt.stop)))
    # queue-depth and relay-backlog gauges for /metrics; kept out of `tasks` so it can never end the service
    side = []
    if ops and settings.queue_metrics_seconds > 0:
        qm = QueueMetrics(rt.nc.jetstream(timeout=2), rt.nc, rt.pool, interval=settings.queue_metrics_seconds)
        side.append(asyncio.create_task(qm.run(rt.stop)))
    log.info("started", extra={"fields": {"instance": settings.instance}})
    stopper = asyncio.create_task(rt.stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in done:
        if t is not stopper and t.exception() is not None:
            log.error("component crashed: %r", t.exception())
    rt.stop.set()
    # drain: components watch rt.stop and finish their in-flight work
    _, pending = await asyncio.wait([*tasks, *side], timeout=30)
    for t in pending:
        log.warning("component did not stop in time: %r", t.get_coro())
        t.cancel()
    await close_runtime(rt)
    log.info("stopped")
    crashed = [t for t in done if t is not stopper and not t.cancelled() and t.exception() is not None]
    if crashed:
        raise SystemExit(1)
