"""The four runner step types through the whole stack (gateway, orchestrator, runner as processes),
with their own local upstreams: Target, and FakeAgent as an OpenAI-compatible server. One stack
serves the module; each test creates its own workflow."""
import base64
import hashlib
import hmac
import json
import uuid
from types import SimpleNamespace

import psycopg
import pytest

from tests.e2e.test_walking_skeleton import wait_run
from tests.support.fake_agent import FakeAgent
from tests.support.infra import nats_for_tests
from tests.support.stack import Stack
from tests.support.target import Target

TOKEN = f"tok-{uuid.uuid4().hex}"
HOOK_SECRET = "whsec_" + base64.b64encode(b"e2e-signing-key-0123456789abcdef").decode()
AGENT_KEY = f"sk-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def env(tmp_path_factory, pg_server):
    tmp = tmp_path_factory.mktemp("steps_e2e")
    db = "e2e_steps_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    dsn = pg_server.dsn.rsplit("/", 1)[0] + "/" + db if "?" not in pg_server.dsn else \
        pg_server.dsn.split("?")[0].rsplit("/", 1)[0] + "/" + db + "?" + pg_server.dsn.split("?", 1)[1]
    with nats_for_tests(tmp / "nats") as nats, FakeAgent(api_key=AGENT_KEY) as agent, Target() as target:
        agents = tmp / "agents.json"
        agents.write_text(json.dumps(agent.agents(host="localhost", api_key_env="FAKE_AGENT_KEY")))
        # only the name "localhost" is allowed: the literal 127.0.0.1 stays forbidden, as in production
        stack = Stack(tmp, dsn, nats.url, orchestrators=1, runners=1, schedulers=0, env={
            "WORKFLOW_EGRESS_ALLOW": "localhost", "WORKFLOW_AGENTS_FILE": str(agents),
            "FAKE_AGENT_KEY": AGENT_KEY, "WORKFLOW_SECRET_TOKEN": TOKEN, "WORKFLOW_SECRET_HOOK": HOOK_SECRET})
        with stack:
            yield SimpleNamespace(stack=stack, agent=agent, target=target, dsn=dsn,
                                  up=f"http://localhost:{agent.port}", tgt=f"http://localhost:{target.port}")
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def run_steps(env, steps: list[dict], input_data: dict | None = None, timeout: float = 60) -> dict:
    c = env.stack.client
    r = c.post("/api/workflows", json={"definition": {"name": f"e2e-{uuid.uuid4().hex[:6]}", "steps": steps}})
    assert r.status_code == 201, r.text
    r = c.post(f"/api/workflows/{r.json()['id']}/run", json={"input_data": input_data or {}})
    assert r.status_code == 202, r.text
    return wait_run(c, r.json()["run_id"], timeout=timeout)


def by_id(run: dict) -> dict:
    return {s["step_id"]: s for s in run["step_runs"]}


def test_http_request_every_field(env):
    run = run_steps(env, [
        {"id": "put", "type": "http_request", "config": {
            "method": "PUT", "url": f"{env.up}/echo/put", "headers": {"X-Trace": "t-1"},
            "query": {"page": 2, "tags": ["a", "b"]}, "json": {"n": "{{ input.n }}"}, "timeout_seconds": 5}},
        {"id": "raw", "type": "http_request", "depends_on": ["put"], "config": {
            "method": "POST", "url": f"{env.up}/echo/raw", "body": "plain={{ steps.put.output.status_code }}"}},
        {"id": "notfound", "type": "http_request", "depends_on": ["raw"], "config": {
            "url": f"{env.up}/status/404", "expected_status": [404]}},
        {"id": "hop", "type": "http_request", "depends_on": ["raw"], "config": {
            "url": f"{env.up}/redirect?to={env.up}/echo/landed", "follow_redirects": True}},
    ], {"n": 7})
    assert run["status"] == "completed", run
    s = by_id(run)
    put = s["put"]["output"]["body"]
    assert put["method"] == "PUT" and put["json"] == {"n": 7} and put["headers"]["x-trace"] == "t-1"
    assert put["query"] == {"page": ["2"], "tags": ["a", "b"]}
    assert put["headers"]["idempotency-key"] == f"{run['id']}:put:1"
    assert s["raw"]["output"]["body"]["body"] == "plain=200"
    assert s["notfound"]["output"]["status_code"] == 404
    assert s["hop"]["output"]["body"]["path"] == "/echo/landed"


def test_http_request_failures(env):
    run = run_steps(env, [
        {"id": "big", "type": "http_request", "on_error": "continue",
         "config": {"url": f"{env.up}/bytes/{11 << 20}"}},
        {"id": "slow", "type": "http_request", "on_error": "continue",
         "config": {"url": f"{env.up}/slow", "timeout_seconds": 0.5}},
        {"id": "bad", "type": "http_request", "on_error": "continue", "config": {"url": f"{env.up}/status/500"}},
    ])
    s = by_id(run)
    assert "over the 10485760-byte limit" in s["big"]["error"] or "exceeds the 10485760-byte limit" in s["big"]["error"]
    assert "timed out after 0.5s" in s["slow"]["error"]
    assert "unexpected status 500" in s["bad"]["error"]


