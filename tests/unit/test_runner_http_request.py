"""http_request through the real step: every SPEC §6 config field, and the bad-input URLs of issue 5."""
import asyncio
import ipaddress
import socket
import time
from types import SimpleNamespace

import pytest

from tests.support.fake_agent import FakeAgent
from wf_runner.egress import EgressPolicy
from wf_runner.steps.base import StepContext, StepError
from wf_runner.steps.http_request import HttpRequestStep

SETTINGS = SimpleNamespace(egress_allow="127.0.0.1", max_response_bytes=64 * 1024, agents_file=None)


@pytest.fixture(scope="module")
def up():
    with FakeAgent() as f:
        yield f


def ctx(config: dict, *, timeout=None, cancel=None) -> StepContext:
    return StepContext(run_id="run_h", step_id="call", attempt=3, tenant="t", step_type="http_request",
                       config=config, timeout_seconds=timeout, cancel=cancel or asyncio.Event())


async def run(config: dict, step: HttpRequestStep | None = None, **kw):
    return await (step or HttpRequestStep(SETTINGS)).execute(ctx(config, **kw))


async def test_get_defaults_and_json_body_parsed(up):
    out = await run({"url": f"{up.url}/echo/a"})
    assert out["status_code"] == 200 and out["headers"]["content-type"] == "application/json"
    assert out["body"]["method"] == "GET" and out["body"]["path"] == "/echo/a"
    assert out["body"]["headers"]["idempotency-key"] == "run_h:call:3"


async def test_method_headers_query_and_json(up):
    out = await run({"method": "patch", "url": f"{up.url}/echo", "headers": {"X-Trace": "abc", "X-N": 5},
                     "query": {"q": "a b", "ids": [1, 2], "flag": True}, "json": {"k": [1, "two"]}})
    b = out["body"]
    assert b["method"] == "PATCH" and b["json"] == {"k": [1, "two"]}
    assert b["headers"]["x-trace"] == "abc" and b["headers"]["x-n"] == "5"
    assert b["headers"]["content-type"] == "application/json"
    assert b["query"] == {"q": ["a b"], "ids": ["1", "2"], "flag": ["true"]}


