"""webhook step: Standard Webhooks signing, retries with backoff, attempts in the output."""
import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tests.support.fake_agent import FakeAgent
from wf_runner.egress import EgressPolicy
from wf_runner.steps.base import StepContext, StepError
from wf_runner.steps.webhook import WebhookStep, sign, signing_key, webhook_id

SETTINGS = SimpleNamespace(egress_allow="127.0.0.1", max_response_bytes=1 << 20, agents_file=None)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DISPATCHED = datetime(2025, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def up():
    with FakeAgent() as f:
        yield f


def ctx(config: dict, attempt: int = 1, cancel=None) -> StepContext:
    return StepContext(run_id="run_w", step_id="notify", attempt=attempt, tenant="t", step_type="webhook",
                       config=config, timeout_seconds=None, cancel=cancel or asyncio.Event(),
                       dispatched_at=DISPATCHED)


def step(**kw) -> WebhookStep:
    return WebhookStep(SETTINGS, backoff_base=kw.pop("backoff_base", 0.01), **kw)


def verify(secret: str, headers: dict, body: bytes) -> bool:
    """An independent Standard Webhooks verifier, written from the spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split(" "))


def test_signature_matches_the_published_test_vector():
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing_key("plain-secret") == b"plain-secret"
    with pytest.raises(StepError, match="base64"):
        signing_key("whsec_***not base64***")


async def test_signed_delivery_with_envelope_and_headers(up):
    t0 = int(time.time())
    out = await step().execute(ctx({"url": f"{up.url}/echo/hook", "event": "order.paid",
                                    "payload": {"order": 7, "items": ["a"]}, "secret": SECRET,
                                    "headers": {"X-Tenant": "acme"}}))
    assert out == {"status_code": 200, "attempts": 1, "webhook_id": webhook_id(ctx({}))}
    (req,) = up.requests
    h = req["headers"]
    assert verify(SECRET, h, req["raw"]) and h["webhook-id"] == out["webhook_id"]
    assert abs(int(h["webhook-timestamp"]) - t0) <= 2
    assert h["content-type"] == "application/json" and h["x-tenant"] == "acme"
    assert h["idempotency-key"] == "run_w:notify:1"
    assert json.loads(req["raw"]) == {"type": "order.paid", "timestamp": "2025-05-01T12:00:00Z",
                                      "data": {"order": 7, "items": ["a"]}}


async def test_retries_5xx_with_the_same_id_and_fresh_signatures(up):
    clock = iter(range(1_700_000_000, 1_700_000_100, 7))
    out = await step(clock=lambda: next(clock)).execute(
        ctx({"url": f"{up.url}/flaky/2/a", "payload": 1, "secret": "raw-key", "max_attempts": 5}))
    assert out["attempts"] == 3 and out["status_code"] == 200
    ids = {r["headers"]["webhook-id"] for r in up.requests}
    stamps = [r["headers"]["webhook-timestamp"] for r in up.requests]
    assert ids == {out["webhook_id"]} and len(set(stamps)) == 3
    for r in up.requests:   # each attempt is signed for its own timestamp
        h = r["headers"]
        assert h["webhook-signature"] == sign(b"raw-key", h["webhook-id"], int(h["webhook-timestamp"]), r["raw"])
    assert len({r["raw"] for r in up.requests}) == 1


async def test_backoff_is_exponential(up):
    waits: list[float] = []
    s = step(backoff_base=0.05)
    real = s._backoff

    async def recording(n, cancel):
        t = time.monotonic()
        await real(n, cancel)
        waits.append(time.monotonic() - t)
    s._backoff = recording
    with pytest.raises(StepError) as ei:
        await s.execute(ctx({"url": f"{up.url}/status/502", "max_attempts": 4}))
    assert "failed after 4 attempts: status 502" in ei.value.message and ei.value.retryable
    assert up.calls["/status/502"] == 4
    assert [round(w, 1) for w in waits] == [0.1, 0.1, 0.2] or (waits[0] < waits[1] < waits[2])


async def test_network_errors_are_retried_then_fail():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StepError) as ei:
        await step().execute(ctx({"url": f"http://127.0.0.1:{port}/x", "max_attempts": 3}))
    assert "failed after 3 attempts" in ei.value.message and ei.value.error_type == "webhook_failed"


async def test_4xx_is_not_retried(up):
    with pytest.raises(StepError) as ei:
        await step().execute(ctx({"url": f"{up.url}/status/410", "max_attempts": 5}))
    assert up.calls["/status/410"] == 1 and not ei.value.retryable and "410" in ei.value.message


async def test_429_is_retried(up):
    with pytest.raises(StepError):
        await step().execute(ctx({"url": f"{up.url}/status/429", "max_attempts": 2}))
    assert up.calls["/status/429"] == 2


async def test_webhook_id_is_stable_per_step_attempt():
    assert webhook_id(ctx({})) == webhook_id(ctx({"other": 1}))
    assert webhook_id(ctx({}, attempt=2)) != webhook_id(ctx({}))


async def test_without_secret_there_is_no_signature(up):
    await step().execute(ctx({"url": f"{up.url}/echo"}))
    h = up.requests[0]["headers"]
    assert "webhook-signature" not in h and h["webhook-id"].startswith("msg_")
    assert json.loads(up.requests[0]["raw"])["type"] == "workflow.webhook"


async def test_timeout_per_attempt(up):
    t0 = time.monotonic()
    with pytest.raises(StepError, match="failed after 2 attempts"):
        await step().execute(ctx({"url": f"{up.url}/slow", "timeout_seconds": 0.2, "max_attempts": 2}))
    assert time.monotonic() - t0 < 2


async def test_cancel_during_backoff(up):
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, cancel.set)
    t0 = time.monotonic()
    with pytest.raises(StepError, match="^cancelled$"):
        await step(backoff_base=30).execute(ctx({"url": f"{up.url}/status/500"}, cancel=cancel))
    assert time.monotonic() - t0 < 1.5 and up.calls["/status/500"] == 1


async def test_egress_denied_is_not_retried(up):
    s = WebhookStep(SETTINGS, EgressPolicy.from_env(""))
    with pytest.raises(StepError) as ei:
        await s.execute(ctx({"url": f"{up.url}/echo", "max_attempts": 5}))
    assert ei.value.error_type == "egress_denied" and up.requests == []


@pytest.mark.parametrize("config", [{"url": ""}, {"url": "http://a.b", "max_attempts": 0},
                                    {"url": "http://a.b", "max_attempts": 21},
                                    {"url": "http://a.b", "max_attempts": 2.5},
                                    {"url": "http://a.b", "secret": 5}])
async def test_invalid_config(config):
    with pytest.raises(StepError) as ei:
        await step().execute(ctx(config))
    assert ei.value.error_type == "invalid_config"
