"""The runner's execute path (dispatch -> StepResult): secrets in and out, time-outs, cancel, limits."""
import asyncio
import itertools
import json
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tests.support.fake_agent import FakeAgent
from wf_contracts import codec, events as ev
from wf_contracts.envelope import Recorded
from wf_expr.templates import secret_marker
from wf_runner.execute import Executor
from wf_runner.registry import build_registry
from wf_runner.steps.base import StepContext, StepError

SECRET = "s3cr3t-Value/with+chars"
OTHER = "unreferenced-0ther-secret"
_seq = itertools.count(1000)


def recorded(event: ev.Event, stream: str, *, seq: int | None = None, at: datetime | None = None) -> Recorded:
    """An event as the relay would publish it."""
    n = next(_seq) if seq is None else seq
    return Recorded(id=f"evt_{n}", seq=n, stream=stream, version=1, tenant="default",
                    type=event.__struct_config__.tag, event=event, actor="test", causation_id=None,
                    correlation_id=stream, recorded_at=at or datetime.now(timezone.utc), hash="0" * 64)


def dispatch(step_type: str, config: dict, *, run_id: str = "run_x", step_id: str = "s", attempt: int = 1,
             timeout: float | None = None, context: dict | None = None, **kw) -> Recorded:
    return recorded(ev.StepDispatched(run_id=run_id, step_id=step_id, attempt=attempt, step_type=step_type,
                                      config=config, timeout_seconds=timeout, context=context or {}), run_id, **kw)


def settings(allow: str = "127.0.0.1") -> SimpleNamespace:
    return SimpleNamespace(egress_allow=allow, max_response_bytes=1 << 20, agents_file=None)


@pytest.fixture(scope="module")
def up():
    with FakeAgent() as f:
        yield f


@pytest.fixture(scope="module")
def executor():
    return Executor(build_registry(settings()), {"TOKEN": SECRET, "OTHER": OTHER}, "runner-t")


async def test_secret_is_substituted_for_the_call_and_redacted_in_the_result(up, executor):
    rec = dispatch("http_request", {"url": f"{up.url}/echo", "query": {"k": secret_marker("TOKEN")},
                                    "headers": {"Authorization": "Bearer " + secret_marker("TOKEN")}})
    res = await executor.run(rec)
    assert res.ok, res.error
    got = up.requests[-1]
    assert got["headers"]["authorization"] == f"Bearer {SECRET}" and got["query"]["k"] == [SECRET]
    wire = codec.encode(res).decode()
    assert SECRET not in wire and "s3cr3t-Value%2Fwith%2Bchars" not in wire
    assert res.output["body"]["headers"]["authorization"] == "Bearer ***"
    assert res.dispatch_id == rec.id and res.runner == "runner-t" and res.attempt == 1


async def test_every_known_secret_is_redacted_not_only_referenced_ones(up, executor):
    res = await executor.run(dispatch("http_request", {"method": "POST", "url": f"{up.url}/echo",
                                                           "json": {"leak": OTHER}}))
    assert res.ok and OTHER not in codec.encode(res).decode() and res.output["body"]["json"] == {"leak": "***"}


async def test_unknown_secret_fails_without_any_value(executor):
    res = await executor.run(dispatch("http_request", {"url": "http://x.test/" + secret_marker("NOPE")}))
    assert not res.ok and res.error_type == "unknown_secret" and not res.retryable
    assert res.error == "unknown secret 'NOPE': set WORKFLOW_SECRET_NOPE on the step-runner"


async def test_a_script_printing_a_secret_shows_stars(executor):
    code = "import os, sys\nprint(os.environ['T'])\nprint('err', os.environ['T'], file=sys.stderr)\n" \
           "print('{\"t\": \"%s\"}' % os.environ['T'])"
    res = await executor.run(dispatch("script", {"language": "python", "code": code,
                                                 "env": {"T": secret_marker("TOKEN")}}))
    assert res.ok and SECRET not in codec.encode(res).decode()
    assert res.output["stdout"].splitlines()[0] == "***" and "err ***" in res.output["stderr"]
    assert res.metadata["isolation"] in ("bwrap", "basic")
    failing = await executor.run(dispatch("script", {"language": "shell", "code": 'echo "$T" >&2; exit 4',
                                                     "env": {"T": secret_marker("TOKEN")}}))
    assert not failing.ok and failing.error == "script exited with code 4: ***"