def test_webhook_signed_and_retried(env):
    run = run_steps(env, [
        {"id": "hook", "type": "webhook", "config": {
            "url": f"{env.tgt}/hooks/orders", "event": "order.created", "payload": {"order": "{{ input.id }}"},
            "secret": "{{ secrets.HOOK }}", "headers": {"X-Source": "wf"}}},
        {"id": "flaky", "type": "webhook", "config": {
            "url": f"{env.up}/flaky/2/{uuid.uuid4().hex}", "payload": {"x": 1}, "max_attempts": 3}},
    ], {"id": 99}, timeout=90)
    assert run["status"] == "completed", run
    s = by_id(run)
    out = s["hook"]["output"]
    assert out["status_code"] == 200 and out["attempts"] == 1 and out["webhook_id"].startswith("msg_")
    req = next(r for r in env.target.requests if r["path"] == "/hooks/orders")
    h = {k.lower(): v for k, v in req["headers"].items()}
    key = base64.b64decode(HOOK_SECRET.removeprefix("whsec_"))
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.{req['body']}".encode()
    assert h["webhook-signature"] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-id"] == out["webhook_id"] and h["x-source"] == "wf"
    assert json.loads(req["body"])["data"] == {"order": 99} and json.loads(req["body"])["type"] == "order.created"
    assert s["flaky"]["output"]["attempts"] == 3


def test_scripts_python_and_shell_see_their_context(env):
    run = run_steps(env, [
        {"id": "py", "type": "script", "config": {"language": "python", "code":
            "import json, sys\nctx = json.load(sys.stdin)\nprint(json.dumps({'double': ctx['input']['n'] * 2}))"}},
        {"id": "sh", "type": "script", "depends_on": ["py"], "config": {"language": "shell", "env": {"GREETING": "hi"},
         "code": 'echo "{\\"greeting\\": \\"$GREETING\\", \\"input\\": $(cat "$WORKFLOW_INPUT" | wc -c)}"'}},
        {"id": "fails", "type": "script", "depends_on": ["sh"], "on_error": "continue",
         "config": {"language": "shell", "code": "echo broken >&2; exit 3"}},
    ], {"n": 21})
    s = by_id(run)
    assert s["py"]["output"]["result"] == {"double": 42} and s["py"]["output"]["exit_code"] == 0
    assert s["sh"]["output"]["result"]["greeting"] == "hi" and s["sh"]["output"]["result"]["input"] > 10
    assert s["fails"]["status"] == "failed" and s["fails"]["error"] == "script exited with code 3: broken"


def test_agent_tasks_openai_and_http(env):
    run = run_steps(env, [
        {"id": "facts", "type": "script", "config": {"language": "python", "code": "print('{\"price\": 12}')"}},
        {"id": "ask", "type": "agent_task", "depends_on": ["facts"],
         "config": {"agent_id": "oa_json", "goal": "Is {{ input.item }} cheap?"}},
        {"id": "plain", "type": "agent_task", "depends_on": ["facts"],
         "config": {"agent_id": "oa_text", "goal": "Say hello", "context": {"k": 1}}},
        {"id": "remote", "type": "agent_task", "depends_on": ["facts"],
         "config": {"agent_id": "http_ok", "goal": "Summarise"}},
    ], {"item": "tea"})
    assert run["status"] == "completed", run
    s = by_id(run)
    assert s["ask"]["output"]["answer"] == 42 and s["ask"]["output"]["goal"].startswith("Is tea cheap?")
    assert '{"facts": {"result": {"price": 12}' in s["ask"]["output"]["goal"].replace("\n", " ") or \
        '"price": 12' in s["ask"]["output"]["goal"]
    assert s["plain"]["output"] == "Hello from the fake agent"
    assert s["remote"]["output"]["goal"] == "Summarise" and s["remote"]["output"]["run_id"] == run["id"]
    assert s["remote"]["output"]["context"]["facts"]["result"] == {"price": 12}
    chat = [r for r in env.agent.requests if r["path"] == "/v1/chat/completions"]
    assert chat and all(r["headers"]["authorization"] == f"Bearer {AGENT_KEY}" for r in chat)


def test_agent_failures(env):
    run = run_steps(env, [
        {"id": "nobody", "type": "agent_task", "on_error": "continue", "config": {"agent_id": "nope", "goal": "x"}},
        {"id": "hang", "type": "agent_task", "on_error": "continue",
         "config": {"agent_id": "oa_hang", "goal": "x", "timeout_seconds": 1}},
        {"id": "garbage", "type": "agent_task", "on_error": "continue", "config": {"agent_id": "oa_garbage", "goal": "x"}},
    ])
    s = by_id(run)
    assert s["nobody"]["error"] == "unknown agent 'nope'"
    assert s["hang"]["error"] == "agent 'oa_hang' did not answer within 1s"
    assert s["garbage"]["error"].startswith("agent 'oa_garbage' returned a response that is not JSON")


