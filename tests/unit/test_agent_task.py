"""agent_task against a fake OpenAI-compatible server and a fake `http` agent."""
import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from tests.support.fake_agent import TEXT_ANSWER, USAGE, FakeAgent
from wf_runner.agents import AgentBook
from wf_runner.egress import EgressPolicy
from wf_runner.steps.agent_task import AgentTaskStep, parse_answer
from wf_runner.steps.base import StepContext, StepError

KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def agent():
    with FakeAgent(api_key=KEY) as f:
        yield f


@pytest.fixture(scope="module")
def agents_file(agent, tmp_path_factory):
    path = tmp_path_factory.mktemp("agents") / "agents.json"
    path.write_text(json.dumps({**agent.agents(api_key_env="FAKE_AGENT_KEY"),
                                "keyless": {"kind": "http", "url": f"{agent.url}/agent"},
                                "nokey": {"kind": "openai", "base_url": f"{agent.url}/v1", "model": "text",
                                          "api_key_env": "NOT_SET_ANYWHERE"},
                                "broken": {"kind": "openai", "model": "x"},
                                "weird": {"kind": "grpc", "url": "x"}}))
    return str(path)


def make_step(agents_file, allow="127.0.0.1") -> AgentTaskStep:
    settings = SimpleNamespace(egress_allow=allow, max_response_bytes=1 << 20, agents_file=agents_file)
    return AgentTaskStep(settings, EgressPolicy.from_env(allow), env={"FAKE_AGENT_KEY": KEY})


def ctx(config: dict, context: dict | None = None, timeout=None) -> StepContext:
    return StepContext(run_id="run_a", step_id="think", attempt=1, tenant="t", step_type="agent_task",
                       config=config, timeout_seconds=timeout, cancel=asyncio.Event(),
                       context=context if context is not None else
                       {"input": {"q": 1}, "steps": {"fetch": {"output": {"price": 9}, "status": "completed"},
                                                     "calc": {"output": 3, "status": "completed"}}})


async def test_openai_text_answer_with_usage(agent, agents_file):
    c = ctx({"agent_id": "oa_text", "goal": "Say hello"})
    assert await make_step(agents_file).execute(c) == TEXT_ANSWER
    assert c.metadata == {"agent_id": "oa_text", "usage": USAGE, "model": "text", "finish_reason": "stop"}
    req = agent.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["headers"]["authorization"] == f"Bearer {KEY}"
    assert req["headers"]["idempotency-key"] == "run_a:think:1"
    body = req["json"]
    assert body["model"] == "text" and body["stream"] is False
    assert body["messages"][0] == {"role": "system", "content": "You are a test agent."}
    user = body["messages"][1]
    assert user["role"] == "user" and user["content"].startswith("Say hello")
    # default context: the dependencies' outputs
    assert json.loads(user["content"].split("Context (JSON):\n", 1)[1]) == {"fetch": {"price": 9}, "calc": 3}


async def test_openai_json_answer_and_explicit_context(agent, agents_file):
    c = ctx({"agent_id": "oa_json", "goal": "Price?", "context": {"only": "this"}})
    out = await make_step(agents_file).execute(c)
    assert out["answer"] == 42 and out["goal"].startswith("Price?") and '"only": "this"' in out["goal"]


async def test_openai_without_usage_and_without_context(agent, agents_file):
    c = ctx({"agent_id": "oa_nousage", "goal": "Hi"}, context={})
    assert await make_step(agents_file).execute(c) == TEXT_ANSWER
    assert "usage" not in c.metadata
    assert agent.requests[-1]["json"]["messages"][1]["content"] == "Hi"


async def test_http_agent(agent, agents_file):
    c = ctx({"agent_id": "http_ok", "goal": "Summarise", "context": [1, 2]})
    out = await make_step(agents_file).execute(c)
    assert out == {"goal": "Summarise", "context": [1, 2], "run_id": "run_a", "step_id": "think"}
    assert c.metadata["usage"] == USAGE


async def test_unknown_agent(agents_file):
    with pytest.raises(StepError) as ei:
        await make_step(agents_file).execute(ctx({"agent_id": "agent_123", "goal": "x"}))
    assert ei.value.message == "unknown agent 'agent_123'" and not ei.value.retryable
    with pytest.raises(StepError, match="^unknown agent 'agent_123'"):
        await make_step(None).execute(ctx({"agent_id": "agent_123", "goal": "x"}))


