"""?as_of=<seq>: the state right after that event, folded from the log (SPEC §8)."""
import psycopg

from tests.e2e.test_sse import slow_workflow
from tests.e2e.test_walking_skeleton import wait_run


def test_as_of_for_runs_and_workflows(stack_factory, target):
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        c = stack.client
        dsn = stack.base_env["DATABASE_URL"]
        wf = c.post("/api/workflows", json=slow_workflow(target, ms=10)).json()["id"]
        run_id = c.post(f"/api/workflows/{wf}/run").json()["run_id"]
        final = wait_run(c, run_id)
        with psycopg.connect(dsn) as conn:
            seqs = dict(conn.execute(
                "SELECT type || ':' || coalesce(payload::jsonb->>'step_id', ''), seq FROM events WHERE stream = %s",
                (run_id,)).fetchall())
        # three points in the run's life
        at_created = c.get(f"/api/workflows/runs/{run_id}?as_of={seqs['run.created:']}").json()["run"]
        assert at_created["status"] == "queued" and all(s["status"] == "pending" for s in at_created["step_runs"])
        mid = c.get(f"/api/workflows/runs/{run_id}?as_of={seqs['step.completed:first']}").json()["run"]
        # right after that event: the next step's dispatch is a later event of the same append
        assert mid["status"] == "running"
        assert [s["status"] for s in mid["step_runs"]] == ["completed", "pending", "pending"]
        mid = c.get(f"/api/workflows/runs/{run_id}?as_of={seqs['step.dispatched:slow']}").json()["run"]
        assert [s["status"] for s in mid["step_runs"]] == ["completed", "running", "pending"]
        end = c.get(f"/api/workflows/runs/{run_id}?as_of={seqs['run.completed:']}").json()["run"]
        assert end == final
        assert c.get(f"/api/workflows/runs/{run_id}?as_of=1").status_code == 404  # before the run existed

        # a workflow's versions and status over time
        with psycopg.connect(dsn) as conn:
            v1_seq = conn.execute("SELECT max(seq) FROM events WHERE stream = %s", (wf,)).fetchone()[0]
        d2 = slow_workflow(target, ms=20)["definition"] | {"name": "renamed"}
        assert c.put(f"/api/workflows/{wf}", json={"definition": d2, "change_summary": "rename"}).status_code == 200
        assert c.patch(f"/api/workflows/{wf}/status", json={"status": "paused"}).status_code == 200
        old = c.get(f"/api/workflows/{wf}?as_of={v1_seq}").json()
        assert old["version"] == 1 and old["name"] == "slow" and old["status"] == "active"
        now = c.get(f"/api/workflows/{wf}").json()
        with psycopg.connect(dsn) as conn:
            last = conn.execute("SELECT max(seq) FROM events WHERE stream = %s", (wf,)).fetchone()[0]
        assert c.get(f"/api/workflows/{wf}?as_of={last}").json() == now
        assert now["version"] == 2 and now["status"] == "paused"