def test_secrets_reach_the_call_and_nothing_else(env):
    run = run_steps(env, [
        {"id": "call", "type": "http_request", "config": {
            "method": "POST", "url": f"{env.up}/echo/secret", "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
            "json": {"echo": "{{ secrets.TOKEN }}"}}},
        {"id": "script", "type": "script", "depends_on": ["call"], "config": {
            "language": "shell", "env": {"T": "{{ secrets.TOKEN }}"}, "code": 'echo "$T"; echo "$T" >&2'}},
    ])
    assert run["status"] == "completed", run
    got = next(r for r in env.agent.requests if r["route"] == "/echo/secret")
    assert got["headers"]["authorization"] == f"Bearer {TOKEN}" and got["json"] == {"echo": TOKEN}
    s = by_id(run)
    assert s["call"]["output"]["body"]["json"] == {"echo": "***"}
    assert s["script"]["output"]["stdout"] == "***\n" and s["script"]["output"]["stderr"] == "***\n"
    assert TOKEN not in json.dumps(run)
    with psycopg.connect(env.dsn) as conn:
        leaks = conn.execute("SELECT count(*) FROM events WHERE payload::text LIKE %s", (f"%{TOKEN}%",)).fetchone()[0]
    assert leaks == 0
    assert TOKEN not in "".join(p.log_text() for p in env.stack.role("runner") + env.stack.role("orchestrator"))


def test_bad_destinations_are_refused_through_the_stack(env):
    run = run_steps(env, [
        {"id": "loopback", "type": "http_request", "on_error": "continue",
         "config": {"url": f"http://127.0.0.1:{env.agent.port}/echo"}},
        {"id": "mapped", "type": "http_request", "on_error": "continue",
         "config": {"url": f"http://[::ffff:127.0.0.1]:{env.agent.port}/echo"}},
        {"id": "metadata", "type": "http_request", "on_error": "continue",
         "config": {"url": "http://169.254.169.254/latest/meta-data/"}},
        {"id": "redirect", "type": "http_request", "on_error": "continue", "config": {
            "url": f"{env.up}/redirect?to=http://127.0.0.1:{env.agent.port}/echo/inside", "follow_redirects": True}},
        {"id": "hook", "type": "webhook", "on_error": "continue",
         "config": {"url": f"http://127.0.0.1:{env.target.port}/x", "payload": {}}},
    ])
    s = by_id(run)
    assert all(x["status"] == "failed" for x in s.values()), s
    assert "127.0.0.1" in s["loopback"]["error"] and "loopback" in s["loopback"]["error"]
    assert "127.0.0.1" in s["mapped"]["error"]
    assert "metadata" in s["metadata"]["error"]
    assert "127.0.0.1" in s["redirect"]["error"] and "denied" in s["redirect"]["error"]
    assert "denied" in s["hook"]["error"]
    assert not any(r["route"] == "/echo/inside" for r in env.agent.requests)


def test_hostile_scripts_leave_the_runner_working(env):
    code_env = ("import json, os\nfound = []\nfor p in ['1', str(os.getppid())] + os.listdir('/proc'):\n"
                "    try:\n        found += [p] if b'tok-' in open(f'/proc/{p}/environ', 'rb').read() else []\n"
                "    except OSError:\n        pass\n"
                "print(json.dumps({'found': found, 'env': sorted(os.environ)}))")
    run = run_steps(env, [
        {"id": "bomb", "type": "script", "on_error": "continue",
         "config": {"language": "shell", "code": ":(){ :|:& };:\nwait", "timeout_seconds": 5}},
        {"id": "memory", "type": "script", "on_error": "continue",
         "config": {"language": "python", "code": "b = bytearray(8 << 30)"}},
        {"id": "disk", "type": "script", "on_error": "continue",
         "config": {"language": "shell", "code": "head -c 2147483648 /dev/zero > big"}},
        {"id": "sleepy", "type": "script", "on_error": "continue",
         "config": {"language": "python", "code": "import time\ntime.sleep(60)", "timeout_seconds": 1}},
        {"id": "snoop", "type": "script", "config": {"language": "python", "code": code_env}},
    ])
    s = by_id(run)
    assert s["memory"]["status"] == "failed" and "MemoryError" in s["memory"]["error"]
    assert s["disk"]["status"] == "failed" and "File size limit exceeded" in s["disk"]["error"]
    assert s["bomb"]["status"] in ("completed", "failed")      # contained either way, and quickly
    assert s["sleepy"]["error"] == "script timed out after 1s"
    assert s["snoop"]["output"]["result"]["found"] == []
    assert s["snoop"]["output"]["result"]["env"] in (["HOME", "LANG", "PATH", "WORKFLOW_INPUT"],
                                                     ["HOME", "LANG", "PATH", "PWD", "WORKFLOW_INPUT"])
    after = run_steps(env, [{"id": "ok", "type": "script", "config": {"language": "python", "code": "print(1)"}}])
    assert after["status"] == "completed" and by_id(after)["ok"]["output"]["result"] == 1
