"""Workflows CRUD through the API, on real Postgres: list filters, create, get, PUT versions,
status, delete, and every change an event with actor = the calling key's id."""
import psycopg

from tests.integration.test_api_helpers import api, minimal  # noqa: F401 (fixture)


async def _create(c, **kw) -> dict:
    r = await c.post("/api/workflows", json={"definition": minimal(**kw.pop("defn", {})), **kw})
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_and_list_with_filters(api):
    c = api.admin
    body = await _create(c, tags=["etl", "data"], trigger_type="schedule")
    assert body["id"].startswith("wf_") and body["workflow"]["id"] == body["id"]
    wf = body["workflow"]
    assert (wf["version"], wf["status"], wf["name"], wf["tags"]) == (1, "active", "wf", ["etl", "data"])
    assert wf["created_at"].endswith("Z")
    assert (await c.get(f"/api/workflows/{body['id']}")).json() == wf
    await _create(c, status="draft", defn={"name": "other"})
    await _create(c, status="paused", tags=["etl"])

    async def ids(query: str) -> tuple[int, int]:
        r = await c.get(f"/api/workflows{query}")
        assert r.status_code == 200, r.text
        return len(r.json()["workflows"]), r.json()["total"]

    assert await ids("") == (3, 3)
    assert await ids("?status=draft") == (1, 1)
    assert await ids("?trigger_type=schedule") == (1, 1)
    assert await ids("?tag=etl") == (2, 2)
    assert await ids("?limit=1&offset=1") == (1, 3)
    assert await ids("?offset=5") == (0, 3)
    items = (await c.get("/api/workflows")).json()["workflows"]
    assert "definition" not in items[0] and set(items[0]) >= {"id", "name", "version", "status", "tags"}
    for bad in ("?limit=201", "?limit=0", "?offset=-1", "?status=running", "?trigger_type=cron"):
        r = await c.get(f"/api/workflows{bad}")
        assert r.status_code == 422, bad
        assert r.headers["content-type"] == "application/problem+json"


async def test_put_makes_a_version_only_when_something_changed(api):
    c = api.admin
    wf_id = (await _create(c))["id"]
    same = await c.put(f"/api/workflows/{wf_id}", json={"definition": minimal()})
    assert same.status_code == 200 and same.json()["version"] == 1, "identical definition: no new version"
    r = await c.put(f"/api/workflows/{wf_id}", json={"definition": minimal(steps=2),
                                                      "change_summary": "Added error handling step"})
    assert r.json()["version"] == 2 and len(r.json()["definition"]["steps"]) == 2
    r = await c.put(f"/api/workflows/{wf_id}", json={"definition": minimal(name="renamed", steps=2)})
    assert r.json()["version"] == 3 and r.json()["name"] == "renamed"
    r = await c.put(f"/api/workflows/{wf_id}", json={"definition": minimal(name="renamed", steps=2),
                                                      "tags": ["new"], "trigger_type": "api"})
    assert (r.json()["version"], r.json()["tags"], r.json()["trigger_type"]) == (4, ["new"], "api")
    versions = (await c.get(f"/api/workflows/{wf_id}/versions")).json()["versions"]
    assert [v["change_summary"] for v in versions] == [
        "Changed labels", "Renamed workflow", "Added error handling step", "Initial version"]


async def test_status_changes_and_runs_only_for_active(api):
    c = api.admin
    wf_id = (await _create(c))["id"]
    for status in ("paused", "archived", "draft", "active", "draft"):
        r = await c.patch(f"/api/workflows/{wf_id}/status", json={"status": status})
        assert r.status_code == 200 and r.json()["status"] == status
    r = await c.post(f"/api/workflows/{wf_id}/run", json={})
    assert r.status_code == 409 and "draft" in r.json()["detail"]
    r = await c.patch(f"/api/workflows/{wf_id}/status", json={"status": "running"})
    assert r.status_code == 422


async def test_delete_is_204_then_404_and_409_while_a_run_is_unfinished(api):
    c = api.admin
    wf_id = (await _create(c))["id"]
    run = await c.post(f"/api/workflows/{wf_id}/run", json={})
    assert run.status_code == 202  # no orchestrator here: the run stays unfinished
    r = await c.delete(f"/api/workflows/{wf_id}")
    assert r.status_code == 409 and r.json()["status"] == 409
    other = (await _create(c))["id"]
    assert (await c.delete(f"/api/workflows/{other}")).status_code == 204
    assert (await c.get(f"/api/workflows/{other}")).status_code == 404
    assert (await c.delete(f"/api/workflows/{other}")).status_code == 404
    assert (await c.get("/api/workflows")).json()["total"] == 1


async def test_every_change_is_an_event_with_the_key_as_actor(api):
    writer = await api.key(scopes=["write"])
    wf_id = (await _create(writer))["id"]
    await writer.put(f"/api/workflows/{wf_id}", json={"definition": minimal(steps=2)})
    await writer.patch(f"/api/workflows/{wf_id}/status", json={"status": "paused"})
    await writer.post(f"/api/workflows/{wf_id}/rollback", json={"version": 1})
    assert (await writer.delete(f"/api/workflows/{wf_id}")).status_code == 204
    with psycopg.connect(api.dsn) as conn:
        rows = conn.execute("SELECT type, actor, tenant FROM events WHERE stream = %s ORDER BY version",
                            (wf_id,)).fetchall()
    assert [r[0] for r in rows] == ["workflow.created", "workflow.version_added", "workflow.status_changed",
                                    "workflow.version_added", "workflow.deleted"]
    assert {(r[1], r[2]) for r in rows} == {(writer.key_id, "default")}


async def test_scopes(api):
    reader = await api.key(scopes=["read"])
    assert (await reader.get("/api/workflows")).status_code == 200
    r = await reader.post("/api/workflows", json={"definition": minimal()})
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert (await reader.post("/api/workflows/validate", json={"definition": minimal()})).status_code == 200
    assert (await reader.get("/api/keys")).status_code == 403
    writer = await api.key(scopes=["write"])
    assert (await writer.get("/api/workflows")).status_code == 200, "write implies read"
    assert (await writer.post("/api/keys", json={"name": "x", "scopes": ["read"]})).status_code == 403
    assert (await api.client(None).get("/api/workflows")).status_code == 401
    assert (await api.client("wrong").get("/api/workflows")).status_code == 401
