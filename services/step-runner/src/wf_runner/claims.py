"""Who is running a dispatch right now: a small JetStream key-value bucket of claims.

JetStream may hand a dispatch out again while a runner is still executing it: its ack wait ran
out during a broker outage, or the broker restarted and its consumer's last moments of delivery
state were not on disk yet (the message comes back as if never delivered). A runner that gets a
dispatch it has reason to doubt (a redelivery, a reconciliation re-dispatch, or one recorded
more than `suspect_after` seconds ago) first looks here: a claim refreshed within the ack wait by
another runner means that runner is alive and on it, so this copy waits (holding the message
with in-progress acks) until a result appears or the claim goes stale (its holder died: then
this runner runs the step). The claim is written when a runner starts a step, off the hot path,
and refreshed with every in-progress ack. Claims are best effort: if the bucket is unreachable
the runner behaves as without it (the orchestrator ignores a second result anyway).
"""
import json
import logging
import time

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

log = logging.getLogger(__name__)

BUCKET = "wf_step_claims"
TTL_S = 24 * 3600.0


class Claims:
    def __init__(self, js: JetStreamContext, instance: str, replicas: int = 1) -> None:
        self.js, self.instance, self.replicas = js, instance, replicas
        self.kv = None

    async def start(self) -> None:
        try:
            await self._open()
        except Exception as exc:  # noqa: BLE001 - best effort: retried on the next use
            log.warning("claims bucket unavailable: %r", exc)

    async def _open(self) -> None:
        try:
            self.kv = await self.js.key_value(BUCKET)
        except (BucketNotFoundError, NotFoundError):
            self.kv = await self.js.create_key_value(js_api.KeyValueConfig(
                bucket=BUCKET, history=1, ttl=TTL_S, storage=js_api.StorageType.FILE, replicas=self.replicas))

    async def claim(self, dispatch_id: str) -> None:
        """Mark the dispatch as being run by this runner, now (also the heartbeat)."""
        try:
            if self.kv is None:
                await self._open()
            await self.kv.put(dispatch_id, json.dumps({"by": self.instance, "at": time.time()}).encode())
        except Exception as exc:  # noqa: BLE001
            self.kv = None   # the bucket may be gone with a lost store: re-open (re-create) next time
            log.debug("claim of %s not written: %r", dispatch_id, exc)

    async def live_holder(self, dispatch_id: str, fresh_within: float) -> str | None:
        """Another runner that claimed this dispatch within `fresh_within` seconds, if any."""
        try:
            if self.kv is None:
                await self._open()
            entry = await self.kv.get(dispatch_id)
            c = json.loads(entry.value or b"{}")
        except KeyNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - cannot tell: behave as without claims
            self.kv = None
            log.debug("claim of %s not readable: %r", dispatch_id, exc)
            return None
        by, at = c.get("by"), c.get("at")
        if by and by != self.instance and isinstance(at, (int, float)) and time.time() - at < fresh_within:
            return by
        return None
