"""NATS JetStream adapter: connection, the WF stream, durable pull consumers, all idempotent."""
import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from wf_contracts import subjects

log = logging.getLogger(__name__)

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

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,  # reconnect forever: a broker restart must not end the service
        reconnect_time_wait=0.5,
        error_cb=on_err,
        connect_timeout=5,
        allow_reconnect=True,
    )


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    cfg = stream_config(replicas)
    try:
        await js.stream_info(cfg.name)
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
