"""SIGKILL of the gateway after the append and before the publish loses nothing (issue 2)."""
import httpx
import psycopg
import pytest

from tests.e2e.test_walking_skeleton import http_workflow, wait_run
from tests.support.infra import wait_for


def test_gateway_killed_between_commit_and_publish(stack_factory, target):
    # Only the gateway relays (orchestrators have WORKFLOW_RELAY=0), and the gateway kills itself
    # right after committing run.created: nothing can have been published.
    stack = stack_factory(orchestrators=1, runners=1, schedulers=0, env={"WORKFLOW_RELAY": "0"})
    gw = stack.role("gateway")[0]
    gw.env["WORKFLOW_RELAY"] = "1"
    gw.env["WORKFLOW_FAULT"] = "gateway_after_append"
    with stack:
        wf_id = stack.client.post("/api/workflows", json=http_workflow(target.url)).json()["id"]
        with pytest.raises(httpx.HTTPError):
            stack.client.post(f"/api/workflows/{wf_id}/run", json={"input_data": {"n": 1}})
        wait_for(lambda: not gw.running, timeout=30, message="gateway should have killed itself")
        dsn = stack.base_env["DATABASE_URL"]
        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT stream, type FROM events WHERE type LIKE 'run.%' ORDER BY seq").fetchall()
            checkpoint = conn.execute("SELECT seq FROM relay_checkpoint").fetchone()[0]
            created_seq = conn.execute("SELECT seq FROM events WHERE type = 'run.created'").fetchone()[0]
        assert [t for _, t in rows] == ["run.created"], "the append committed, nothing else happened"
        assert checkpoint < created_seq, "the event was not published before the crash"
        run_id = rows[0][0]
        # restart without the fault: the relay resumes from its checkpoint and the run happens once
        gw.env.pop("WORKFLOW_FAULT")
        stack.restart(gw)
        run = wait_run(stack.client, run_id)
        assert run["status"] == "completed", stack.logs()
        runs = stack.client.get(f"/api/workflows/{wf_id}/runs").json()
        assert runs["total"] == 1
        assert target.keys == {f"{run_id}:call_0:1": 1}
