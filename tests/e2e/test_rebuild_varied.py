"""After a varied workload (every step type, cancel, resume, rollback, deletes, keys, templates,
schedules), rebuilding every projection from the log gives identical API answers (issue 6)."""
import asyncio

from tests.e2e.test_walking_skeleton import wait_run
from tests.support.infra import wait_for
from wf_platform.rebuild import rebuild, swap_in


def steps_of_every_kind(url):
    return {"name": "every-kind", "steps": [
        {"id": "fetch", "type": "http_request", "config": {"url": f"{url}/data"}},
        {"id": "check", "type": "condition", "depends_on": ["fetch"],
         "config": {"expression": "steps.fetch.output.status_code == 200", "then": ["yes"], "else": ["no"]}},
        {"id": "yes", "type": "script", "depends_on": ["check"],
         "config": {"language": "python", "code": "import json; print(json.dumps({'n': 3}))"}},
        {"id": "no", "type": "http_request", "depends_on": ["check"], "config": {"url": f"{url}/never"}},
        {"id": "each", "type": "loop", "depends_on": ["yes"],
         "config": {"items": "{{ [1, 2, 3] }}", "step": {"type": "http_request",
                                                         "config": {"url": url + "/item/{{ item }}"}}}},
        {"id": "pause", "type": "wait", "depends_on": ["each"], "config": {"duration_seconds": 0.2}},
        {"id": "tell", "type": "webhook", "depends_on": ["pause"],
         "config": {"url": f"{url}/hook", "payload": {"done": True}, "event": "test.done"}},
    ]}


def snapshot(c, wf_ids, run_ids, sched_wf):
    out = {"list": c.get("/api/workflows?limit=200").json(), "keys": c.get("/api/keys").json(),
           "templates": c.get("/api/workflows/templates?limit=200").json(),
           "schedules": c.get(f"/api/workflows/{sched_wf}/schedules").json()}
    for w in wf_ids:
        out[w] = c.get(f"/api/workflows/{w}").status_code, c.get(f"/api/workflows/{w}").json()
        out[w + "/versions"] = c.get(f"/api/workflows/{w}/versions").json()
        out[w + "/runs"] = c.get(f"/api/workflows/{w}/runs").json()
    for r in run_ids:
        resp = c.get(f"/api/workflows/runs/{r}")
        out[r] = resp.status_code, resp.json()
    return out


def test_rebuild_after_varied_workload(stack_factory, target):
    with stack_factory(orchestrators=2, runners=1, schedulers=1) as stack:
        c = stack.client
        dsn = stack.base_env["DATABASE_URL"]
        every = c.post("/api/workflows", json={"definition": steps_of_every_kind(target.url)}).json()["id"]
        r_every = c.post(f"/api/workflows/{every}/run", json={"input_data": {"k": 1}}).json()["run_id"]

        approval = c.post("/api/workflows", json={"definition": {"name": "gate", "steps": [
            {"id": "ask", "type": "wait", "config": {"approval": True}},
            {"id": "go", "type": "http_request", "depends_on": ["ask"], "config": {"url": target.url}}]}}).json()["id"]
        r_gate = c.post(f"/api/workflows/{approval}/run").json()["run_id"]

        slow = c.post("/api/workflows", json={"definition": {"name": "slow", "steps": [
            {"id": "s", "type": "http_request", "config": {"url": f"{target.url}/sleep/20000"}}]}}).json()["id"]
        r_slow = c.post(f"/api/workflows/{slow}/run").json()["run_id"]

        failing = c.post("/api/workflows", json={"definition": {"name": "failing", "steps": [
            {"id": "f", "type": "http_request", "config": {"url": f"{target.url}/status/503"},
             "retry": {"max_attempts": 2, "backoff_seconds": 0.05}}]}}).json()["id"]
        r_fail = c.post(f"/api/workflows/{failing}/run").json()["run_id"]

        wait_for(lambda: c.get(f"/api/workflows/runs/{r_gate}").json()["run"]["status"] == "paused", timeout=60)
        assert c.post(f"/api/workflows/runs/{r_gate}/resume", json={}).status_code in (200, 202)
        wait_for(lambda: c.get(f"/api/workflows/runs/{r_slow}").json()["run"]["status"] == "running", timeout=60)
        assert c.post(f"/api/workflows/runs/{r_slow}/cancel").status_code in (200, 202)
        target.release.set()
        for r in (r_every, r_gate, r_slow, r_fail):
            wait_run(c, r, timeout=90)
        assert c.get(f"/api/workflows/runs/{r_every}").json()["run"]["status"] == "completed", stack.logs()
        assert c.get(f"/api/workflows/runs/{r_slow}").json()["run"]["status"] == "cancelled"
        assert c.get(f"/api/workflows/runs/{r_fail}").json()["run"]["status"] == "failed"

        # versions, rollback, deletes, keys, templates, schedules
        d2 = steps_of_every_kind(target.url) | {"name": "every-kind v2"}
        assert c.put(f"/api/workflows/{every}", json={"definition": d2, "change_summary": "rename"}).status_code == 200
        assert c.post(f"/api/workflows/{every}/rollback", json={"version": 1}).status_code == 200
        assert c.delete(f"/api/workflows/runs/{r_fail}").status_code == 204
        assert c.delete(f"/api/workflows/{failing}").status_code == 204
        key = c.post("/api/keys", json={"name": "temp", "scopes": ["read"]}).json()
        assert c.delete(f"/api/keys/{key['id']}").status_code == 204
        assert c.post("/api/workflows/templates", json={"name": "mine", "description": "d", "category": "custom",
                                                         "definition": d2}).status_code == 201
        s1 = c.post(f"/api/workflows/{slow}/schedules", json={"cron_expression": "0 3 * * *",
                                                              "timezone": "Europe/Berlin"}).json()["schedule_id"]
        c.post(f"/api/workflows/{slow}/schedules", json={"cron_expression": "*/5 * * * *", "timezone": "UTC"})
        assert c.delete(f"/api/workflows/schedules/{s1}").status_code == 204

        wfs, runs = [every, approval, slow, failing], [r_every, r_gate, r_slow, r_fail]
        before = snapshot(c, wfs, runs, slow)
        report = asyncio.run(rebuild(dsn))
        assert report.identical, report.differences
        swap_in(dsn)  # the rebuilt tables replace every projection table
        assert snapshot(c, wfs, runs, slow) == before