@pytest.mark.parametrize("agent_id, match", [("nokey", "NOT_SET_ANYWHERE is not set"),
                                             ("broken", "needs 'base_url' and 'model'"),
                                             ("weird", "kind must be one of")])
async def test_misconfigured_agents(agents_file, agent_id, match):
    with pytest.raises(StepError, match=match) as ei:
        await make_step(agents_file).execute(ctx({"agent_id": agent_id, "goal": "x"}))
    assert not ei.value.retryable


async def test_the_file_is_reread_when_it_changes(tmp_path, agent):
    path = tmp_path / "a.json"
    path.write_text("{}")
    book = AgentBook(str(path))
    with pytest.raises(StepError, match="unknown agent"):
        book.get("late")
    path.write_text(json.dumps({"late": {"kind": "http", "url": "http://x/agent"}, "pad": {}}))
    assert book.get("late").url == "http://x/agent"
    path.write_text("{not json")
    with pytest.raises(StepError, match="cannot read WORKFLOW_AGENTS_FILE"):
        book.get("late")


# --- bad agents (issue 5): hanging, garbage, errors ------------------------------------------------

@pytest.mark.parametrize("agent_id", ["oa_hang", "http_hang"])
async def test_a_hanging_agent_times_out(agents_file, agent_id):
    t0 = time.monotonic()
    with pytest.raises(StepError) as ei:
        await make_step(agents_file).execute(ctx({"agent_id": agent_id, "goal": "x", "timeout_seconds": 0.3}))
    assert ei.value.message == f"agent '{agent_id}' did not answer within 0.3s" and ei.value.retryable
    assert time.monotonic() - t0 < 2
    with pytest.raises(StepError, match="within 0.2s"):   # the step's own time-out bounds it too
        await make_step(agents_file).execute(ctx({"agent_id": agent_id, "goal": "x"}, timeout=0.2))


@pytest.mark.parametrize("agent_id, match", [
    ("oa_garbage", "returned a response that is not JSON: <html><body>502 Bad Gateway"),
    ("oa_shape", r"unusable answer: no choices\[0\].message.content"),
    ("oa_error", "answered HTTP 500: .*model crashed"),
    ("http_garbage", "returned a response that is not JSON"),
    ("http_nooutput", 'has no "output" field'),
])
async def test_garbage_answers_fail_clearly(agents_file, agent_id, match):
    with pytest.raises(StepError, match=match) as ei:
        await make_step(agents_file).execute(ctx({"agent_id": agent_id, "goal": "x"}))
    assert ei.value.error_type == "agent_error" and agent_id in ei.value.message


async def test_wrong_key_is_a_401_without_the_key(agent, agents_file):
    settings = SimpleNamespace(egress_allow="127.0.0.1", max_response_bytes=1 << 20, agents_file=agents_file)
    step = AgentTaskStep(settings, EgressPolicy.from_env("127.0.0.1"), env={"FAKE_AGENT_KEY": "sk-wrong-key"})
    with pytest.raises(StepError, match="HTTP 401") as ei:
        await step.execute(ctx({"agent_id": "oa_text", "goal": "x"}))
    assert "sk-wrong-key" not in ei.value.message and not ei.value.retryable


async def test_agent_calls_go_through_the_egress_guard(agent, agents_file):
    before = len(agent.requests)
    with pytest.raises(StepError) as ei:
        await make_step(agents_file, allow="").execute(ctx({"agent_id": "oa_text", "goal": "x"}))
    assert ei.value.error_type == "egress_denied" and "127.0.0.1" in ei.value.message
    assert len(agent.requests) == before


def test_parse_answer():
    assert parse_answer('{"a": 1}') == {"a": 1}
    assert parse_answer(' [1, 2] \n') == [1, 2]
    assert parse_answer("```json\n{\"a\": 1}\n```") == {"a": 1}
    assert parse_answer("```\n[3]\n```") == [3]
    assert parse_answer("42") == "42" and parse_answer("{not json") == "{not json"
    assert parse_answer("The answer is {\"a\": 1}") == "The answer is {\"a\": 1}"
