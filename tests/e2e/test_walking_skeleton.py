"""The walking skeleton over HTTP: create a workflow, run it, watch it complete (issue 2)."""
import psycopg

from tests.support.infra import wait_for


def http_workflow(url: str, steps: int = 1) -> dict:
    chain = []
    for i in range(steps):
        s = {"id": f"call_{i}", "type": "http_request", "config": {"method": "GET", "url": f"{url}/item/{i}"}}
        if i:
            s["depends_on"] = [f"call_{i - 1}"]
        chain.append(s)
    return {"definition": {"name": "skeleton", "steps": chain}, "trigger_type": "manual", "tags": ["e2e"]}


def wait_run(client, run_id, statuses=("completed", "failed", "cancelled"), timeout=60):
    def done():
        r = client.get(f"/api/workflows/runs/{run_id}")
        if r.status_code == 200 and r.json()["run"]["status"] in statuses:
            return r.json()["run"]
        return None

    return wait_for(done, timeout=timeout, message=f"run {run_id} did not finish")


def test_one_http_step_run_completes(stack_factory, target):
    with stack_factory(orchestrators=2, runners=1, schedulers=1) as stack:
        c = stack.client
        r = c.post("/api/workflows", json=http_workflow(target.url))
        assert r.status_code == 201, r.text
        wf_id = r.json()["id"]
        assert r.json()["workflow"]["version"] == 1
        r = c.post(f"/api/workflows/{wf_id}/run", json={"input_data": {"x": 1}})
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        assert run_id.startswith("run_")
        run = wait_run(c, run_id)
        assert run["status"] == "completed", stack.logs()
        step = run["step_runs"][0]
        assert step["status"] == "completed" and step["attempt"] == 1
        assert step["output"]["status_code"] == 200
        assert step["output"]["body"] == {"ok": True, "path": "/item/0", "method": "GET"}
        assert run["workflow_version"] == 1 and run["input_data"] == {"x": 1}
        assert target.keys == {f"{run_id}:call_0:1": 1}
        # every state change is an event in the log
        with psycopg.connect(stack.base_env["DATABASE_URL"]) as conn:
            types = [t for (t,) in conn.execute("SELECT type FROM events WHERE stream = %s ORDER BY version",
                                                 (run_id,))]
        assert types == ["run.created", "run.started", "step.dispatched", "step.completed", "run.completed"]


def test_chain_of_steps_and_a_failing_step(stack_factory, target):
    with stack_factory(orchestrators=2, runners=2, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=http_workflow(target.url, steps=5)).json()["id"]
        run_id = c.post(f"/api/workflows/{wf}/run", json={}).json()["run_id"]
        run = wait_run(c, run_id)
        assert run["status"] == "completed", stack.logs()
        assert [s["step_id"] for s in run["step_runs"]] == [f"call_{i}" for i in range(5)]
        bad = {"definition": {"name": "bad", "steps": [
            {"id": "boom", "type": "http_request", "config": {"url": f"{target.url}/status/500"}},
            {"id": "after", "type": "http_request", "config": {"url": target.url}, "depends_on": ["boom"]},
        ]}}
        wf2 = c.post("/api/workflows", json=bad).json()["id"]
        run2 = wait_run(c, c.post(f"/api/workflows/{wf2}/run").json()["run_id"])
        assert run2["status"] == "failed"
        assert "500" in run2["error"]
        assert [s["status"] for s in run2["step_runs"]] == ["failed", "cancelled"]


def test_auth_is_required(stack_factory):
    with stack_factory(orchestrators=1, runners=0, schedulers=0) as stack:
        import httpx

        r = httpx.get(f"{stack.url}/api/workflows")
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        r = httpx.get(f"{stack.url}/api/workflows", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        r = stack.client.get("/api/workflows/runs/run_doesnotexist")
        assert r.status_code == 404 and r.json()["status"] == 404


def test_every_service_serves_ops_endpoints_and_drains_on_sigterm(stack_factory):
    import time

    import httpx

    with stack_factory(orchestrators=1, runners=1, schedulers=1) as stack:
        for role in ("gateway", "orchestrator", "runner", "scheduler"):
            proc = stack.role(role)[0]
            base = stack.ready_url(proc).rsplit("/", 1)[0]
            assert httpx.get(f"{base}/healthz").status_code == 200
            assert httpx.get(f"{base}/readyz").status_code == 200
            metrics = httpx.get(f"{base}/metrics")
            assert metrics.status_code == 200 and "# TYPE" in metrics.text
        for role in ("gateway", "orchestrator", "runner", "scheduler"):
            proc = stack.role(role)[0]
            t0 = time.monotonic()
            code = proc.terminate(timeout=20)
            assert code == 0, f"{role} exited with {code}: {proc.log_tail()}"
            assert time.monotonic() - t0 < 20
            assert '"msg": "stopped"' in proc.log_text() or "Finished server process" in proc.log_text()
