"""Keys and tenants (SPEC §2): secrets shown once and stored only as hashes, revocation, scopes,
and another tenant's ids answering 404 on every endpoint."""
import hashlib

import psycopg

from tests.integration.test_api_helpers import ADMIN_KEY, api, minimal  # noqa: F401 (fixture)


async def test_key_lifecycle_and_hash_only_storage(api):
    r = await api.admin.post("/api/keys", json={"name": "ci", "scopes": ["read", "write"]})
    assert r.status_code == 201
    key = r.json()
    assert key["id"].startswith("key_") and key["tenant"] == "default" and key["revoked"] is False
    secret = key["secret"]
    listed = (await api.admin.get("/api/keys")).json()
    assert listed["total"] == 2 and all("secret" not in k for k in listed["keys"])
    with psycopg.connect(api.dsn) as conn:
        log = " ".join(p for (p,) in conn.execute("SELECT payload FROM events"))
        hashes = {h for (h,) in conn.execute("SELECT key_hash FROM api_keys")}
    assert secret not in log and ADMIN_KEY not in log
    assert hashlib.sha256(secret.encode()).hexdigest() in hashes
    c = api.client(secret)
    assert (await c.get("/api/workflows")).status_code == 200
    assert (await api.admin.delete(f"/api/keys/{key['id']}")).status_code == 204
    assert (await c.get("/api/workflows")).status_code == 401, "revoked at once"
    assert (await api.admin.delete(f"/api/keys/{key['id']}")).status_code == 204, "revoking twice is harmless"
    assert (await api.admin.delete("/api/keys/key_unknown")).status_code == 404
    assert (await api.admin.post("/api/keys", json={"name": "x", "scopes": []})).status_code == 422
    assert (await api.admin.post("/api/keys", json={"name": "x", "scopes": ["root"]})).status_code == 422


async def test_only_the_operator_tenant_mints_keys_for_others(api):
    acme_admin = await api.key(tenant="acme", scopes=["admin"])
    r = await acme_admin.post("/api/keys", json={"name": "x", "scopes": ["read"], "tenant": "globex"})
    assert r.status_code == 403
    r = await acme_admin.post("/api/keys", json={"name": "x", "scopes": ["read"]})
    assert r.status_code == 201 and r.json()["tenant"] == "acme"
    assert {k["tenant"] for k in (await acme_admin.get("/api/keys")).json()["keys"]} == {"acme"}
    default_keys = (await api.admin.get("/api/keys")).json()["keys"]
    r = await acme_admin.delete(f"/api/keys/{default_keys[-1]['id']}")
    assert r.status_code == 404, "another tenant's key is unknown"


async def test_other_tenants_ids_are_404_everywhere(api):
    acme = await api.key(tenant="acme")
    globex = await api.key(tenant="globex")
    wf_id = (await acme.post("/api/workflows", json={"definition": minimal()})).json()["id"]
    await acme.put(f"/api/workflows/{wf_id}", json={"definition": minimal(steps=2)})
    run = await acme.post(f"/api/workflows/{wf_id}/run", json={})
    run_id = run.json()["run_id"]
    calls = [
        ("GET", f"/api/workflows/{wf_id}", None),
        ("PUT", f"/api/workflows/{wf_id}", {"definition": minimal()}),
        ("DELETE", f"/api/workflows/{wf_id}", None),
        ("PATCH", f"/api/workflows/{wf_id}/status", {"status": "paused"}),
        ("GET", f"/api/workflows/{wf_id}/versions", None),
        ("GET", f"/api/workflows/{wf_id}/versions/1", None),
        ("GET", f"/api/workflows/{wf_id}/diff?v1=1&v2=2", None),
        ("POST", f"/api/workflows/{wf_id}/rollback", {"version": 1}),
        ("POST", f"/api/workflows/{wf_id}/run", {}),
        ("GET", f"/api/workflows/{wf_id}/runs", None),
        ("GET", f"/api/workflows/runs/{run_id}", None),
    ]
    for method, url, body in calls:
        r = await globex.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
    assert (await globex.get("/api/workflows")).json() == {"workflows": [], "total": 0}
    assert (await acme.get(f"/api/workflows/{wf_id}")).json()["version"] == 2, "nothing changed"
    with psycopg.connect(api.dsn) as conn:
        actors = {a for (a,) in conn.execute("SELECT actor FROM events WHERE stream = %s", (wf_id,))}
    assert actors == {acme.key_id}
