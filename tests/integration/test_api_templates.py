"""Templates through the API (SPEC §7): builtins for everyone, a tenant's own as events, install."""
import psycopg

from tests.integration.test_api_helpers import api, minimal  # noqa: F401 (fixture)


async def test_builtins_list_filter_get_install(api):
    c = api.admin
    body = (await c.get("/api/workflows/templates")).json()
    assert body["total"] >= 8 and all(t["is_builtin"] for t in body["templates"])
    ai = (await c.get("/api/workflows/templates?category=ai")).json()
    assert ai["total"] >= 1 and {t["category"] for t in ai["templates"]} == {"ai"}
    page = (await c.get("/api/workflows/templates?limit=3&offset=2")).json()
    assert [t["id"] for t in page["templates"]] == [t["id"] for t in body["templates"][2:5]]
    assert (await c.get("/api/workflows/templates?is_builtin=false")).json() == {"templates": [], "total": 0}
    tpl = (await c.get("/api/workflows/templates/tpl_etl_python")).json()
    assert tpl["is_builtin"] and tpl["definition"]["steps"][1]["type"] == "script"

    r = await c.post("/api/workflows/templates/tpl_etl_python/install", json={"name": "My custom pipeline"})
    assert r.status_code == 201
    wf = (await c.get(f"/api/workflows/{r.json()['workflow_id']}")).json()
    assert wf["name"] == "My custom pipeline" and wf["definition"]["steps"] == tpl["definition"]["steps"]
    r = await c.post("/api/workflows/templates/tpl_fan_out/install")
    assert r.status_code == 201, "the body is optional"
    assert (await c.get(f"/api/workflows/{r.json()['workflow_id']}")).json()["name"] == "Fan out"
    assert (await c.get("/api/workflows/templates/tpl_nope")).status_code == 404
    assert (await c.post("/api/workflows/templates/tpl_nope/install", json={})).status_code == 404


async def test_tenant_templates_are_events_and_private(api):
    mine = await api.key(tenant="acme")
    theirs = await api.key(tenant="globex")
    r = await mine.post("/api/workflows/templates", json={"name": "Nightly", "description": "d",
                                                          "category": "reports", "definition": minimal()})
    assert r.status_code == 201, r.text
    tpl_id = r.json()["id"]
    assert tpl_id.startswith("tpl_") and r.json()["template"]["is_builtin"] is False
    own = (await mine.get("/api/workflows/templates?is_builtin=false")).json()
    assert [t["id"] for t in own["templates"]] == [tpl_id]
    all_mine = (await mine.get("/api/workflows/templates")).json()
    assert all_mine["total"] == own["total"] + (await mine.get("/api/workflows/templates?is_builtin=true")).json()["total"]
    assert all_mine["templates"][-1]["id"] == tpl_id, "own templates come after the builtins"
    assert (await theirs.get(f"/api/workflows/templates/{tpl_id}")).status_code == 404
    assert (await theirs.post(f"/api/workflows/templates/{tpl_id}/install", json={})).status_code == 404
    assert (await theirs.get("/api/workflows/templates?is_builtin=false")).json()["total"] == 0
    assert (await mine.post(f"/api/workflows/templates/{tpl_id}/install", json={})).status_code == 201
    with psycopg.connect(api.dsn) as conn:
        row = conn.execute("SELECT type, actor, tenant FROM events WHERE stream = %s", (tpl_id,)).fetchone()
    assert row == ("template.added", mine.key_id, "acme")
