"""Projections are disposable: rebuilding them from the log gives identical API answers."""
import asyncio

import psycopg

from tests.e2e.test_walking_skeleton import http_workflow, wait_run
from wf_platform.rebuild import rebuild, swap_in


def snapshot(client, wf_ids, run_ids):
    out = {"list": client.get("/api/workflows?limit=200").json()}
    for w in wf_ids:
        out[w] = client.get(f"/api/workflows/{w}").json()
        out[w + "/runs"] = client.get(f"/api/workflows/{w}/runs").json()
    for r in run_ids:
        out[r] = client.get(f"/api/workflows/runs/{r}").json()
    return out


def test_rebuild_after_damage_gives_identical_answers(stack_factory, target):
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        c = stack.client
        dsn = stack.base_env["DATABASE_URL"]
        ok = c.post("/api/workflows", json=http_workflow(target.url, steps=3)).json()["id"]
        bad = c.post("/api/workflows", json={"definition": {"name": "bad", "steps": [
            {"id": "boom", "type": "http_request", "config": {"url": f"{target.url}/status/500"}}]}}).json()["id"]
        runs = [c.post(f"/api/workflows/{w}/run", json={"input_data": {"i": i}}).json()["run_id"]
                for i, w in enumerate([ok, ok, bad])]
        for r in runs:
            wait_run(c, r)
        before = snapshot(c, [ok, bad], runs)

        report = asyncio.run(rebuild(dsn))
        assert report.identical, report.differences
        assert report.events > 20

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE runs SET status = 'damaged', doc = '{}' WHERE id = %s", (runs[0],))
            conn.execute("DELETE FROM workflow_versions")
        report = asyncio.run(rebuild(dsn))
        assert report.differences["runs"] == (1, 1)
        assert report.differences["workflow_versions"][1] == 2
        swap_in(dsn)
        assert snapshot(c, [ok, bad], runs) == before
