"""Audit API: page through the log in seq order; verify finds tampering with the right first_bad."""
import httpx
import psycopg

from tests.e2e.test_walking_skeleton import http_workflow, wait_run


def test_audit_events_and_verify(stack_factory, target):
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=http_workflow(target.url, steps=2)).json()["id"]
        run_id = c.post(f"/api/workflows/{wf}/run").json()["run_id"]
        wait_run(c, run_id)
        # paging in seq order, whole log and one stream
        seen, after = [], 0
        while True:
            page = c.get(f"/api/audit/events?after={after}&limit=3").json()
            seen += [e["seq"] for e in page["events"]]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert seen == sorted(seen) and len(seen) >= 9
        run_events = c.get(f"/api/audit/events?stream={run_id}").json()["events"]
        assert [e["type"] for e in run_events][0] == "run.created"
        assert all(e["stream"] == run_id and e["hash"] for e in run_events)
        assert run_events[0]["data"]["workflow_id"] == wf and "type" not in run_events[0]["data"]
        assert c.get("/api/audit/events?stream=bad%00id").status_code == 422
        ok = c.get("/api/audit/verify").json()
        assert ok["ok"] is True and ok["events_checked"] == len(seen)

        # a non-admin key is refused
        key = c.post("/api/keys", json={"name": "reader", "scopes": ["read"]}).json()["secret"]
        r = httpx.get(f"{stack.url}/api/audit/verify", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403

        # tamper with one event's data: verify names it
        victim = run_events[2]["seq"]
        with psycopg.connect(stack.base_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
            conn.execute("UPDATE events SET payload = replace(payload, '\"attempt\":1', '\"attempt\":2')"
                         " WHERE seq = %s", (victim,))
            conn.execute("ALTER TABLE events ENABLE TRIGGER events_immutable")
        bad = c.get("/api/audit/verify").json()
        assert bad["ok"] is False and bad["first_bad"] == victim