async def test_the_step_sees_only_the_secrets_it_references():
    seen = {}

    class Spy:
        type = "spy"

        async def execute(self, ctx: StepContext):
            seen.update(ctx.secrets)
            return ctx.config

    ex = Executor({"spy": Spy()}, {"TOKEN": SECRET, "OTHER": OTHER})
    res = await ex.run(dispatch("spy", {"a": [secret_marker("TOKEN")], "b": "plain"}))
    assert seen == {"TOKEN": SECRET} and res.output == {"a": ["***"], "b": "plain"}


async def test_step_timeout_is_enforced_even_for_a_step_that_ignores_it():
    class Stubborn:
        type = "stubborn"

        async def execute(self, ctx):
            await asyncio.sleep(60)     # never looks at ctx.cancel

    t0 = time.monotonic()
    res = await Executor({"stubborn": Stubborn()}, {}, stop_grace=0.2).run(dispatch("stubborn", {}, timeout=0.2))
    assert not res.ok and res.error == "step timed out after 0.2s" and res.error_type == "timeout"
    assert time.monotonic() - t0 < 1.5


async def test_script_timeout_from_the_step_timeout(executor):
    t0 = time.monotonic()
    res = await executor.run(dispatch("script", {"language": "shell", "code": "sleep 30"}, timeout=0.5))
    assert not res.ok and res.error_type == "timeout" and time.monotonic() - t0 < 3


async def test_cancel_stops_a_script_quickly(executor):
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, cancel.set)
    t0 = time.monotonic()
    res = await executor.run(dispatch("script", {"language": "shell", "code": "sleep 30"}), cancel)
    assert not res.ok and res.error == "cancelled" and not res.retryable and time.monotonic() - t0 < 2


async def test_cancel_before_start_does_not_run(up, executor):
    cancel = asyncio.Event()
    cancel.set()
    before = len(up.requests)
    res = await executor.run(dispatch("http_request", {"url": f"{up.url}/echo"}), cancel)
    assert res.error_type == "cancelled" and len(up.requests) == before


async def test_unsupported_type_and_a_crashing_step_type():
    class Broken:
        type = "broken"

        async def execute(self, ctx):
            raise KeyError(SECRET)

    ex = Executor({"broken": Broken()}, {"TOKEN": SECRET})
    res = await ex.run(dispatch("broken", {}))
    assert res.error == "internal error in step type 'broken': KeyError" and res.error_type == "internal"
    res = await ex.run(dispatch("teleport", {}))
    assert res.error == "step type 'teleport' is not supported by this runner" and not res.retryable


async def test_a_result_too_big_for_the_bus_fails_cleanly(up):
    ex = Executor(build_registry(settings()), {}, max_result_bytes=100_000)
    res = await ex.run(dispatch("http_request", {"url": f"{up.url}/bytes/200000"}))
    assert not res.ok and res.error_type == "output_too_large" and res.output is None
    assert len(codec.encode(res)) < 1000


async def test_metadata_is_reported_and_redacted():
    class Meta:
        type = "meta"

        async def execute(self, ctx):
            ctx.metadata["note"] = f"used {SECRET}"
            return 1

    res = await Executor({"meta": Meta()}, {"TOKEN": SECRET}).run(dispatch("meta", {}))
    assert res.output == 1 and res.metadata == {"note": "used ***"}
    assert json.loads(codec.encode(res))["metadata"] == {"note": "used ***"}


async def test_step_error_values_pass_through(executor):
    class Failing:
        type = "failing"

        async def execute(self, ctx):
            raise StepError(f"bad {SECRET}", retryable=False, error_type="custom")

    res = await Executor({"failing": Failing()}, {"T": SECRET}).run(dispatch("failing", {}))
    assert (res.ok, res.error, res.error_type, res.retryable) == (False, "bad ***", "custom", False)


async def test_a_dispatch_past_its_deadline_is_not_run(up, executor):
    def with_deadline(deadline: str) -> Recorded:
        return recorded(ev.StepDispatched(run_id="run_x", step_id="s", attempt=1, step_type="http_request",
                                          config={"url": f"{up.url}/echo/deadline"}, deadline=deadline), "run_x")
    res = await executor.run(with_deadline("2020-01-01T00:00:00Z"))
    assert res.error_type == "deadline" and up.calls["/echo/deadline"] == 0
    res = await executor.run(with_deadline("2999-01-01T00:00:00Z"))
    assert res.ok and up.calls["/echo/deadline"] == 1
