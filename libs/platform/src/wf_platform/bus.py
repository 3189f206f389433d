"""NATS JetStream adapter: connection, the WF stream, durable pull consumers, all idempotent."""
import asyncio
import logging
from typing import Awaitable, Callable

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from wf_contracts import subjects

log = logging.getLogger(__name__)

# set on dispatches re-published by the reconciliation sweep: the runner checks for a result first
RECONCILED_HEADER = "Wf-Reconciled"
DUPLICATE_WINDOW_S = 600.0  # Nats-Msg-Id de-duplication horizon; the relay's redo window is far shorter
STREAM_MAX_AGE_S = 7 * 24 * 3600.0


def stream_config(replicas: int = 1) -> js_api.StreamConfig:
    return js_api.StreamConfig(
        name=subjects.STREAM,
        subjects=[subjects.ALL],
        storage=js_api.StorageType.FILE,
        retention=js_api.RetentionPolicy.LIMITS,
        max_age=STREAM_MAX_AGE_S,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
        discard=js_api.DiscardPolicy.OLD,
    )


async def connect(url: str, name: str) -> NATS:
    async def on_err(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    # a cluster is given as a comma-separated list (NATS_URL=nats://a:4222,nats://b:4222)
    servers = [u.strip() for u in url.split(",") if u.strip()]
    return await nats.connect(
        servers,
        name=name,
        max_reconnect_attempts=-1,  # reconnect forever: a broker restart must not end the service
        reconnect_time_wait=0.5,
        error_cb=on_err,
        connect_timeout=5,
        allow_reconnect=True,
    )


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    global _replicas_hint
    _replicas_hint = replicas
    cfg = stream_config(replicas)
    try:
        info = await js.stream_info(cfg.name)
        # never scale a replicated stream down because one replica was started without the setting
        cfg.num_replicas = max(replicas, info.config.num_replicas or 1)
        await js.update_stream(cfg)
    except NotFoundError:
        await js.add_stream(cfg)


async def ensure_consumer(
    js: JetStreamContext,
    durable: str,
    filter_subjects: list[str],
    ack_wait: float,
    max_deliver: int,
    max_ack_pending: int = 1000,
) -> None:
    cfg = js_api.ConsumerConfig(
        durable_name=durable,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subjects=filter_subjects if len(filter_subjects) > 1 else None,
        filter_subject=filter_subjects[0] if len(filter_subjects) == 1 else None,
    )
    # create-or-update: the same call is safe from every replica at every start
    await js.add_consumer(subjects.STREAM, cfg)


async def stream_epoch(js: JetStreamContext) -> str:
    """When the WF stream was created: a new value means the broker lost its store (or someone
    deleted the stream), so whatever was in it and not yet consumed is gone (see reconcile.py)."""
    info = await js.stream_info(subjects.STREAM)
    return info.created.isoformat() if info.created else ""


async def publish_until_acked(js: JetStreamContext, subject: str, body: bytes, msg_id: str,
                              give_up_after: float, headers: dict[str, str] | None = None) -> None:
    """Publish with Nats-Msg-Id and retry (same id: JetStream keeps one) until the stream acks.

    A result held through a broker restart is not lost: the caller keeps the work it reports
    until this returns. "No responders" means the stream itself is gone (store lost); it is
    re-created so the message has somewhere to land."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + give_up_after, 0.1
    hdrs = {"Nats-Msg-Id": msg_id, **(headers or {})}
    while True:
        try:
            await js.publish(subject, body, headers=hdrs, timeout=5)
            return
        except Exception as exc:  # noqa: BLE001 - every failure here is "try again later"
            if loop.time() + delay >= deadline:
                raise
            log.warning("publish to %s failed, retrying: %r", subject, exc)
            if isinstance(exc, nats.errors.NoRespondersError):
                try:
                    await ensure_stream(js, _replicas_hint)
                except Exception:  # noqa: BLE001
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


_replicas_hint = 1   # set by runtime when it ensures the stream, so re-creation keeps the same R


class PullConsumer:
    """A durable pull subscription that heals itself when its stream or consumer vanished.

    After the broker lost its store, fetches on the old subscription just time out; so on errors
    and, while idle, every `check_every` seconds, the consumer is looked up, and re-created (with
    the stream) when missing. `on_recreated` lets the owner react (the orchestrator's
    reconciliation sweep)."""

    def __init__(self, js: JetStreamContext, durable: str, filter_subjects: list[str], ack_wait: float,
                 max_deliver: int, max_ack_pending: int = 1000, check_every: float = 5.0,
                 on_recreated: Callable[[], Awaitable[None]] | None = None) -> None:
        self.js, self.durable, self.filter_subjects = js, durable, filter_subjects
        self.ack_wait, self.max_deliver, self.max_ack_pending = ack_wait, max_deliver, max_ack_pending
        self.check_every, self.on_recreated = check_every, on_recreated
        self.sub = None
        self._checked = 0.0

    async def setup(self) -> None:
        await ensure_consumer(self.js, self.durable, self.filter_subjects, self.ack_wait, self.max_deliver,
                              self.max_ack_pending)
        old, self.sub = self.sub, await self.js.pull_subscribe_bind(self.durable, stream=subjects.STREAM)
        if old is not None:
            try:
                await old.unsubscribe()
            except Exception:  # noqa: BLE001 - the old inbox may already be gone
                pass
        self._checked = asyncio.get_running_loop().time()

    async def fetch(self, batch: int, timeout: float = 1.0) -> list:
        """Like sub.fetch: raises asyncio.TimeoutError when nothing came, other errors when the
        broker is away (after checking whether the consumer still exists)."""
        try:
            return await self.sub.fetch(batch=batch, timeout=timeout)
        except asyncio.TimeoutError:
            if asyncio.get_running_loop().time() - self._checked >= self.check_every:
                await self.heal()
            raise
        except Exception:
            await self.heal()
            raise

    async def heal(self) -> bool:
        """Re-create the consumer (and the stream) if they are gone. True when it did."""
        self._checked = asyncio.get_running_loop().time()
        try:
            await self.js.consumer_info(subjects.STREAM, self.durable)
            return False
        except NotFoundError:
            pass
        except Exception:  # noqa: BLE001 - broker away: nothing to decide now
            return False
        log.warning("consumer %s is gone (stream lost?): re-creating it", self.durable)
        try:
            await ensure_stream(self.js, _replicas_hint)
            await self.setup()
        except Exception as exc:  # noqa: BLE001
            log.warning("re-creating consumer %s failed: %r", self.durable, exc)
            return False
        if self.on_recreated is not None:
            await self.on_recreated()
        return True
