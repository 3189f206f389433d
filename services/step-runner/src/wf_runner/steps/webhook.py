"""webhook: a signed event delivery (SPEC §6) per the Standard Webhooks scheme.

The body is the recommended Standard Webhooks envelope `{"type": event, "timestamp", "data": payload}`,
serialised once so the signed bytes are exactly the sent bytes. `webhook-id` is derived from
run/step/attempt: the same for every delivery attempt of this step attempt and for a redelivery
after a runner crash, so a receiver can drop repeats. `webhook-timestamp` is the time of each
delivery attempt (receivers reject stale timestamps), so every attempt is signed afresh.
"""
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from typing import Any, Callable

from .. import egress
from .base import StepContext, StepError, number
from .http_request import invalid, outbound_headers

DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 5
MAX_ATTEMPTS = 20
DEFAULT_EVENT = "workflow.webhook"
RETRY_STATUSES = (408, 429)   # besides 5xx: "try later" answers


def webhook_id(ctx: StepContext) -> str:
    return "msg_" + hashlib.sha256(f"{ctx.run_id}:{ctx.step_id}:{ctx.attempt}".encode()).hexdigest()[:32]


def signing_key(secret: str) -> bytes:
    """Standard Webhooks: a `whsec_` secret is base64 of the key; anything else is used as UTF-8."""
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("config.secret starts with 'whsec_' but the rest is not valid base64") from None


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookStep:
    type = "webhook"

    def __init__(self, settings, policy: egress.EgressPolicy | None = None, backoff_base: float = 1.0,
                 backoff_max: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy or egress.EgressPolicy.from_env(settings.egress_allow)
        self.max_bytes = settings.max_response_bytes
        self.backoff_base, self.backoff_max, self.clock = backoff_base, backoff_max, clock

    async def execute(self, ctx: StepContext) -> Any:
        c = ctx.config
        url = c.get("url")
        if not isinstance(url, str) or not url:
            raise invalid("config.url must be a non-empty string")
        timeout = ctx.time_limit(number(c, "timeout_seconds", DEFAULT_TIMEOUT))
        attempts = _attempts(c.get("max_attempts", DEFAULT_ATTEMPTS))
        secret = c.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise invalid("config.secret must be a string")
        key = signing_key(secret) if secret else None
        msg_id = webhook_id(ctx)
        sent_at = ctx.dispatched_at or datetime.now(timezone.utc)
        body = json.dumps({"type": str(c.get("event") or DEFAULT_EVENT),
                           "timestamp": sent_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                           "data": c.get("payload")}, separators=(",", ":"), ensure_ascii=False).encode()
        base_headers = outbound_headers(c.get("headers"), ctx)
        failure = ""
        for n in range(1, attempts + 1):
            ts = int(self.clock())
            headers = {**base_headers, "content-type": "application/json", "webhook-id": msg_id,
                       "webhook-timestamp": str(ts)}
            if key is not None:
                headers["webhook-signature"] = sign(key, msg_id, ts, body)
            try:
                resp = await egress.safe_request(self.policy, "POST", url, headers=headers, content=body,
                                                 max_bytes=self.max_bytes, timeout=timeout, cancel=ctx.cancel)
            except egress.RequestFailed as exc:   # network trouble: retry; denial, cancel, size: raised
                failure = exc.message
            else:
                if 200 <= resp.status_code < 300:
                    return {"status_code": resp.status_code, "attempts": n, "webhook_id": msg_id}
                failure = f"status {resp.status_code}"
                if resp.status_code < 500 and resp.status_code not in RETRY_STATUSES:
                    raise StepError(f"webhook to {egress.safe_url(url)} was refused with {failure} "
                                    f"(attempt {n})", retryable=False, error_type="http_status")
            ctx.metadata["attempts"] = n
            if n < attempts:
                await self._backoff(n, ctx.cancel)
        raise StepError(f"webhook to {egress.safe_url(url)} failed after {attempts} attempts: {failure}",
                        error_type="webhook_failed")

    async def _backoff(self, n: int, cancel: asyncio.Event) -> None:
        delay = min(self.backoff_base * 2 ** (n - 1), self.backoff_max)
        try:
            await asyncio.wait_for(cancel.wait(), delay)
        except asyncio.TimeoutError:
            return
        raise StepError("cancelled", retryable=False, error_type="cancelled")


def _attempts(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise invalid(f"config.max_attempts must be an integer between 1 and {MAX_ATTEMPTS}")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_ATTEMPTS or n != float(raw):
        raise invalid(f"config.max_attempts must be an integer between 1 and {MAX_ATTEMPTS}")
    return n
