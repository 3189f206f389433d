"""DAG execution and data passing end to end: every service its own process, two orchestrators.

Also home of the small helpers the other test_orchestration_* files share.
"""
import json
from datetime import datetime

import psycopg

from tests.support.infra import wait_for

FINAL = ("completed", "failed", "cancelled")


def http(step_id: str, url: str, deps=(), **kw) -> dict:
    deps = {"depends_on": list(deps)} if deps else {}
    return {"id": step_id, "type": "http_request", "config": {"url": url}, **deps, **kw}


def create(client, steps: list[dict], **defn) -> str:
    r = client.post("/api/workflows", json={"definition": {"name": "orchestration", "steps": steps, **defn}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def start(client, wf_id: str, input_data: dict | None = None) -> str:
    r = client.post(f"/api/workflows/{wf_id}/run", json={"input_data": input_data or {}})
    assert r.status_code == 202, r.text
    return r.json()["run_id"]


def get(client, run_id: str) -> dict:
    return client.get(f"/api/workflows/runs/{run_id}").json()["run"]


def wait_status(client, run_id: str, statuses=FINAL, timeout: float = 60) -> dict:
    def check():
        run = get(client, run_id)
        return run if run["status"] in statuses else None

    return wait_for(check, timeout=timeout, message=f"run {run_id} to reach {statuses}")


def steps_of(run: dict) -> dict[str, dict]:
    return {s["step_id"]: s for s in run["step_runs"]}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def event_types(stack, run_id: str) -> list[str]:
    with psycopg.connect(stack.base_env["DATABASE_URL"]) as conn:
        return [t for (t,) in conn.execute("SELECT type FROM events WHERE stream = %s ORDER BY version", (run_id,))]


def test_dag_rules_and_data_passing(stack_factory, target):
    with stack_factory(orchestrators=2, runners=1, schedulers=0) as stack:
        c, url = stack.client, target.url
        # a diamond: b and c run in parallel after a, d joins them; templates carry data along
        diamond = create(c, [
            http("a", url + "/sleep/300/n={{ input.n }}"),
            http("b", url + "/sleep/300/from{{ steps.a.output.body.path }}", ["a"]),
            http("c", url + "/sleep/300/status={{ steps.a.status }}", ["a"]),
            {"id": "d", "type": "http_request", "depends_on": ["b", "c"],
             "config": {"url": url + "/join", "method": "POST",
                        "json": {"codes": "{{ [steps.b.output.status_code, steps.c.output.status_code] }}",
                                 "run": "{{ run.id }}"}}},
        ], input_schema={"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}})
        bad = c.post(f"/api/workflows/{diamond}/run", json={"input_data": {"n": "seven"}})
        assert bad.status_code == 422 and bad.json()["errors"] == ["input_data.n: 'seven' is not of type 'integer'"]
        run_id = start(c, diamond, {"n": 7})
        run = wait_status(c, run_id)
        assert run["status"] == "completed", stack.logs()
        s = steps_of(run)
        assert s["b"]["output"]["body"]["path"] == "/sleep/300/from/sleep/300/n=7"
        assert s["c"]["output"]["body"]["path"] == "/sleep/300/status=completed"
        # b and c overlapped: each started before the other finished
        assert ts(s["b"]["started_at"]) < ts(s["c"]["completed_at"])
        assert ts(s["c"]["started_at"]) < ts(s["b"]["completed_at"])
        joined = [r for r in target.requests if r["path"] == "/join"][0]
        assert json.loads(joined["body"]) == {"codes": [200, 200], "run": run_id}

        # a condition with both branches joined under none_failed; `if` skips; a bad template fails its step
        cond = create(c, [
            {"id": "check", "type": "condition", "config": {"expression": "input.n > 5", "then": ["big"],
                                                             "else": ["small"]}},
            http("big", url + "/big"),
            http("small", url + "/small"),
            http("join", url + "/join2", ["big", "small"], trigger_rule="none_failed"),
            http("never", url + "/never", ["join"], **{"if": "steps.check.output.branch == 'else'"}),
            http("broken", url + "/x/{{ steps.big.output.nope }}", ["join"], on_error="continue"),
        ])
        run = wait_status(c, start(c, cond, {"n": 9}))
        s = steps_of(run)
        assert run["status"] == "completed", stack.logs()
        assert s["check"]["output"] == {"result": True, "branch": "then"}
        assert [s[k]["status"] for k in ("big", "small", "join", "never", "broken")] == \
            ["completed", "skipped", "completed", "skipped", "failed"]
        assert "steps.big.output.nope" in s["broken"]["error"]
        assert not any(r["path"] in ("/small", "/never") for r in target.requests)
        types = event_types(stack, run["id"])
        assert types.count("step.dispatched") == 2  # check and the skips never reach a runner


def test_loop_of_twenty_items_five_at_a_time(stack_factory, target):
    with stack_factory(orchestrators=2, runners=1, schedulers=0) as stack:
        c = stack.client
        wf = create(c, [{"id": "each", "type": "loop", "config": {
            "items": "{{ input.ids }}", "max_concurrency": 5,
            "step": {"type": "http_request",
                     "config": {"url": target.url + "/sleep/200/id={{ item }}/i={{ index }}"}}}}])
        run = wait_status(c, start(c, wf, {"ids": list(range(100, 120))}))
        assert run["status"] == "completed", stack.logs()
        s = steps_of(run)
        outputs = s["each"]["output"]
        assert [o["body"]["path"] for o in outputs] == [f"/sleep/200/id={100 + i}/i={i}" for i in range(20)]
        iterations = [s[f"each[{i}]"] for i in range(20)]
        assert [x["step_id"] for x in run["step_runs"]][1:] == [f"each[{i}]" for i in range(20)]
        # never more than 5 in flight, and 5 at once at some point
        marks = sorted([(ts(x["started_at"]), 1) for x in iterations]
                       + [(ts(x["completed_at"]), -1) for x in iterations], key=lambda m: (m[0], m[1]))
        level, peak = 0, 0
        for _, d in marks:
            level += d
            peak = max(peak, level)
        assert peak == 5

        # an item cap with a clear error
        big = create(c, [{"id": "many", "type": "loop", "config": {
            "items": "{{ lists.range(1001) }}", "step": {"type": "http_request", "config": {"url": target.url}}}}])
        run = wait_status(c, start(c, big))
        assert run["status"] == "failed"
        assert steps_of(run)["many"]["error"] == "loop 'items' has 1001 items; at most 1000 are allowed"