async def test_raw_body_and_our_idempotency_key_wins(up):
    out = await run({"method": "PUT", "url": f"{up.url}/echo", "body": "a=1&b=2",
                     "headers": {"content-type": "application/x-www-form-urlencoded", "idempotency-key": "mine"}})
    b = out["body"]
    assert b["body"] == "a=1&b=2" and b["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert b["headers"]["idempotency-key"] == "run_h:call:3"
    assert sum(1 for r in up.requests if r["headers"].get("idempotency-key") == "mine") == 0


@pytest.mark.parametrize("method", ["DELETE", "OPTIONS", "HEAD", "POST"])
async def test_other_methods(up, method):
    out = await run({"method": method, "url": f"{up.url}/echo"})
    assert out["status_code"] == 200
    if method != "HEAD":
        assert out["body"]["method"] == method


async def test_text_and_lying_json_bodies(up):
    assert (await run({"url": f"{up.url}/text"}))["body"] == "plain text"
    assert (await run({"url": f"{up.url}/lying-json"}))["body"] == "<html>not json</html>"


async def test_expected_status(up):
    with pytest.raises(StepError) as ei:
        await run({"url": f"{up.url}/status/404"})
    assert "unexpected status 404" in ei.value.message and not ei.value.retryable
    out = await run({"url": f"{up.url}/status/404", "expected_status": [200, 404]})
    assert out["status_code"] == 404 and out["body"] == {"status": 404}
    with pytest.raises(StepError) as ei:
        await run({"url": f"{up.url}/status/200", "expected_status": [201]})
    assert "unexpected status 200" in ei.value.message
    with pytest.raises(StepError) as ei:
        await run({"url": f"{up.url}/status/503"})
    assert ei.value.retryable and ei.value.error_type == "http_status"


async def test_redirects_off_unless_asked(up):
    url = f"{up.url}/redirect?to={up.url}/echo/after"
    out = await run({"url": url, "expected_status": [302]})
    assert out["status_code"] == 302 and out["headers"]["location"].endswith("/echo/after")
    out = await run({"url": url, "follow_redirects": True})
    assert out["status_code"] == 200 and out["body"]["path"] == "/echo/after"


async def test_response_over_the_limit_fails(up):
    ok = await run({"url": f"{up.url}/bytes/{64 * 1024}"})
    assert len(ok["body"]) == 64 * 1024
    with pytest.raises(StepError) as ei:
        await run({"url": f"{up.url}/bytes/{64 * 1024 + 1}"})
    assert ei.value.error_type == "response_too_large" and "65536" in ei.value.message


async def test_timeout_config_and_step_timeout(up):
    t0 = time.monotonic()
    with pytest.raises(StepError, match="timed out after 0.3s") as ei:
        await run({"url": f"{up.url}/slow", "timeout_seconds": 0.3})
    assert ei.value.retryable and time.monotonic() - t0 < 2
    with pytest.raises(StepError, match="timed out after 0.2s"):
        await run({"url": f"{up.url}/slow", "timeout_seconds": 30}, timeout=0.2)


async def test_cancel_aborts_the_call(up):
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, cancel.set)
    t0 = time.monotonic()
    with pytest.raises(StepError, match="^cancelled$"):
        await run({"url": f"{up.url}/slow"}, cancel=cancel)
    assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("config, match", [({"url": ""}, "url"), ({"url": "x", "method": "BREW"}, "method"),
                                           ({"url": "http://a.b", "timeout_seconds": 0}, "timeout_seconds"),
                                           ({"url": "http://a.b", "expected_status": []}, "expected_status"),
                                           ({"url": "http://a.b", "query": [1]}, "query"),
                                           ({"url": "http://a.b", "headers": "x"}, "headers")])
async def test_invalid_config_is_not_retryable(config, match):
    with pytest.raises(StepError, match=match) as ei:
        await run(config)
    assert ei.value.error_type == "invalid_config" and not ei.value.retryable


# --- bad input (issue 5): refused before any byte leaves ------------------------------------------

class Resolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int) -> list[str]:
        if host in self.table:
            return self.table[host]
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def guarded(allow: str = "", table: dict | None = None) -> HttpRequestStep:
    policy = EgressPolicy.from_env(allow, resolver=Resolver(table or {}))
    return HttpRequestStep(SETTINGS, policy)


@pytest.mark.parametrize("url, shown", [
    ("http://127.0.0.1:{port}/echo", "127.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"),
    ("http://[::ffff:127.0.0.1]:{port}/echo", "127.0.0.1"),
    ("http://internal.corp.example:{port}/echo", "10.20.30.40"),
])
async def test_internal_destinations_are_refused(up, url, shown):
    before = len(up.requests)
    with pytest.raises(StepError) as ei:
        await run({"url": url.format(port=up.port)}, guarded(table={"internal.corp.example": ["10.20.30.40"]}))
    assert ei.value.error_type == "egress_denied" and not ei.value.retryable and shown in ei.value.message
    assert len(up.requests) == before


async def test_public_looking_url_redirecting_to_loopback_is_refused(up):
    # api.example.test stands for a public host: allowed by name, it happens to be our fake server
    step = guarded("api.example.test", {"api.example.test": ["127.0.0.1"]})
    url = f"http://api.example.test:{up.port}/redirect?to=http://127.0.0.1:{up.port}/echo/inside"
    before = len(up.requests)
    with pytest.raises(StepError) as ei:
        await run({"url": url, "follow_redirects": True}, step)
    assert ei.value.error_type == "egress_denied" and "127.0.0.1" in ei.value.message
    assert [r["route"] for r in up.requests[before:]] == ["/redirect"]     # the second hop never left
