"""Versions, diff and rollback through the API (SPEC §4)."""
import jsonpatch

from tests.integration.test_api_helpers import api, minimal  # noqa: F401 (fixture)

V1 = {"name": "pipeline", "steps": [
    {"id": "fetch", "type": "http_request", "config": {"url": "https://a.example/data"}},
    {"id": "notify", "type": "agent_task", "config": {"agent_id": "agent_123", "goal": "Summarize"},
     "depends_on": ["fetch"]},
]}
V2 = {"name": "pipeline", "steps": [  # notify moved first (matched by id, not position), fetch modified, one added
    {"id": "notify", "type": "agent_task", "config": {"agent_id": "agent_123", "goal": "Summarize"},
     "depends_on": ["fetch"]},
    {"id": "fetch", "type": "http_request", "config": {"url": "https://new-url.example"}},
    {"id": "store", "type": "script", "config": {"language": "shell", "code": "echo ok"}, "depends_on": ["fetch"]},
]}


async def test_versions_diff_round_trip_and_rollback(api):
    c = api.admin
    wf_id = (await c.post("/api/workflows", json={"definition": V1})).json()["id"]
    r = await c.put(f"/api/workflows/{wf_id}", json={"definition": V2, "change_summary": "Fixed URL"})
    assert r.json()["version"] == 2
    versions = (await c.get(f"/api/workflows/{wf_id}/versions")).json()
    assert versions["total"] == 2
    assert [(v["version"], v["change_summary"]) for v in versions["versions"]] == [(2, "Fixed URL"),
                                                                                  (1, "Initial version")]
    v1 = (await c.get(f"/api/workflows/{wf_id}/versions/1")).json()
    assert v1["definition"] == V1 and v1["change_summary"] == "Initial version" and v1["version"] == 1

    d = (await c.get(f"/api/workflows/{wf_id}/diff", params={"v1": 1, "v2": 2})).json()
    assert (d["v1"], d["v2"], d["summary"]) == (1, 2, "Added 1 step, modified 1 step")
    assert jsonpatch.apply_patch(V1, d["diff"]) == V2, "applying diff to v1 gives v2 exactly"
    back = (await c.get(f"/api/workflows/{wf_id}/diff", params={"v1": 2, "v2": 1})).json()
    assert jsonpatch.apply_patch(V2, back["diff"]) == V1 and back["summary"] == "Removed 1 step, modified 1 step"
    same = (await c.get(f"/api/workflows/{wf_id}/diff", params={"v1": 2, "v2": 2})).json()
    assert same["diff"] == [] and same["summary"] == "No changes"

    r = await c.post(f"/api/workflows/{wf_id}/rollback", json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 3 and r.json()["definition"] == V1
    top = (await c.get(f"/api/workflows/{wf_id}/versions?limit=1")).json()
    assert top["versions"][0]["change_summary"] == "Rolled back to version 1" and top["total"] == 3
    assert (await c.get(f"/api/workflows/{wf_id}/diff?v1=1&v2=3")).json()["summary"] == "No changes"


async def test_unknown_versions(api):
    c = api.admin
    wf_id = (await c.post("/api/workflows", json={"definition": minimal()})).json()["id"]
    assert (await c.get(f"/api/workflows/{wf_id}/versions/2")).status_code == 404
    assert (await c.get(f"/api/workflows/{wf_id}/diff?v1=1&v2=9")).status_code == 404
    assert (await c.post(f"/api/workflows/{wf_id}/rollback", json={"version": 7})).status_code == 404
    assert (await c.get(f"/api/workflows/{wf_id}/diff?v1=1")).status_code == 422
    assert (await c.get(f"/api/workflows/{wf_id}/versions/0")).status_code == 422
    assert (await c.post(f"/api/workflows/{wf_id}/rollback", json={"version": "one"})).status_code == 422
